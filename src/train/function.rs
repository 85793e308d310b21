//! Stages 2 and 3: a function tag and its head, in parts that can be read one at a time.
//!
//! - [`Objective`]: the training examples as validated prompts, and the loss with its gradients.
//!   A batch's prompts run without autograd on the predictor's kernels (the template prefix
//!   once for the run, a protein once per batch), and only the tag's `p` positions run under
//!   autograd. The batch is split over the threads, one part each, and the parts' gradients
//!   summed.
//! - [`Params`]: the learned numbers (the tag's vectors, the head) and their optimiser.
//! - [`HeadStats`]: the sufficient statistics of a least-squares head, for the ridge start and
//!   for re-solving the head in closed form as the vectors move.
//! - [`train_function_tag`]: the loop: plan, ridge start, steps, validation, checkpoints.

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use candle_core::{DType, IndexOp, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::optim::{schedule, AdamW};
use super::probe::{self, solve_spd};
use super::{evaluate_tag, mean_std, plan_batches, Example, StepReport, TrainOptions};
use crate::error::{Error, Result};
use crate::metrics::RegressionMetrics;
use crate::model::{Mode, Model, Segment};
use crate::predict::{groups_in_order, lock, Key, Predictor, Prefix};
use crate::tags::init::{finish, new_function_tag, FunctionSpec};
use crate::tags::{InputType, OutputKind, Readout, Tag, TagLibrary, Target};

/// A function tag to train: everything but its numbers.
#[derive(Debug, Clone)]
pub struct FunctionPlan {
    pub name: String,
    pub template: String,
    pub output: OutputKind,
    pub target_name: String,
    pub units: String,
    pub description: String,
    pub readout: Readout,
    /// A bounded target (QED: 0 to 1): predictions are clamped to it.
    pub range: Option<(f64, f64)>,
}

/// The learned numbers: `vectors` `[p, d]`, the head `w` `[1, width]` and `b` `[1]` (on the
/// normalised target), with their optimiser state.
pub struct Params {
    pub vectors: Var,
    pub w: Var,
    pub b: Var,
    opt: AdamW,
}

impl Params {
    /// `vectors` to start from and a zero head of `width` inputs.
    pub fn new(vectors: &Tensor, width: usize, weight_decay: f64) -> Result<Self> {
        let device = vectors.device();
        let (vectors, w, b) = (Var::from_tensor(vectors)?, Var::zeros((1, width), DType::F32, device)?, Var::zeros(1, DType::F32, device)?);
        let opt = AdamW::new(vec![vectors.clone(), w.clone(), b.clone()], weight_decay)?;
        Ok(Self { vectors, w, b, opt })
    }

    /// The tag as it stands, in the tag file's form.
    fn snapshot(&self, template: &Tag) -> Result<Tag> {
        let head = Some((self.w.as_tensor().detach(), self.b.as_tensor().detach()));
        finish(template.meta.clone(), self.vectors.as_tensor().detach(), head)
    }

    pub fn set_head(&self, w: &[f64], b: f64) -> Result<()> {
        let device = self.w.as_tensor().device();
        let w: Vec<f32> = w.iter().map(|v| *v as f32).collect();
        let n = w.len();
        self.w.set(&Tensor::from_vec(w, (1, n), device)?)?;
        self.b.set(&Tensor::new(&[b as f32], device)?)?;
        Ok(())
    }

    /// One AdamW step: gradients clipped to global norm `clip` (0: not clipped), the vectors at
    /// `lr`, the head at `lr_head`. Returns the gradient norm before clipping.
    pub fn step(&mut self, grads: &[Tensor; 3], lr: f64, lr_head: f64, clip: f64) -> Result<f64> {
        let norm = grads.iter().map(|g| Ok(g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64)).sum::<Result<f64>>()?.sqrt();
        let scale = if clip > 0.0 && norm > clip { clip / norm } else { 1.0 };
        let grads: Vec<Tensor> = grads.iter().map(|g| g * scale).collect::<candle_core::Result<_>>()?;
        self.opt.step_each(&grads, &[lr, lr_head, lr_head])?;
        Ok(norm)
    }

    fn save(&self, path: &Path) -> Result<()> {
        let mut t = std::collections::HashMap::new();
        t.insert("vectors".to_string(), self.vectors.as_tensor().detach());
        t.insert("w".to_string(), self.w.as_tensor().detach());
        t.insert("b".to_string(), self.b.as_tensor().detach());
        for i in 0..3 {
            t.insert(format!("m{i}"), self.opt.m[i].clone());
            t.insert(format!("v{i}"), self.opt.v[i].clone());
        }
        let tmp = path.with_extension("tmp");
        candle_core::safetensors::save(&t, &tmp)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    fn load(&mut self, path: &Path, step: usize) -> Result<()> {
        let t = candle_core::safetensors::load(path, self.vectors.as_tensor().device())?;
        let get = |k: &str| t.get(k).cloned().ok_or_else(|| Error::Usage(format!("{}: checkpoint lacks `{k}`", path.display())));
        self.vectors.set(&get("vectors")?)?;
        self.w.set(&get("w")?)?;
        self.b.set(&get("b")?)?;
        for i in 0..3 {
            self.opt.m[i] = get(&format!("m{i}"))?;
            self.opt.v[i] = get(&format!("v{i}"))?;
        }
        self.opt.step = step;
        Ok(())
    }
}

/// Running sums for a least-squares head on centred features: `n`, `Σx`, `Σy`, `Σxxᵀ`, `Σxy`.
#[derive(Clone)]
pub struct HeadStats {
    width: usize,
    n: f64,
    sum_x: Vec<f64>,
    sum_y: f64,
    gram: Vec<f64>,
    xty: Vec<f64>,
}

impl HeadStats {
    pub fn new(width: usize) -> Self {
        Self { width, n: 0.0, sum_x: vec![0.0; width], sum_y: 0.0, gram: vec![0.0; width * width], xty: vec![0.0; width] }
    }

    pub fn len(&self) -> usize {
        self.n as usize
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0.0
    }

    /// Adds rows `x` `[n, width]` with targets `y`.
    pub fn add(&mut self, x: &Tensor, y: &[f64]) -> Result<()> {
        let rows: Vec<Vec<f32>> = x.to_vec2()?;
        for (r, &t) in rows.iter().zip(y) {
            self.add_row(r, t, 1.0);
        }
        Ok(())
    }

    /// Adds one row with target `t` counted `weight` times (negative: takes it out again).
    pub fn add_row(&mut self, r: &[f32], t: f64, weight: f64) {
        let w = self.width;
        self.n += weight;
        self.sum_y += weight * t;
        for i in 0..w {
            let a = r[i] as f64 * weight;
            self.sum_x[i] += a;
            self.xty[i] += a * t;
            let row = &mut self.gram[i * w..i * w + i + 1];
            for (g, &c) in row.iter_mut().zip(&r[..=i]) {
                *g += a * c as f64;
            }
        }
    }

    /// Scales every sum by `keep` (0 < keep ≤ 1): older rows count less, as if the statistics
    /// held the last `1 / (1 − keep)` rows' worth.
    pub fn decay(&mut self, keep: f64) {
        self.n *= keep;
        self.sum_y *= keep;
        for v in self.sum_x.iter_mut().chain(self.gram.iter_mut()).chain(self.xty.iter_mut()) {
            *v *= keep;
        }
    }

    /// The ridge solution with each feature's penalty `penalty[i]` on the centred features:
    /// weights and bias.
    pub fn solve(&self, penalty: &[f64]) -> Option<(Vec<f64>, f64)> {
        let (w, n) = (self.width, self.n.max(1.0));
        let mean_x: Vec<f64> = self.sum_x.iter().map(|s| s / n).collect();
        let mean_y = self.sum_y / n;
        let mut a = vec![0.0; w * w];
        for i in 0..w {
            for j in 0..=i {
                let v = self.gram[i * w + j] - n * mean_x[i] * mean_x[j];
                a[i * w + j] = v;
                a[j * w + i] = v;
            }
            a[i * w + i] += penalty[i];
        }
        let b: Vec<f64> = (0..w).map(|i| self.xty[i] - n * mean_x[i] * mean_y).collect();
        let weights = solve_spd(&a, &b, w)?;
        let bias = mean_y - weights.iter().zip(&mean_x).map(|(a, m)| a * m).sum::<f64>();
        Some((weights, bias))
    }
}

/// The head re-solved in closed form as the vectors move (`--refit-every`): the statistics of
/// every row read so far (the ridge start's, then each batch's at the vectors of its step), each
/// example counted once at its latest read-out, older rows decaying so that they stay worth
/// about the ridge start's count (`window`).
///
/// The head a step's gradient is taken with leaves that batch's own rows out
/// ([`ClosedFormHead::solve_without`]). A head fitted on the very rows it is scored on has
/// small, partly fitted-by-heart residuals, and moving the vectors to shrink them fits the
/// training rows' noise (on Huuskonen logS, whose ridge start reads every training row,
/// validation did not improve at all); left out, the batch's error is a held-out error and its
/// gradient is that of the cross-validated loss.
pub struct ClosedFormHead {
    stats: HeadStats,
    /// Each feature's penalty for `window` rows.
    penalty: Vec<f64>,
    window: f64,
    /// Each example's latest read-out and its target, with the clock when it was added.
    bank: std::collections::HashMap<usize, (Vec<f32>, f64, f64)>,
    /// The sum of the log decay factors so far: a row added at clock `c` now counts `e^(clock − c)`.
    clock: f64,
}

impl ClosedFormHead {
    /// From the ridge start's rows (`rows[k]` is example `order[k]`'s read-out, `ys[k]` its target).
    pub fn new(penalty: Vec<f64>, rows: &[Vec<f32>], order: &[usize], ys: &[f64]) -> Self {
        let mut stats = HeadStats::new(penalty.len());
        let mut bank = std::collections::HashMap::with_capacity(rows.len());
        for ((r, &j), &y) in rows.iter().zip(order).zip(ys) {
            stats.add_row(r, y, 1.0);
            bank.insert(j, (r.clone(), y, 0.0));
        }
        Self { window: stats.n.max(1.0), stats, penalty, bank, clock: 0.0 }
    }

    fn solve_stats(&self, stats: &HeadStats) -> Option<(Vec<f64>, f64)> {
        let grown: Vec<f64> = self.penalty.iter().map(|p| p * stats.n / self.window).collect();
        stats.solve(&grown)
    }

    /// The head on every row.
    pub fn solve(&self) -> Option<(Vec<f64>, f64)> {
        self.solve_stats(&self.stats)
    }

    /// The head on every row but those of `batch`; on every row when the batch holds half of
    /// what there is (a batch of the whole training set, as when overfitting a few examples).
    pub fn solve_without(&self, batch: &[usize]) -> Option<(Vec<f64>, f64)> {
        let mut rest = self.stats.clone();
        for j in batch {
            if let Some((r, y, at)) = self.bank.get(j) {
                rest.add_row(r, *y, -(self.clock - at).exp());
            }
        }
        if rest.n < 0.5 * self.stats.n {
            return self.solve();
        }
        self.solve_stats(&rest)
    }

    /// Adds a batch's read-out `feats` (rows in example order `order`), replacing those examples'
    /// older rows, after decaying every row by the batch's share of the window.
    pub fn update(&mut self, feats: &Tensor, order: &[usize], ys: &[f64]) -> Result<()> {
        let keep = (1.0 - order.len() as f64 / self.window).max(1e-6);
        self.stats.decay(keep);
        self.clock += keep.ln();
        let rows: Vec<Vec<f32>> = feats.to_vec2()?;
        for ((r, &j), &y) in rows.into_iter().zip(order).zip(ys) {
            if let Some((old, oy, at)) = self.bank.get(&j) {
                self.stats.add_row(old, *oy, -(self.clock - at).exp());
            }
            self.stats.add_row(&r, y, 1.0);
            self.bank.insert(j, (r, y, self.clock));
        }
        Ok(())
    }
}

/// The training examples as prompts, and the loss of a batch with its gradients.
pub struct Objective<'a> {
    model: &'a Model,
    builder: Predictor<'a>,
    /// Each kept example's prompt, the function tag left out.
    prompts: Vec<Vec<Key>>,
    examples: Vec<Example>,
    /// Two-input tags: the slot of the protein, whose examples share a prefix.
    group: Option<usize>,
    output: OutputKind,
    mean: f64,
    std: f64,
    p: usize,
    /// The prefix every prompt starts with (the template up to the first input), run once.
    fixed: Prefix,
    /// The last longer shared prefix (a protein), kept for the next part that needs it.
    last: Mutex<Option<Prefix>>,
}

impl<'a> Objective<'a> {
    /// Validates `examples` as prompts of `name` in `library` (the function tag's vectors there
    /// are placeholders: every call takes the vectors to use). Invalid examples are dropped.
    pub fn new(model: &'a Model, library: &'a TagLibrary, name: &str, examples: &[Example], mean: f64, std: f64) -> Result<Self> {
        let builder = Predictor::new(model, library, name)?;
        let output = builder.tag().meta.output.unwrap_or(OutputKind::Regression);
        let p = builder.tag().meta.p;
        let (mut prompts, mut kept) = (Vec::with_capacity(examples.len()), Vec::with_capacity(examples.len()));
        for e in examples {
            if let Ok(mut keys) = builder.prompt(&e.inputs) {
                keys.pop(); // the function tag
                prompts.push(keys);
                kept.push(e.clone());
            }
        }
        if prompts.is_empty() {
            return Err(Error::Usage("no valid training example".into()));
        }
        let slots = builder.slots();
        let group = slots.iter().position(|s| s.kind == InputType::Protein).filter(|_| slots.len() > 1);
        // The keys every prompt starts with (the template up to the first input).
        let common = (0..prompts[0].len()).take_while(|&k| prompts.iter().all(|pr| pr.get(k) == Some(&prompts[0][k]))).count();
        // Every row keeps at least one position of its own for the ragged pass.
        let common = common.min(prompts.iter().map(Vec::len).min().unwrap_or(1).saturating_sub(1));
        let fixed = builder.run_prefix(&prompts[0][..common])?;
        Ok(Self { model, builder, prompts, examples: kept, group, output, mean, std, p, fixed, last: Mutex::new(None) })
    }

    /// The examples kept (valid prompts), in order: batches index them.
    pub fn examples(&self) -> &[Example] {
        &self.examples
    }

    pub fn group(&self) -> Option<usize> {
        self.group
    }

    /// Positions of example `j`'s prompt before the tag.
    pub fn len_of(&self, j: usize) -> usize {
        self.builder.len_of(&self.prompts[j])
    }

    /// The normalised target of example `j`.
    pub fn target(&self, j: usize) -> f64 {
        (self.examples[j].target - self.mean) / self.std
    }

    /// A batch as runs of examples that share their prefix (a protein), in order of appearance.
    fn runs(&self, batch: &[usize]) -> Vec<Vec<usize>> {
        match self.group {
            Some(slot) => groups_in_order(batch.iter().map(|&j| self.examples[j].inputs[slot].as_str()))
                .into_iter()
                .map(|(_, members)| members.iter().map(|&i| batch[i]).collect())
                .collect(),
            None => vec![batch.to_vec()],
        }
    }

    /// The prefix shared by `rows`: the fixed one, or a longer one run now (or kept from the
    /// last call that ran it).
    fn prefix_of(&self, rows: &[usize]) -> Result<Prefix> {
        let first = &self.prompts[rows[0]];
        let shared = (0..first.len()).take_while(|&k| rows.iter().all(|&j| self.prompts[j].get(k) == Some(&first[k]))).count();
        let shared = if rows.iter().all(|&j| self.prompts[j].len() == shared) { shared - 1 } else { shared };
        if shared <= self.fixed.keys.len() {
            return Ok(self.fixed.clone());
        }
        if let Some(p) = lock(&self.last).as_ref().filter(|p| p.keys[..] == first[..shared]) {
            return Ok(p.clone());
        }
        let p = self.builder.run_prefix(&first[..shared])?;
        *lock(&self.last) = Some(p.clone());
        Ok(p)
    }

    /// The head's input `[n, width]` for one run of examples with tag `vectors`: the prompt
    /// without autograd on the predictor's kernels, then the tag's `p` positions in `mode`; the
    /// state at the tag's last position, followed by the input means when the tag reads them.
    fn run_features(&self, rows: &[usize], vectors: &Tensor, mode: Mode) -> Result<Tensor> {
        let llama = &self.model.llama;
        let prefix = self.prefix_of(rows)?;
        let shared = prefix.keys.len();
        let suffixes: Vec<&[Key]> = rows.iter().map(|&j| &self.prompts[j][shared..]).collect();
        let segments: Vec<Vec<Segment>> = suffixes.iter().map(|k| self.builder.segments(k)).collect();
        let (x, lens) = llama.embed_batch(&segments)?;
        let mut cache = prefix.cache.clone();
        let hidden = llama.forward_ragged(&x, &lens, &mut cache, Mode::Infer)?;
        let means = self.builder.input_means(&prefix, &suffixes, &hidden)?;
        let (n, p, d) = (rows.len(), self.p, llama.config.hidden);
        let tag_x = vectors.unsqueeze(0)?.broadcast_as((n, p, d))?.contiguous()?;
        let h = llama.forward_ragged(&tag_x, &vec![p; n], &mut cache.detach(), mode)?;
        let last = h.i((.., p - 1))?;
        Ok(match means {
            Some(m) => Tensor::cat(&[last, m], 1)?,
            None => last,
        })
    }

    /// Head inputs of `batch` and the example order of their rows (grouped by run).
    pub fn features(&self, batch: &[usize], vectors: &Tensor, mode: Mode) -> Result<(Tensor, Vec<usize>)> {
        let mut parts = Vec::new();
        let mut order = Vec::with_capacity(batch.len());
        for rows in self.runs(batch) {
            parts.push(self.run_features(&rows, vectors, mode)?);
            order.extend(rows);
        }
        Ok((Tensor::cat(&parts, 0)?, order))
    }

    /// The summed loss of rows with head outputs `z` (normalised targets): squared error, or
    /// binary cross-entropy on logits.
    fn loss_sum(&self, z: &Tensor, order: &[usize]) -> Result<Tensor> {
        let y: Vec<f32> = order.iter().map(|&j| self.target(j) as f32).collect();
        let y = Tensor::new(y.as_slice(), z.device())?;
        Ok(match self.output {
            OutputKind::BinaryClassification => {
                // softplus(z) − y·z, with softplus(z) = max(z, 0) + ln(1 + e^−|z|).
                let softplus = (z.relu()? + (z.abs()?.neg()?.exp()? + 1.0)?.log()?)?;
                (softplus - (&y * z)?)?.sum_all()?
            }
            _ => (z - &y)?.sqr()?.sum_all()?,
        })
    }

    /// Head outputs `[n]` of features `[n, width]`.
    fn head(features: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
        let n = features.dim(0)?;
        Ok((features.matmul(&w.t()?)?.squeeze(1)? + b.broadcast_as(n)?)?)
    }

    /// The batch's mean loss, its gradients for the vectors, `w` and `b`, and the detached
    /// features with their example order (for the head's statistics). The batch's runs are
    /// split into one part per thread.
    pub fn loss_and_grads(&self, batch: &[usize], params: &Params) -> Result<(f64, [Tensor; 3], Tensor, Vec<usize>)> {
        let n = batch.len() as f64;
        let parts = split_parts(self.runs(batch), crate::predict::parallel_batches(), |j| self.len_of(j));
        let vars = [params.vectors.as_tensor(), params.w.as_tensor(), params.b.as_tensor()];
        let results = crate::predict::par_map(&parts, |part| -> Result<(f64, Vec<Tensor>, Tensor, Vec<usize>)> {
            let (h, order) = self.features(part, vars[0], Mode::Train)?;
            let z = Self::head(&h, vars[1], vars[2])?;
            let loss = (self.loss_sum(&z, &order)? / n)?;
            let grads = loss.backward()?;
            let g = vars.iter().map(|v| grads.get(v).cloned().map_or_else(|| v.zeros_like(), Ok)).collect::<candle_core::Result<Vec<_>>>()?;
            Ok((loss.to_scalar::<f32>()? as f64, g, h.detach(), order))
        });
        let (mut loss, mut grads, mut feats, mut order) = (0.0, None::<Vec<Tensor>>, Vec::new(), Vec::new());
        for r in results {
            let (l, g, h, o) = r?;
            loss += l;
            grads = Some(match grads {
                None => g,
                Some(acc) => acc.iter().zip(&g).map(|(a, b)| a + b).collect::<candle_core::Result<_>>()?,
            });
            feats.push(h);
            order.extend(o);
        }
        let g = grads.ok_or_else(|| Error::Usage("empty batch".into()))?;
        Ok((loss, [g[0].clone(), g[1].clone(), g[2].clone()], Tensor::cat(&feats, 0)?, order))
    }

    /// The batch's mean loss through the inference path (the predictor's kernels everywhere,
    /// no autograd), for tag vectors and head given as tensors.
    pub fn loss_infer(&self, batch: &[usize], vectors: &Tensor, w: &Tensor, b: &Tensor) -> Result<f64> {
        let (h, order) = self.features(batch, vectors, Mode::Infer)?;
        let z = Self::head(&h, w, b)?;
        Ok(self.loss_sum(&z, &order)?.to_scalar::<f32>()? as f64 / batch.len() as f64)
    }

    /// Head inputs of many examples without autograd, in batches of `batch` of similar length
    /// run side by side on the threads, with the example order of the rows.
    pub fn features_infer(&self, examples: &[usize], batch: usize, vectors: &Tensor, mut progress: impl FnMut(usize)) -> Result<(Vec<Vec<f32>>, Vec<usize>)> {
        let mut sorted = examples.to_vec();
        if self.group.is_none() {
            sorted.sort_by_key(|&j| self.len_of(j));
        }
        let chunks: Vec<&[usize]> = sorted.chunks(batch.max(1)).collect();
        let (mut rows, mut order) = (Vec::with_capacity(examples.len()), Vec::with_capacity(examples.len()));
        for wave in chunks.chunks(crate::predict::parallel_batches()) {
            for r in crate::predict::par_map(wave, |c| self.features(c, vectors, Mode::Infer)) {
                let (h, o) = r?;
                rows.extend(h.to_vec2::<f32>()?);
                order.extend(o);
            }
            progress(order.len());
        }
        Ok((rows, order))
    }
}

/// The most rows a part of a one-input batch holds: a part's prompts are padded to its longest.
const PART_ROWS: usize = 16;

/// Runs split into parts for the `k` threads. A one-input batch is one run: its rows sorted by
/// prompt length (`len_of`) and cut into at least `k` parts of at most [`PART_ROWS`], so each
/// part pads its prompts to a similar length (the broad split's SMILES run from 10 to 200+
/// tokens: a random batch of 64 padded to its longest ran ~4× the tokens it holds). Runs of
/// several (sharing a protein) are never split, so their prefix runs once, and are spread over
/// `k` parts of about equal rows.
fn split_parts(runs: Vec<Vec<usize>>, k: usize, len_of: impl Fn(usize) -> usize) -> Vec<Vec<usize>> {
    let k = k.max(1);
    if runs.len() == 1 {
        let mut rows = runs[0].clone();
        rows.sort_by_key(|&j| len_of(j));
        let parts = k.max(rows.len().div_ceil(PART_ROWS));
        return rows.chunks(rows.len().div_ceil(parts).max(1)).map(<[usize]>::to_vec).collect();
    }
    let mut parts: Vec<Vec<usize>> = vec![Vec::new(); k.min(runs.len())];
    let mut runs = runs;
    runs.sort_by_key(|r| std::cmp::Reverse(r.len()));
    for run in runs {
        if let Some(smallest) = parts.iter_mut().min_by_key(|p| p.len()) {
            smallest.extend(run);
        }
    }
    parts.retain(|p| !p.is_empty());
    parts
}

/// Checkpoint bookkeeping saved beside the tensors.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointInfo {
    step: usize,
    best: Option<f64>,
    elapsed_s: f64,
    /// (step, validation score) of every validation so far.
    history: Vec<(usize, f64)>,
    /// Examples that training steps have seen (steps × batch, the last batch of an epoch may
    /// be smaller).
    #[serde(default)]
    examples_seen: usize,
    /// The ridge penalty of the head's closed-form fits.
    #[serde(default)]
    lambda: Option<f64>,
}

