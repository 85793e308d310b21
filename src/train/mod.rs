//! The three-stage trainer of Tag-LLM (native only).
//!
//! 1. **Domain tags** ([`train_domain_tag`]): next-token prediction on unlabelled inputs written
//!    after the tag, `<SMILES> CC(=O)O…`; gradients reach only the tag's vectors.
//! 2. **Single-domain function tags** and 3. **multi-domain function tags**
//!    ([`train_function_tag`]): the tag plus a linear head regress the (normalised) target from
//!    the final-norm hidden state at the tag's last position; the domain tags are frozen.
//!
//! The cost fact that makes stages 2–3 cheap: the function tag comes after everything else, so
//! under causal attention the whole prefix (template text, domain tags, inputs) needs no
//! gradient. It runs once, without autograd — its part shared by a batch only once per batch —
//! and back-propagation goes through the `p` tag positions only.

pub mod data;
pub mod optim;
pub mod probe;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, IndexOp, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metrics::{self, RegressionMetrics};
use crate::model::{KvCache, Mode, Model, Segment};
use crate::predict::{groups_in_order, render_input, Key, Predictor, Prefix};
use crate::rng::SplitMix64;
use crate::tags::init::{finish, new_function_tag, FunctionSpec};
use crate::tags::{InputType, OutputKind, Readout, Tag, TagKind, TagLibrary, Target};
pub use data::{load_examples, Example};
use optim::{schedule, AdamW};

/// Optimisation settings shared by every stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainOptions {
    pub steps: usize,
    pub batch: usize,
    pub lr: f64,
    pub weight_decay: f64,
    /// Fraction of the steps spent warming up (the paper: 3%).
    pub warmup: f64,
    /// Validate (and keep the best tag) every this many steps.
    pub eval_every: usize,
    pub seed: u64,
    pub p: usize,
    /// Regression tags: fit the head in closed form on this many training examples before SGD
    /// (0: start from a zero head).
    pub init_examples: usize,
    /// Two-input tags: at most this many examples of one first input (a protein) in a batch, so
    /// a batch mixes `batch / per_group` proteins (one per batch lets each step pull the head
    /// toward one protein's mean; one per example runs a protein per example).
    #[serde(default = "default_per_group")]
    pub per_group: usize,
}

fn default_per_group() -> usize {
    4
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self { steps: 500, batch: 8, lr: 1e-3, weight_decay: 0.0, warmup: 0.03, eval_every: 100, seed: 1, p: 10, init_examples: 256, per_group: default_per_group() }
    }
}

/// What a progress callback sees after each step.
#[derive(Debug, Clone)]
pub struct StepReport {
    pub step: usize,
    pub total: usize,
    pub loss: f64,
    pub lr: f64,
    pub examples_per_s: f64,
    pub eta_s: f64,
    /// Set on validation steps.
    pub valid: Option<RegressionMetrics>,
    /// Before step 1: examples read for the ridge start so far, of how many.
    pub init: Option<(usize, usize)>,
}

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
}

/// Checkpoint bookkeeping saved beside the tensors.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CheckpointInfo {
    step: usize,
    best: Option<f64>,
    elapsed_s: f64,
    history: Vec<(usize, f64)>,
}

fn checkpoint_paths(out: &Path) -> (PathBuf, PathBuf) {
    let stem = out.with_extension("");
    (stem.with_extension("ckpt.safetensors"), stem.with_extension("ckpt.json"))
}

