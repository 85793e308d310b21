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
pub mod function;
pub mod optim;
pub mod probe;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use candle_core::{IndexOp, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metrics::{self, RegressionMetrics};
use crate::model::{KvCache, Mode, Model, Segment};
use crate::predict::{render_input, Predictor};
use crate::rng::SplitMix64;
use crate::tags::init::finish;
use crate::tags::{InputType, OutputKind, Tag, TagKind, TagLibrary};
pub use data::{load_examples, Example};
pub use function::{start_path, train_function_tag, ClosedFormHead, FunctionPlan, HeadStats, Objective, Params};
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
    /// The head's learning rate as a fraction of the vectors' (AdamW moves every weight by
    /// about its rate per step: the head reads ~1,000 features of a state whose norm is ~40,
    /// the vectors are ~6,000 numbers of norm ~1 each).
    #[serde(default = "default_lr_head_ratio")]
    pub lr_head_ratio: f64,
    /// Gradients are clipped to this global norm (0: not clipped).
    #[serde(default = "default_clip")]
    pub clip: f64,
    /// Regression: re-solve the head in closed form every this many steps (the ridge start's
    /// penalty, on its rows and every batch's since, older rows decaying to stay worth the
    /// ridge start's count), and move only the vectors by AdamW (0: the head is moved by AdamW
    /// too, at `lr × lr_head_ratio`).
    #[serde(default)]
    pub refit_every: usize,
    /// Two-input tags: at most this many examples of one first input (a protein) in a batch, so
    /// a batch mixes `batch / per_group` proteins (one per batch lets each step pull the head
    /// toward one protein's mean; one per example runs a protein per example).
    #[serde(default = "default_per_group")]
    pub per_group: usize,
}

fn default_per_group() -> usize {
    4
}

fn default_lr_head_ratio() -> f64 {
    0.1
}

fn default_clip() -> f64 {
    1.0
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self { steps: 500, batch: 8, lr: 1e-3, weight_decay: 0.0, warmup: 0.03, eval_every: 100, seed: 1, p: 10, init_examples: 256, per_group: default_per_group(), lr_head_ratio: default_lr_head_ratio(), clip: default_clip(), refit_every: 10 }
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

/// The batches of a whole run, fixed by the seed so a resumed run sees the same ones. With
/// `group` set, a batch is made of runs of up to `per_group` examples sharing that input (one
/// protein and some of its ligands), so each run's common prefix is computed once.
pub(crate) fn plan_batches(examples: &[Example], steps: usize, batch: usize, seed: u64, group: Option<usize>, per_group: usize) -> Vec<Vec<usize>> {
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
pub(crate) fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len().max(1) as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
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
    meta.provenance.insert("examples_seen".into(), serde_json::json!(seen));
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