/// Where a run keeps its ridge start (its step-0 tag): `runs/QED.safetensors` →
/// `runs/QED.start.safetensors`.
pub fn start_path(out: &Path) -> std::path::PathBuf {
    out.with_extension("").with_extension("start.safetensors")
}

fn checkpoint_paths(out: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let stem = out.with_extension("");
    (stem.with_extension("ckpt.safetensors"), stem.with_extension("ckpt.json"))
}

/// Fits the head in closed form on the initial tag's read-out of a seeded sample of
/// `opts.init_examples` training examples: every fourth batch chooses the ridge penalty, the
/// others fit ([`probe::fit_ridge_holdout`], the fair ablation's fitting too). Returns the head
/// to re-solve as the vectors move, holding the sample's rows.
fn ridge_start(obj: &Objective, params: &Params, opts: &TrainOptions, started: Instant, on_step: &mut impl FnMut(&StepReport)) -> Result<ClosedFormHead> {
    let n = obj.examples().len();
    let mut sample: Vec<usize> = plan_batches(obj.examples(), opts.init_examples.div_ceil(opts.batch.max(1)), opts.batch, opts.seed ^ 0x1417, None, 1).concat();
    sample.sort_unstable();
    sample.dedup();
    sample.truncate(opts.init_examples.min(n));
    let total = sample.len();
    let (feats, order) = obj.features_infer(&sample, opts.batch, params.vectors.as_tensor(), |done| {
        let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
        on_step(&StepReport { step: 0, total: opts.steps, loss: f64::NAN, lr: 0.0, examples_per_s: rate, eta_s: (total - done) as f64 / rate.max(1e-9), valid: None, init: Some((done, total)) });
    })?;
    let feats: Vec<Vec<f64>> = feats.into_iter().map(|r| r.into_iter().map(f64::from).collect()).collect();
    let ys: Vec<f64> = order.iter().map(|&j| obj.target(j)).collect();
    // For analysing the read-out outside the trainer: `TAGLLM_DUMP_FEATURES=FILE` writes each
    // ridge-start example as CSV `example index, normalised target, features…`.
    if let Some(path) = std::env::var_os("TAGLLM_DUMP_FEATURES") {
        let mut text = String::new();
        for ((&j, y), f) in order.iter().zip(&ys).zip(&feats) {
            text.push_str(&format!("{j},{y}"));
            f.iter().for_each(|v| text.push_str(&format!(",{v}")));
            text.push('\n');
        }
        std::fs::write(path, text)?;
    }
    let fit = probe::fit_ridge_holdout(&feats, &ys, Some(obj.model.llama.config.hidden))?;
    let rows: Vec<Vec<f32>> = feats.iter().map(|r| r.iter().map(|&v| v as f32).collect()).collect();
    let head = ClosedFormHead::new(fit.penalties(), &rows, &order, &ys);
    let (w, b) = head.solve().unwrap_or_else(|| fit.weights_and_bias());
    params.set_head(&w, b)?;
    Ok(head)
}