/// The batches of a whole run, fixed by the seed so a resumed run sees the same ones. With
/// `group` set, a batch is made of runs of up to `per_group` examples sharing that input (one
/// protein and some of its ligands), so each run's common prefix is computed once.
fn plan_batches(examples: &[Example], steps: usize, batch: usize, seed: u64, group: Option<usize>, per_group: usize) -> Vec<Vec<usize>> {
    let mut rng = SplitMix64(seed);
    let mut out = Vec::with_capacity(steps);
    while out.len() < steps {
        let mut epoch: Vec<Vec<usize>> = match group {
            None => {
                let mut idx: Vec<usize> = (0..examples.len()).collect();
                shuffle(&mut idx, &mut rng);
                idx.chunks(batch).map(|c| c.to_vec()).collect()
            }
            Some(slot) => {
                let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
                for (i, e) in examples.iter().enumerate() {
                    groups.entry(e.inputs[slot].as_str()).or_default().push(i);
                }
                let mut runs: Vec<Vec<usize>> = Vec::new();
                for (_, mut g) in groups {
                    shuffle(&mut g, &mut rng);
                    runs.extend(g.chunks(per_group.clamp(1, batch.max(1))).map(<[usize]>::to_vec));
                }
                shuffle(&mut runs, &mut rng);
                // Pack runs into batches, each taking the next run of a protein it lacks.
                let per_batch = (batch / per_group.clamp(1, batch.max(1))).max(1);
                let mut pending: std::collections::VecDeque<Vec<usize>> = runs.into();
                let mut batches = Vec::new();
                while !pending.is_empty() {
                    let mut b: Vec<usize> = Vec::new();
                    let mut has: Vec<&str> = Vec::new();
                    for _ in 0..per_batch {
                        let Some(pos) = pending.iter().position(|r| !has.contains(&examples[r[0]].inputs[slot].as_str())) else { break };
                        let run = pending.remove(pos).unwrap_or_default();
                        has.push(examples[run[0]].inputs[slot].as_str());
                        b.extend(run);
                    }
                    if b.is_empty() {
                        b = pending.pop_front().unwrap_or_default();
                    }
                    batches.push(b);
                }
                batches
            }
        };
        shuffle(&mut epoch, &mut rng);
        out.extend(epoch);
    }
    out.truncate(steps);
    out
}

fn shuffle<T>(v: &mut [T], rng: &mut SplitMix64) {
    for i in (1..v.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// At most `max` validation examples. One-input tasks: the first `max`. Two-input tasks: up to
/// `per_group` examples of each first input (a protein and some of its ligands), groups drawn
/// with a fixed seed — the first rows of a DAVIS file are one ligand against every protein, and
/// each protein costs a long prefix pass, while many proteins make a steadier estimate.
pub fn validation_subset(mut examples: Vec<Example>, max: usize, per_group: usize) -> Vec<Example> {
    if examples.first().is_none_or(|e| e.inputs.len() < 2) {
        examples.truncate(max);
        return examples;
    }
    let mut groups: BTreeMap<String, Vec<Example>> = BTreeMap::new();
    for e in examples {
        groups.entry(e.inputs[0].clone()).or_default().push(e);
    }
    let mut groups: Vec<Vec<Example>> = groups.into_values().collect();
    let mut rng = SplitMix64(0x7A11D);
    shuffle(&mut groups, &mut rng);
    for g in &mut groups {
        shuffle(g, &mut rng);
    }
    let mut out = Vec::with_capacity(max);
    for g in groups {
        if out.len() >= max {
            break;
        }
        out.extend(g.into_iter().take(per_group.max(1)));
    }
    out.truncate(max);
    out
}

/// Mean and (population) standard deviation.
fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len().max(1) as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
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
    let domains: Vec<&Tag> = template
        .tags()
        .filter(|t| *t != plan.name)
        .map(|t| library.get(t))
        .collect::<Result<Vec<_>>>()?;
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
    });
    let spec = || FunctionSpec {
        name: &plan.name,
        template: &plan.template,
        output: plan.output,
        target: target.clone(),
        domains: &domains,
        readout: plan.readout,
    };
    let fresh = new_function_tag(model, spec(), opts.p, opts.seed)?;
    let d = model.llama.config.hidden;
    let width = fresh.meta.head_width();
    let (ckpt_path, info_path) = checkpoint_paths(out);
    let mut info = CheckpointInfo { step: 0, best: None, elapsed_s: 0.0, history: Vec::new() };
    let (vectors, w, b) = (
        Var::from_tensor(&fresh.vectors)?,
        // A zero head starts every prediction at the training mean: the first losses are ~1
        // instead of the hidden state's large random projection.
        Var::zeros((1, width), DType::F32, model.llama.device())?,
        Var::zeros(1, DType::F32, model.llama.device())?,
    );
    // The head sees a hidden state of norm ~40 with a few very large coordinates; Adam moves every
    // weight by ~lr per step, so the raw head would swing the output by hundreds × lr. Scaling
    // the head by 1/√d keeps one step's change of the prediction near the tag's.
    let head_scale = 1.0 / (width as f64).sqrt();
    let mut opt = AdamW::new(vec![vectors.clone(), w.clone(), b.clone()], opts.weight_decay)?;
    if ckpt_path.exists() && info_path.exists() {
        let tensors = candle_core::safetensors::load(&ckpt_path, model.llama.device())?;
        let get = |k: &str| tensors.get(k).cloned().ok_or_else(|| Error::Usage(format!("checkpoint lacks {k}")));
        vectors.set(&get("vectors")?)?;
        w.set(&get("w")?)?;
        b.set(&get("b")?)?;
        for i in 0..3 {
            opt.m[i] = get(&format!("m{i}"))?;
            opt.v[i] = get(&format!("v{i}"))?;
        }
        let text = std::fs::read_to_string(&info_path)?;
        info = serde_json::from_str(&text).map_err(|e| Error::Usage(format!("checkpoint info: {e}")))?;
        opt.step = info.step;
    }

    // Prompts, validated once. The function tag's vectors in `lib` are placeholders: training
    // feeds the live Var instead, and validation rebuilds the tag from it.
    let mut lib = library.clone();
    lib.insert(fresh.clone(), &model.identity, &plan.name)?;
    let builder = Predictor::new(model, &lib, &plan.name)?;
    let mut prompts = Vec::with_capacity(train.len());
    let mut kept = Vec::with_capacity(train.len());
    for e in train {
        if let Ok(mut keys) = builder.prompt(&e.inputs) {
            keys.pop(); // the function tag
            prompts.push(keys);
            kept.push(e.clone());
        }
    }
    if prompts.is_empty() {
        return Err(Error::Usage("no valid training example".into()));
    }
    let group = builder.slots().iter().position(|s| s.kind == InputType::Protein).filter(|_| builder.slots().len() > 1);
    let batches = plan_batches(&kept, opts.steps, opts.batch, opts.seed, group, opts.per_group);
    let warmup = ((opts.steps as f64) * opts.warmup).ceil() as usize;
    let started = Instant::now();
    let elapsed_before = info.elapsed_s;
    let mut shared_cache: Option<Prefix> = None;
    let p = opts.p;
    // The head's input `[n, width]` for a batch of examples: the prompt before the tag runs
    // without gradient (its part shared by the batch once, cached across steps), then the tag's
    // `p` positions run in `mode` after each row's own end; the state at the tag's last position
    // is followed by the input means when the tag reads them (those need no gradient).
    let mut head_input_run = |batch: &[usize], mode: Mode| -> Result<Tensor> {
        let first = &prompts[batch[0]];
        let shared = (0..first.len()).take_while(|&k| batch.iter().all(|&j| prompts[j].get(k) == Some(&first[k]))).count();
        // Every row must keep at least one varying position for the ragged pass; a batch of
        // identical prompts shares all but the last key.
        let shared = if batch.iter().all(|&j| prompts[j].len() == shared) { shared - 1 } else { shared };
        let prefix = match &shared_cache {
            Some(pre) if pre.keys[..] == first[..shared] => pre.clone(),
            _ => {
                let pre = builder.run_prefix(&first[..shared])?;
                shared_cache = Some(pre.clone());
                pre
            }
        };
        let rows: Vec<&[Key]> = batch.iter().map(|&j| &prompts[j][shared..]).collect();
        let segments: Vec<Vec<Segment>> = rows.iter().map(|k| builder.segments(k)).collect();
        let (x, lens) = model.llama.embed_batch(&segments)?;
        let mut cache = prefix.cache.clone();
        let hidden = model.llama.forward_ragged(&x, &lens, &mut cache, Mode::Infer)?;
        let means = builder.input_means(&prefix, &rows, &hidden)?;
        let n = batch.len();
        let tag_x = vectors.as_tensor().unsqueeze(0)?.broadcast_as((n, p, d))?.contiguous()?;
        let h = model.llama.forward_ragged(&tag_x, &vec![p; n], &mut cache.detach(), mode)?;
        let last = h.i((.., p - 1))?;
        Ok(match means {
            Some(m) => Tensor::cat(&[last, m], 1)?,
            None => last,
        })
    };
    // A batch of several runs (two-input tags: a few ligands of each of several proteins): each
    // run's prefix once, rows returned grouped by run, with the example order they come in.
    let mut head_input = |batch: &[usize], mode: Mode| -> Result<(Tensor, Vec<usize>)> {
        let runs = match group {
            Some(slot) => groups_in_order(batch.iter().map(|&j| kept[j].inputs[slot].as_str())),
            None => vec![("", (0..batch.len()).collect())],
        };
        let mut parts = Vec::with_capacity(runs.len());
        let mut order = Vec::with_capacity(batch.len());
        for (_, members) in runs {
            let rows: Vec<usize> = members.iter().map(|&i| batch[i]).collect();
            parts.push(head_input_run(&rows, mode)?);
            order.extend(rows);
        }
        Ok((Tensor::cat(&parts, 0)?, order))
    };
    if info.step == 0 && plan.output == OutputKind::Regression && opts.init_examples > 0 {
        // Start the head at the best linear read-out of the initial tag's hidden state (ridge,
        // closed form) instead of zero: SGD then refines tag and head from a useful start.
        // The examples are a seeded sample planned like the run's batches, except that a
        // two-input tag's batch here is one protein with `batch` of its ligands: the protein's
        // long prefix runs once for all of them, and a closed-form fit has no step to bias.
        let mut init_plan = plan_batches(&kept, opts.init_examples.div_ceil(opts.batch.max(1)), opts.batch, opts.seed ^ 0x1417, group, opts.batch);
        if group.is_none() {
            // No shared input: batch the sample by length, so that padding costs little (a
            // random batch of proteins pads to its longest, ~2× the median).
            let mut all: Vec<usize> = init_plan.concat();
            all.sort_by_key(|&j| builder.len_of(&prompts[j]));
            init_plan = all.chunks(opts.batch.max(1)).map(<[usize]>::to_vec).collect();
        }
        let mut take = Vec::with_capacity(opts.init_examples);
        let mut feats = Vec::with_capacity(opts.init_examples);
        for chunk in &init_plan {
            let (h, order) = head_input(chunk, Mode::Infer)?;
            let h: Vec<Vec<f32>> = h.to_vec2()?;
            feats.extend(h.into_iter().map(|r| r.into_iter().map(f64::from).collect::<Vec<f64>>()));
            take.extend(order);
            let rate = take.len() as f64 / started.elapsed().as_secs_f64().max(1e-9);
            let left = init_plan.iter().map(Vec::len).sum::<usize>() - take.len();
            on_step(&StepReport {
                step: 0,
                total: opts.steps,
                loss: f64::NAN,
                lr: 0.0,
                examples_per_s: rate,
                eta_s: left as f64 / rate.max(1e-9),
                valid: None,
                init: Some((take.len(), take.len() + left)),
            });
        }
        let ys: Vec<f64> = take.iter().map(|&j| (kept[j].target - mean) / std).collect();
        // For analysing the read-out outside the trainer: `TAGLLM_DUMP_FEATURES=FILE` writes each
        // ridge-start example as CSV `example index, normalised target, features…`.
        if let Some(path) = std::env::var_os("TAGLLM_DUMP_FEATURES") {
            let mut out = String::new();
            for ((&j, y), f) in take.iter().zip(&ys).zip(&feats) {
                out.push_str(&format!("{j},{y}"));
                f.iter().for_each(|v| out.push_str(&format!(",{v}")));
                out.push('\n');
            }
            std::fs::write(path, out)?;
        }
        // Every fourth batch picks the ridge strength; the others fit.
        let held = |i: usize| (i / opts.batch.max(1)) % 4 == 3;
        let split = |keep: bool| -> (Vec<Vec<f64>>, Vec<f64>) {
            (0..feats.len()).filter(|&i| held(i) != keep).map(|i| (feats[i].clone(), ys[i])).unzip()
        };
        let ((xf, yf), (xh, yh)) = (split(true), split(false));
        let fit = probe::fit_ridge(&xf, &yf, &xh, &yh, Some(d))?;
        let (wr, br) = fit.weights_and_bias();
        let wr: Vec<f32> = wr.iter().map(|v| (*v / head_scale) as f32).collect();
        w.set(&Tensor::from_vec(wr, (1, width), model.llama.device())?)?;
        b.set(&Tensor::new(&[br as f32], model.llama.device())?)?;
    }
    // Validates the tag as it stands after `done` steps and writes it to `out` if it is the best
    // so far.
    let validate = |done: usize, info: &mut CheckpointInfo| -> Result<RegressionMetrics> {
        let tag = snapshot(&fresh, &vectors, &w, &b, head_scale)?;
        let m = evaluate_tag(model, library, &tag, valid)?;
        // Higher is better: R² for regression, ROC AUC for classification.
        let score = match plan.output {
            OutputKind::BinaryClassification => m.1.unwrap_or(f64::NAN),
            _ => m.0.r2,
        };
        info.history.push((done, score));
        info.step = done;
        if info.best.is_none_or(|b| score > b) && score.is_finite() {
            info.best = Some(score);
            let mut best = tag;
            best.meta.description = plan.description.clone();
            best.meta.provenance.insert("best_step".into(), serde_json::json!(done));
            best.meta.provenance.insert("valid_metrics".into(), serde_json::to_value(&m.0).unwrap_or_default());
            best.meta.provenance.insert("train_examples".into(), serde_json::json!(kept.len()));
            best.meta.provenance.insert("options".into(), serde_json::to_value(opts).unwrap_or_default());
            best.meta.provenance.insert("valid_history".into(), serde_json::to_value(&info.history).unwrap_or_default());
            let wall = elapsed_before + started.elapsed().as_secs_f64();
            best.meta.provenance.insert("wall_time_s".into(), serde_json::json!(wall.round()));
            let best = finish(best.meta, best.vectors, best.head)?;
            best.save(out)?;
        }
        Ok(m.0)
    };
    if info.step == 0 {
        // The starting point (ridge head on the initial tag) is a candidate too: training can
        // only improve on it.
        let m = validate(0, &mut info)?;
        on_step(&StepReport { step: 0, total: opts.steps, loss: f64::NAN, lr: 0.0, examples_per_s: 0.0, eta_s: f64::NAN, valid: Some(m), init: None });
    }
    let mut seen = 0usize;
    for (step, batch) in batches.iter().enumerate().skip(info.step) {
        let n = batch.len();
        let (h, order) = head_input(batch, Mode::Train)?;
        let z = ((h.matmul(&w.as_tensor().t()?)?.squeeze(1)? * head_scale)? + b.as_tensor().broadcast_as(n)?)?;
        let y: Vec<f32> = order.iter().map(|&j| ((kept[j].target - mean) / std) as f32).collect();
        let y = Tensor::new(y.as_slice(), model.llama.device())?;
        let loss = match plan.output {
            OutputKind::BinaryClassification => {
                // Binary cross-entropy on logits: softplus(z) − y·z.
                let softplus = (z.exp()? + 1.0)?.log()?;
                (softplus - (&y * &z)?)?.mean_all()?
            }
            _ => (z - &y)?.sqr()?.mean_all()?,
        };
        let grads = loss.backward()?;
        let lr = schedule(step, opts.steps, warmup, opts.lr, 0.1);
        opt.step(&grads, lr)?;
        seen += n;
        let elapsed = started.elapsed().as_secs_f64();
        let rate = seen as f64 / elapsed.max(1e-9);
        let remaining = (opts.steps - step - 1) as f64 * opts.batch as f64 / rate.max(1e-9);
        let mut report = StepReport {
            step: step + 1,
            total: opts.steps,
            loss: loss.to_scalar::<f32>()? as f64,
            lr,
            examples_per_s: rate,
            eta_s: remaining,
            valid: None,
            init: None,
        };
        let last = step + 1 == opts.steps;
        if (step + 1) % opts.eval_every.max(1) == 0 || last {
            report.valid = Some(validate(step + 1, &mut info)?);
            info.elapsed_s = elapsed_before + elapsed;
            save_checkpoint(&ckpt_path, &info_path, &info, &vectors, &w, &b, &opt)?;
        }
        on_step(&report);
    }
    let tag = Tag::load(out)?;
    let _ = std::fs::remove_file(&ckpt_path);
    let _ = std::fs::remove_file(&info_path);
    Ok(tag)
}