/// Trains a function tag and its head (stages 2 and 3). The domain tags its template uses come
/// from `library` and stay frozen. The best tag on `valid` is written to `out` whenever it
/// improves; a checkpoint beside it makes an interrupted run resumable (same command again).
#[allow(clippy::too_many_arguments)]
pub fn train_function_tag(
    model: &Model,
    library: &TagLibrary,
    plan: &FunctionPlan,
    opts: &TrainOptions,
    train: &[Example],
    valid: &[Example],
    out: &Path,
    mut on_step: impl FnMut(&StepReport),
) -> Result<Tag> {
    let template = crate::tags::Template::parse(&plan.template)?;
    let domains: Vec<&Tag> = template.tags().filter(|t| *t != plan.name).map(|t| library.get(t)).collect::<Result<Vec<_>>>()?;
    let targets: Vec<f64> = train.iter().map(|e| e.target).collect();
    let (mean, std) = match plan.output {
        OutputKind::Regression => mean_std(&targets),
        _ => (0.0, 1.0),
    };
    if std.is_nan() || std <= 0.0 {
        return Err(Error::Usage("the training targets have no spread: nothing to learn".into()));
    }
    let target = (plan.output == OutputKind::Regression).then(|| Target {
        name: plan.target_name.clone(),
        units: plan.units.clone(),
        mean,
        std,
        range: plan.range,
    });
    let spec = FunctionSpec { name: &plan.name, template: &plan.template, output: plan.output, target, domains: &domains, readout: plan.readout };
    let fresh = new_function_tag(model, spec, opts.p, opts.seed)?;
    let mut lib = library.clone();
    lib.insert(fresh.clone(), &model.identity, &plan.name)?;
    let obj = Objective::new(model, &lib, &plan.name, train, mean, std)?;
    let mut params = Params::new(&fresh.vectors, fresh.meta.head_width(), opts.weight_decay)?;

    let (ckpt_path, info_path) = checkpoint_paths(out);
    let mut info = CheckpointInfo { step: 0, best: None, elapsed_s: 0.0, history: Vec::new(), examples_seen: 0, lambda: None };
    if ckpt_path.exists() && info_path.exists() {
        let text = std::fs::read_to_string(&info_path)?;
        info = serde_json::from_str(&text).map_err(|e| Error::Usage(format!("{}: {e}", info_path.display())))?;
        params.load(&ckpt_path, info.step)?;
    }
    let batches = plan_batches(obj.examples(), opts.steps, opts.batch, opts.seed, obj.group(), opts.per_group);
    let warmup = ((opts.steps as f64) * opts.warmup).ceil() as usize;
    let started = Instant::now();
    let elapsed_before = info.elapsed_s;
    // The head's statistics while it is re-solved in closed form: the ridge start's rows, then
    // every batch's, older rows decaying so that they stay worth about the ridge start's count.
    let mut head = None;
    if plan.output == OutputKind::Regression && opts.init_examples > 0 && (info.step == 0 || opts.refit_every > 0) {
        // Resuming, the rows are read out through the checkpoint's vectors.
        let h = ridge_start(&obj, &params, opts, started, &mut on_step)?;
        // The base strength (the smallest block multiplier is 1), for the record.
        info.lambda = h.penalty.iter().copied().reduce(f64::min);
        head = Some(h);
    }
    let kept = obj.examples().len();
    // Validates the tag as it stands and writes it to `out` if it is the best so far.
    let validate = |params: &Params, info: &mut CheckpointInfo| -> Result<RegressionMetrics> {
        let tag = params.snapshot(&fresh)?;
        let (m, auc) = evaluate_tag(model, library, &tag, valid)?;
        // Higher is better: R² for regression, ROC AUC for classification.
        let score = match plan.output {
            OutputKind::BinaryClassification => auc.unwrap_or(f64::NAN),
            _ => m.r2,
        };
        info.history.push((info.step, score));
        if info.best.is_none_or(|b| score > b) && score.is_finite() {
            info.best = Some(score);
            let mut meta = tag.meta;
            meta.description = plan.description.clone();
            let prov = &mut meta.provenance;
            prov.insert("best_step".into(), serde_json::json!(info.step));
            prov.insert("examples_seen".into(), serde_json::json!(info.examples_seen));
            prov.insert("valid_metrics".into(), serde_json::to_value(&m).unwrap_or_default());
            prov.insert("train_examples".into(), serde_json::json!(kept));
            prov.insert("options".into(), serde_json::to_value(opts).unwrap_or_default());
            prov.insert("valid_history".into(), serde_json::to_value(&info.history).unwrap_or_default());
            prov.insert("wall_time_s".into(), serde_json::json!((elapsed_before + started.elapsed().as_secs_f64()).round()));
            finish(meta, tag.vectors, tag.head)?.save(out)?;
        }
        Ok(m)
    };
    if info.step == 0 {
        // The starting point (ridge head on the initial tag) is a candidate too.
        let m = validate(&params, &mut info)?;
        // The ridge start is kept beside the run (`NAME.start.safetensors`): the model card
        // measures what the gradient steps added to it.
        if out.exists() {
            std::fs::copy(out, start_path(out))?;
        }
        on_step(&StepReport { step: 0, total: opts.steps, loss: f64::NAN, lr: 0.0, examples_per_s: 0.0, eta_s: f64::NAN, valid: Some(m), init: None });
    }
    let mut refit = if opts.refit_every > 0 { head.as_mut() } else { None };
    let mut seen_now = 0usize;
    let steps_started = Instant::now();
    for (step, batch) in batches.iter().enumerate().skip(info.step) {
        if let Some(h) = refit.as_ref().filter(|_| step % opts.refit_every == 0) {
            if let Some((w, b)) = h.solve_without(batch) {
                params.set_head(&w, b)?;
            }
        }
        let (loss, grads, feats, order) = obj.loss_and_grads(batch, &params)?;
        let lr = schedule(step, opts.steps, warmup, opts.lr, 0.1);
        let lr_head = if refit.is_some() { 0.0 } else { lr * opts.lr_head_ratio };
        params.step(&grads, lr, lr_head, opts.clip)?;
        if let Some(h) = refit.as_mut() {
            let ys: Vec<f64> = order.iter().map(|&j| obj.target(j)).collect();
            h.update(&feats, &order, &ys)?;
        }
        seen_now += batch.len();
        info.examples_seen += batch.len();
        info.step = step + 1;
        let elapsed = started.elapsed().as_secs_f64();
        let rate = seen_now as f64 / steps_started.elapsed().as_secs_f64().max(1e-9);
        let mut report = StepReport {
            step: step + 1,
            total: opts.steps,
            loss,
            lr,
            examples_per_s: rate,
            eta_s: (opts.steps - step - 1) as f64 * opts.batch as f64 / rate.max(1e-9),
            valid: None,
            init: None,
        };
        if (step + 1) % opts.eval_every.max(1) == 0 || step + 1 == opts.steps {
            // The tag is validated and kept with the head on every row read so far.
            if let Some((w, b)) = refit.as_ref().and_then(|h| h.solve()) {
                params.set_head(&w, b)?;
            }
            report.valid = Some(validate(&params, &mut info)?);
            info.elapsed_s = elapsed_before + elapsed;
            params.save(&ckpt_path)?;
            let json = serde_json::to_string_pretty(&info).map_err(|e| Error::Usage(e.to_string()))?;
            std::fs::write(&info_path, json)?;
        }
        on_step(&report);
    }
    // The kept tag records the whole run besides its own step: every validation (the learning
    // curve of its card) and the examples the run's steps saw.
    let mut tag = Tag::load(out)?;
    let prov = &mut tag.meta.provenance;
    prov.insert("valid_history".into(), serde_json::to_value(&info.history).unwrap_or_default());
    prov.insert("run_steps".into(), serde_json::json!(info.step));
    prov.insert("run_examples_seen".into(), serde_json::json!(info.examples_seen));
    let tag = finish(tag.meta, tag.vectors, tag.head)?;
    tag.save(out)?;
    let _ = std::fs::remove_file(&ckpt_path);
    let _ = std::fs::remove_file(&info_path);
    Ok(tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn rows(n: usize, width: usize, seed: u64) -> (Vec<Vec<f32>>, Vec<f64>) {
        let mut rng = SplitMix64(seed);
        let mut u = || (rng.next_u64() as f64 / u64::MAX as f64) * 2.0 - 1.0;
        (0..n)
            .map(|_| {
                let x: Vec<f32> = (0..width).map(|_| u() as f32).collect();
                let y = x.iter().enumerate().map(|(i, &v)| v as f64 * (i as f64 - 2.0)).sum::<f64>() + 0.1 * u();
                (x, y)
            })
            .unzip()
    }

    fn stats_of(rows: &[Vec<f32>], ys: &[f64], weight: f64, into: &mut HeadStats) {
        for (r, &y) in rows.iter().zip(ys) {
            into.add_row(r, y, weight);
        }
    }

    fn close(a: &(Vec<f64>, f64), b: &(Vec<f64>, f64)) -> bool {
        a.0.iter().zip(&b.0).all(|(x, y)| (x - y).abs() < 1e-9) && (a.1 - b.1).abs() < 1e-9
    }

    /// The head a step is taken with is the ridge fit on every other row, with the penalty of
    /// that many rows; a batch of half the rows or more falls back to every row.
    #[test]
    fn the_step_head_leaves_the_batch_out() {
        let (x, y) = rows(40, 6, 7);
        let order: Vec<usize> = (100..140).collect();
        let penalty = vec![0.5; 6];
        let head = ClosedFormHead::new(penalty.clone(), &x, &order, &y);
        let mut rest = HeadStats::new(6);
        stats_of(&x[10..], &y[10..], 1.0, &mut rest);
        let grown: Vec<f64> = penalty.iter().map(|p| p * 30.0 / 40.0).collect();
        let want = rest.solve(&grown).unwrap();
        let got = head.solve_without(&order[..10]).unwrap();
        assert!(close(&got, &want), "{got:?} vs {want:?}");
        // Leaving the batch out changes the head (the test would pass on any head otherwise).
        assert!(!close(&got, &head.solve().unwrap()));
        assert!(close(&head.solve_without(&order[..25]).unwrap(), &head.solve().unwrap()));
        // Examples the head has not read yet take nothing out.
        assert!(close(&head.solve_without(&[7, 8]).unwrap(), &head.solve().unwrap()));
    }

    /// A batch's new read-out replaces its examples' older rows, after every row decays by the
    /// batch's share of the window; leaving it out again takes out exactly the new rows.
    #[test]
    fn a_batch_replaces_its_rows_after_the_decay() {
        let (x, y) = rows(40, 5, 11);
        let order: Vec<usize> = (0..40).collect();
        let penalty = vec![0.3; 5];
        let mut head = ClosedFormHead::new(penalty.clone(), &x, &order, &y);
        let (x_new, _) = rows(10, 5, 12);
        let feats = Tensor::from_vec(x_new.iter().flatten().copied().collect::<Vec<f32>>(), (10, 5), &candle_core::Device::Cpu).unwrap();
        head.update(&feats, &order[..10], &y[..10]).unwrap();
        let keep = 1.0 - 10.0 / 40.0;
        let mut want = HeadStats::new(5);
        stats_of(&x[10..], &y[10..], keep, &mut want);
        stats_of(&x_new, &y[..10], 1.0, &mut want);
        let grown: Vec<f64> = penalty.iter().map(|p| p * want.n / 40.0).collect();
        assert!((head.stats.n - want.n).abs() < 1e-9);
        assert!(close(&head.solve().unwrap(), &want.solve(&grown).unwrap()));
        let mut rest = HeadStats::new(5);
        stats_of(&x[10..], &y[10..], keep, &mut rest);
        let grown: Vec<f64> = penalty.iter().map(|p| p * rest.n / 40.0).collect();
        assert!(close(&head.solve_without(&order[..10]).unwrap(), &rest.solve(&grown).unwrap()));
    }
}