/// The tag as it stands: current vectors and head in the tag file format.
fn snapshot(template: &Tag, vectors: &Var, w: &Var, b: &Var, head_scale: f64) -> Result<Tag> {
    let head = Some(((w.as_tensor().detach() * head_scale)?, b.as_tensor().detach()));
    finish(template.meta.clone(), vectors.as_tensor().detach(), head)
}

#[allow(clippy::too_many_arguments)]
fn save_checkpoint(
    ckpt: &Path,
    info_path: &Path,
    info: &CheckpointInfo,
    vectors: &Var,
    w: &Var,
    b: &Var,
    opt: &AdamW,
) -> Result<()> {
    let mut tensors = std::collections::HashMap::new();
    tensors.insert("vectors".to_string(), vectors.as_tensor().detach());
    tensors.insert("w".to_string(), w.as_tensor().detach());
    tensors.insert("b".to_string(), b.as_tensor().detach());
    for i in 0..3 {
        tensors.insert(format!("m{i}"), opt.m[i].clone());
        tensors.insert(format!("v{i}"), opt.v[i].clone());
    }
    let tmp = ckpt.with_extension("tmp");
    candle_core::safetensors::save(&tensors, &tmp)?;
    std::fs::rename(&tmp, ckpt)?;
    let json = serde_json::to_string_pretty(info).map_err(|e| Error::Usage(e.to_string()))?;
    std::fs::write(info_path, json)?;
    Ok(())
}

/// Metrics of `tag` on labelled examples through the real inference path (the Predictor), and
/// ROC AUC for classification tags.
pub fn evaluate_tag(model: &Model, library: &TagLibrary, tag: &Tag, examples: &[Example]) -> Result<(RegressionMetrics, Option<f64>)> {
    let mut lib = library.clone();
    lib.insert(tag.clone(), &model.identity, tag.name())?;
    let predictor = Predictor::new(model, &lib, tag.name())?;
    let items: Vec<Vec<String>> = examples.iter().map(|e| e.inputs.clone()).collect();
    let results = predictor.predict(&items);
    let (mut pred, mut targ) = (Vec::new(), Vec::new());
    for (r, e) in results.iter().zip(examples) {
        if let Ok(v) = r {
            pred.push(*v);
            targ.push(e.target);
        }
    }
    let auc = (tag.meta.output == Some(OutputKind::BinaryClassification))
        .then(|| metrics::roc_auc(&pred, &targ.iter().map(|&t| t >= 0.5).collect::<Vec<_>>()));
    Ok((metrics::regression_metrics(&pred, &targ), auc))
}

/// Trains a domain tag (stage 1): next-token cross-entropy on `corpus` written after the tag.
/// Returns the tag and the mean loss of the first and last tenth of the steps.
pub fn train_domain_tag(
    model: &Model,
    name: &str,
    input: InputType,
    corpus: &[String],
    opts: &TrainOptions,
    out: &Path,
    mut on_step: impl FnMut(&StepReport),
) -> Result<(Tag, f64, f64)> {
    let fresh = crate::tags::init::new_domain_tag(model, name, input, opts.p, opts.seed)?;
    let vectors = Var::from_tensor(&fresh.vectors)?;
    let mut opt = AdamW::new(vec![vectors.clone()], opts.weight_decay)?;
    let tok = &model.tokenizer;
    let seqs: Vec<Vec<u32>> = corpus
        .iter()
        .filter_map(|raw| render_input(input, raw).ok())
        .filter_map(|text| tok.encode(&format!(" {text}")).ok())
        .filter(|ids| ids.len() >= 2 && ids.len() <= 512)
        .collect();
    if seqs.is_empty() {
        return Err(Error::Usage("no valid sequence in the corpus".into()));
    }
    let fake: Vec<Example> = seqs.iter().map(|_| Example { inputs: vec![], target: 0.0 }).collect();
    let batches = plan_batches(&fake, opts.steps, opts.batch, opts.seed, None, 1);
    let warmup = ((opts.steps as f64) * opts.warmup).ceil() as usize;
    let p = opts.p;
    let started = Instant::now();
    let mut losses = Vec::with_capacity(opts.steps);
    let mut seen = 0;
    for (step, batch) in batches.iter().enumerate() {
        let rows: Vec<Vec<Segment>> = batch
            .iter()
            .map(|&j| vec![Segment::Vectors(vectors.as_tensor().clone()), Segment::Tokens(seqs[j].clone())])
            .collect();
        let (x, _) = model.llama.embed_batch(&rows)?;
        let h = model.llama.forward(&x, &mut KvCache::new(), Mode::Train)?;
        // Position p-1+k predicts token k: gather the real positions of every row.
        let mut hs = Vec::new();
        let mut targets = Vec::new();
        for (r, &j) in batch.iter().enumerate() {
            let n = seqs[j].len();
            hs.push(h.i((r, p - 1..p - 1 + n))?);
            targets.extend_from_slice(&seqs[j]);
        }
        let hs = Tensor::cat(&hs, 0)?;
        let logits = model.llama.logits(&hs)?;
        let targets = Tensor::new(targets.as_slice(), model.llama.device())?;
        let loss = candle_nn::loss::cross_entropy(&logits, &targets)?;
        let grads = loss.backward()?;
        let lr = schedule(step, opts.steps, warmup, opts.lr, 0.1);
        opt.step(&grads, lr)?;
        let l = loss.to_scalar::<f32>()? as f64;
        losses.push(l);
        seen += batch.len();
        let rate = seen as f64 / started.elapsed().as_secs_f64().max(1e-9);
        on_step(&StepReport {
            step: step + 1,
            total: opts.steps,
            loss: l,
            lr,
            examples_per_s: rate,
            eta_s: (opts.steps - step - 1) as f64 * opts.batch as f64 / rate.max(1e-9),
            valid: None,
            init: None,
        });
    }
    let tenth = (losses.len() / 10).max(1);
    let first = losses[..tenth].iter().sum::<f64>() / tenth as f64;
    let last = losses[losses.len() - tenth..].iter().sum::<f64>() / tenth as f64;
    let mut meta = fresh.meta.clone();
    meta.provenance.insert("stage".into(), serde_json::json!(1));
    meta.provenance.insert("sequences".into(), serde_json::json!(seqs.len()));
    meta.provenance.insert("options".into(), serde_json::to_value(opts).unwrap_or_default());
    meta.provenance.insert("loss_first_tenth".into(), serde_json::json!(first));
    meta.provenance.insert("loss_last_tenth".into(), serde_json::json!(last));
    meta.provenance.insert("wall_time_s".into(), serde_json::json!(started.elapsed().as_secs_f64()));
    let tag = finish(meta, vectors.as_tensor().detach(), None)?;
    tag.save(out)?;
    debug_assert_eq!(tag.meta.kind, TagKind::Domain);
    Ok((tag, first, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10 proteins × 12 ligands, rows ordered ligand-major like a DAVIS file.
    fn pairs() -> Vec<Example> {
        (0..12).flat_map(|l| (0..10).map(move |p| Example { inputs: vec![format!("P{p}"), format!("L{l}")], target: (p + l) as f64 })).collect()
    }

    fn per_protein(examples: &[Example], rows: impl IntoIterator<Item = usize>) -> BTreeMap<String, usize> {
        let mut count = BTreeMap::new();
        for j in rows {
            *count.entry(examples[j].inputs[0].clone()).or_insert(0) += 1;
        }
        count
    }

    #[test]
    fn two_input_batches_mix_proteins_a_few_ligands_each() {
        let ex = pairs();
        let batches = plan_batches(&ex, 30, 8, 7, Some(0), 2);
        assert_eq!(batches.len(), 30);
        let mut full = 0;
        for b in &batches {
            let count = per_protein(&ex, b.iter().copied());
            assert!(count.values().all(|&c| c <= 2), "{count:?}");
            full += usize::from(count.len() == 4);
        }
        // Only an epoch's last batches may lack other proteins to mix with.
        assert!(full >= 26, "{full} of 30 batches mix 4 proteins");
        // An epoch covers every example once.
        let mut first: Vec<usize> = Vec::new();
        for b in &batches {
            if first.len() >= 120 {
                break;
            }
            first.extend(b);
        }
        first.sort_unstable();
        assert_eq!(first, (0..120).collect::<Vec<_>>());
        // The same seed plans the same run (a resumed run sees the same batches).
        assert_eq!(batches, plan_batches(&ex, 30, 8, 7, Some(0), 2));
        // per_group ≥ batch: a batch is one protein's ligands, as before.
        for b in plan_batches(&ex, 10, 4, 7, Some(0), 4) {
            assert_eq!(per_protein(&ex, b.iter().copied()).len(), 1);
        }
    }

    #[test]
    fn two_input_validation_spreads_over_proteins() {
        let ex = pairs();
        let v = validation_subset(ex.clone(), 25, 3);
        assert_eq!(v.len(), 25);
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        for e in &v {
            *count.entry(e.inputs[0].as_str()).or_insert(0) += 1;
        }
        assert!(count.values().all(|&c| c <= 3) && count.len() >= 9, "{count:?}");
        assert_eq!(v.iter().map(|e| &e.inputs).collect::<Vec<_>>(), validation_subset(ex, 25, 3).iter().map(|e| &e.inputs).collect::<Vec<_>>());
    }
}
