//! From validated inputs to numbers: the function tag's template is filled in, the model runs,
//! the final-norm hidden state at the function tag's last position goes through the tag's head,
//! and the target normalisation is undone.
//!
//! Speed comes from two facts about causal attention: the part of the prompt that is the same
//! for every input (template text, domain tags — and the protein, when one protein is scored
//! against many molecules) is computed once and its keys/values reused, and the varying suffixes
//! run many at a time, right-padded, in one forward pass.

use std::collections::HashMap;

use candle_core::{IndexOp, Tensor, D};

use crate::error::{Error, Result};
use crate::input::{parse_protein, parse_smiles};
use crate::model::{KvCache, Llama, Mode, Model, Segment};
use crate::tags::{InputType, OutputKind, Piece, Readout, Tag, TagKind, TagLibrary, Template};

#[cfg(feature = "gpu")]
mod gpu;

/// Default number of inputs per forward pass.
pub const DEFAULT_BATCH: usize = 8;

/// One input of a function tag: the domain it belongs to and how to check it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSlot {
    pub domain: String,
    pub kind: InputType,
}

/// Validates one raw input of `kind` and returns the text that goes into the prompt.
pub fn render_input(kind: InputType, raw: &str) -> std::result::Result<String, String> {
    match kind {
        InputType::Smiles => parse_smiles(raw).map(|s| s.as_str().to_string()).map_err(|e| e.to_string()),
        InputType::Protein => parse_protein(raw).map(|p| p.spaced()).map_err(|e| e.to_string()),
    }
}

/// One piece of a built prompt: token ids, or a tag by name. Comparable, so that the prefix
/// shared by a batch can be found.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Tokens(Vec<u32>),
    Tag(String),
}

/// Indices of `keys` grouped by equal key, groups in order of first appearance.
pub(crate) fn groups_in_order<'k, K: std::hash::Hash + Eq + ?Sized>(keys: impl IntoIterator<Item = &'k K>) -> Vec<(&'k K, Vec<usize>)> {
    let mut groups: Vec<(&K, Vec<usize>)> = Vec::new();
    let mut group_of: HashMap<&K, usize> = HashMap::new();
    for (j, key) in keys.into_iter().enumerate() {
        let g = *group_of.entry(key).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[g].1.push(j);
    }
    groups
}

/// Locks a cache, even one a panicking thread left poisoned (it holds a value or nothing).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// How many batches run at once: one per thread natively, one in the page's worker.
pub(crate) fn parallel_batches() -> usize {
    #[cfg(not(target_arch = "wasm32"))]
    return rayon::current_num_threads().max(1);
    #[cfg(target_arch = "wasm32")]
    1
}

/// `f` over `items`, in order; natively on the thread pool.
pub(crate) fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync + Send) -> Vec<R> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        items.par_iter().map(f).collect()
    }
    #[cfg(target_arch = "wasm32")]
    items.iter().map(f).collect()
}

/// The shared start of a batch's prompts, computed once: its keys, cache and final-norm states.
#[derive(Clone)]
pub struct Prefix {
    pub keys: Vec<Key>,
    pub cache: KvCache,
    /// `[t, d]`; `None` for an empty prefix.
    pub hidden: Option<Tensor>,
}

impl Prefix {
    /// No shared prefix: every prompt runs whole.
    pub fn empty() -> Self {
        Self { keys: vec![], cache: KvCache::new(), hidden: None }
    }
}

/// A function tag ready to predict with.
pub struct Predictor<'a> {
    model: &'a Model,
    function: &'a Tag,
    template: Template,
    tags: HashMap<String, &'a Tag>,
    slots: Vec<InputSlot>,
    head_w: Tensor,
    head_b: f32,
    /// Indices of the input pieces in the template (and so in a prompt's keys).
    input_keys: Vec<usize>,
    last_prefix: std::sync::Mutex<Option<Prefix>>,
    /// The last prefix run on a GPU, with the GPU cache's epoch it is valid for.
    #[cfg(feature = "gpu")]
    gpu_prefix: std::sync::Mutex<Option<(u64, Prefix)>>,
    /// Inputs per forward pass.
    pub batch_size: usize,
}

impl<'a> Predictor<'a> {
    /// Prepares function tag `name` from `library`, checking that its domain tags are present and
    /// are the very ones it was trained with.
    pub fn new(model: &'a Model, library: &'a TagLibrary, name: &str) -> Result<Self> {
        let function = library.get(name)?;
        if function.meta.kind != TagKind::Function {
            return Err(Error::Usage(format!("`{name}` is a domain tag; predictions need a function tag")));
        }
        let (head_w, head_b) = match (&function.head, function.meta.output) {
            (Some((w, b)), Some(OutputKind::Regression | OutputKind::BinaryClassification)) => {
                (w.flatten_all()?, b.flatten_all()?.to_vec1::<f32>()?[0])
            }
            _ => return Err(Error::Usage(format!("`{name}` has no prediction head (it is a generation tag)"))),
        };
        let template = function
            .template()
            .ok_or_else(|| Error::Usage(format!("`{name}` has no usable template")))?;
        let mut tags = HashMap::from([(name.to_string(), function)]);
        for req in &function.meta.requires {
            let tag = library.get(&req.name).map_err(|_| {
                Error::Usage(format!("`{name}` needs the domain tag `{}`, which is not loaded", req.name))
            })?;
            if tag.vectors_sha256 != req.vectors_sha256 {
                return Err(Error::Usage(format!(
                    "`{name}` was trained with a different `{}` tag than the one loaded; load the \
                     `{}` tag it shipped with",
                    req.name, req.name
                )));
            }
            tags.insert(req.name.clone(), tag);
        }
        let mut slots = Vec::new();
        for domain in template.inputs() {
            let tag = tags
                .get(domain)
                .ok_or_else(|| Error::Usage(format!("template input {{{domain}}} has no domain tag")))?;
            let kind = tag.meta.input.ok_or_else(|| {
                Error::Usage(format!("`{domain}` is not a domain tag with an input type"))
            })?;
            slots.push(InputSlot { domain: domain.to_string(), kind });
        }
        let input_keys = template
            .pieces
            .iter()
            .enumerate()
            .filter_map(|(i, p)| matches!(p, Piece::Input { .. }).then_some(i))
            .collect();
        Ok(Self {
            model,
            function,
            template,
            tags,
            slots,
            head_w,
            head_b,
            input_keys,
            last_prefix: Default::default(),
            #[cfg(feature = "gpu")]
            gpu_prefix: Default::default(),
            batch_size: DEFAULT_BATCH,
        })
    }

    pub fn tag(&self) -> &Tag {
        self.function
    }

    /// The inputs each prediction needs, in template order (e.g. Protein then SMILES).
    pub fn slots(&self) -> &[InputSlot] {
        &self.slots
    }

    /// Validates one item (one raw string per slot) and builds its prompt as keyed segments.
    /// Validates one item and builds its prompt; the function tag is the last key.
    pub fn prompt(&self, item: &[String]) -> std::result::Result<Vec<Key>, String> {
        if item.len() != self.slots.len() {
            return Err(format!("expected {} inputs ({}), got {}", self.slots.len(), self.slot_names(), item.len()));
        }
        let tok = &self.model.tokenizer;
        let mut keys = Vec::with_capacity(self.template.pieces.len());
        let mut slot = 0;
        let mut total = 0;
        for piece in &self.template.pieces {
            let key = match piece {
                Piece::Text(text) => Key::Tokens(tok.encode(text).map_err(|e| e.to_string())?),
                Piece::Tag(name) => Key::Tag(name.clone()),
                Piece::Input { lead, .. } => {
                    let s = &self.slots[slot];
                    let rendered = render_input(s.kind, &item[slot])
                        .map_err(|e| if self.slots.len() > 1 { format!("{}: {e}", s.domain) } else { e })?;
                    slot += 1;
                    Key::Tokens(tok.encode(&format!("{lead}{rendered}")).map_err(|e| e.to_string())?)
                }
            };
            total += match &key {
                Key::Tokens(t) => t.len(),
                Key::Tag(n) => self.tags[n].meta.p,
            };
            keys.push(key);
        }
        let ctx = self.model.llama.config.context_length;
        if total > ctx {
            return Err(format!("the prompt is {total} tokens long, more than the model's {ctx}"));
        }
        Ok(keys)
    }

    fn slot_names(&self) -> String {
        self.slots.iter().map(|s| s.domain.as_str()).collect::<Vec<_>>().join(", ")
    }

    /// The model input for keys: token ids as they are, tags replaced by their vectors.
    pub fn segments(&self, keys: &[Key]) -> Vec<Segment> {
        keys.iter()
            .map(|k| match k {
                Key::Tokens(t) => Segment::Tokens(t.clone()),
                Key::Tag(n) => Segment::Vectors(self.tags[n].vectors.clone()),
            })
            .collect()
    }

    /// Predicts every item; one result per item, in order. A bad item gets its error and never
    /// stops the others.
    pub fn predict(&self, items: &[Vec<String>]) -> Vec<std::result::Result<f64, String>> {
        self.predict_with_progress(items, |_, _| true)
    }

    /// As [`Self::predict`], calling `progress(done, total)` after each forward pass; returning
    /// `false` from it cancels the items not yet computed.
    pub fn predict_with_progress(
        &self,
        items: &[Vec<String>],
        mut progress: impl FnMut(usize, usize) -> bool,
    ) -> Vec<std::result::Result<f64, String>> {
        let mut results: Vec<std::result::Result<f64, String>> =
            vec![Err("cancelled before it was computed".to_string()); items.len()];
        let mut prompts = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match self.prompt(item) {
                Ok(keys) => prompts.push((i, keys)),
                Err(e) => results[i] = Err(e),
            }
        }
        if prompts.is_empty() {
            return results;
        }
        let total = prompts.len();
        // Items that agree on everything before their last input (the template text, the domain
        // tags — and the protein when one protein is scored against many molecules) form a
        // group whose prefix runs once.
        let split = self.input_keys.last().copied().unwrap_or(0);
        let groups = groups_in_order(prompts.iter().map(|(_, keys)| &keys[..split]));
        let mut done = 0;
        for (prefix_keys, mut members) in groups {
            let prefix = match self.cached_prefix(prefix_keys) {
                Ok(prefix) => prefix,
                Err(e) => {
                    for &j in &members {
                        results[prompts[j].0] = Err(format!("model failed: {e}"));
                    }
                    done += members.len();
                    if !progress(done, total) {
                        break;
                    }
                    continue;
                }
            };
            // Similar lengths together waste the least padding.
            members.sort_by_key(|&j| self.len_of(&prompts[j].1[split..]));
            // Natively the batches of a wave run side by side, one per thread: far better use of
            // the cores than splitting each batch's small products between them.
            let chunks: Vec<&[usize]> = members.chunks(self.batch_size.max(1)).collect();
            let mut cancelled = false;
            for wave in chunks.chunks(parallel_batches()) {
                let values = par_map(wave, |chunk| {
                    let suffixes: Vec<&[Key]> = chunk.iter().map(|&j| &prompts[j].1[split..]).collect();
                    self.run_suffixes(&prefix, &suffixes)
                });
                for (chunk, values) in wave.iter().zip(values) {
                    match values {
                        Ok(values) => {
                            for (&j, v) in chunk.iter().zip(values) {
                                results[prompts[j].0] = Ok(v);
                            }
                        }
                        Err(e) => {
                            for &j in chunk.iter() {
                                results[prompts[j].0] = Err(format!("model failed: {e}"));
                            }
                        }
                    }
                    done += chunk.len();
                }
                if !progress(done, total) {
                    cancelled = true;
                    break;
                }
            }
            if cancelled {
                break;
            }
        }
        results
    }

    /// Positions that `keys` take in the model input.
    pub fn len_of(&self, keys: &[Key]) -> usize {
        keys.iter()
            .map(|k| match k {
                Key::Tokens(t) => t.len(),
                Key::Tag(n) => self.tags[n].meta.p,
            })
            .sum()
    }

    /// The prefix for `keys`, reusing the last one computed: a caller that feeds one protein's
    /// ligands in small sub-batches (the page, to stay responsive) runs the protein once.
    fn cached_prefix(&self, keys: &[Key]) -> Result<Prefix> {
        if let Some(p) = lock(&self.last_prefix).as_ref().filter(|p| p.keys == keys) {
            return Ok(p.clone());
        }
        let p = self.run_prefix(keys)?;
        *lock(&self.last_prefix) = Some(p.clone());
        Ok(p)
    }

    /// Runs the shared prefix `keys` once: its cache and its final-norm hidden states `[t, d]`.
    pub fn run_prefix(&self, keys: &[Key]) -> Result<Prefix> {
        let mut cache = KvCache::new();
        let mut hidden = None;
        if !keys.is_empty() {
            let x = self.model.llama.embed(&self.segments(keys))?.unsqueeze(0)?;
            hidden = Some(self.model.llama.forward(&x, &mut cache, Mode::Infer)?.squeeze(0)?);
        }
        Ok(Prefix { keys: keys.to_vec(), cache, hidden })
    }

    /// With [`Readout::LastAndInputMeans`], the mean final-norm state over each input's tokens,
    /// `[n, inputs · d]`, for rows that continue `prefix` with `rows[i]` (their suffix keys)
    /// whose states are `hidden` (`[n, s, d]`). `None` for the paper's readout.
    pub fn input_means(&self, prefix: &Prefix, rows: &[&[Key]], hidden: &Tensor) -> Result<Option<Tensor>> {
        if self.function.meta.readout == Readout::Last {
            return Ok(None);
        }
        let shared = prefix.keys.len();
        let mut per_input = Vec::with_capacity(self.input_keys.len());
        for &k in &self.input_keys {
            if k < shared {
                let start = self.len_of(&prefix.keys[..k]);
                let len = self.len_of(&prefix.keys[k..=k]);
                let h = prefix.hidden.as_ref().ok_or_else(|| Error::Usage("prefix without states".into()))?;
                let m = h.narrow(0, start, len)?.mean_keepdim(0)?;
                per_input.push(m.broadcast_as((rows.len(), m.dim(1)?))?.contiguous()?);
            } else {
                let means = rows
                    .iter()
                    .enumerate()
                    .map(|(i, keys)| {
                        let start = self.len_of(&keys[..k - shared]);
                        let len = self.len_of(&keys[k - shared..=k - shared]);
                        hidden.i(i)?.narrow(0, start, len)?.mean_keepdim(0)
                    })
                    .collect::<candle_core::Result<Vec<_>>>()?;
                per_input.push(Tensor::cat(&means, 0)?);
            }
        }
        Ok(Some(Tensor::cat(&per_input, 1)?))
    }

    /// The head's input, `[n, width]`, for suffixes after `prefix`: the state at the function
    /// tag's last position, then the input means if the tag reads them.
    pub(crate) fn readout(&self, prefix: &Prefix, suffixes: &[&[Key]]) -> Result<Tensor> {
        let llama = &self.model.llama;
        let segments: Vec<Vec<Segment>> = suffixes.iter().map(|k| self.segments(k)).collect();
        let (x, lens) = llama.embed_batch(&segments)?;
        let mut cache = prefix.cache.clone();
        let hidden = llama.forward(&x, &mut cache, Mode::Infer)?;
        self.head_input(prefix, suffixes, &hidden, &lens)
    }

    /// The head's input from the final-norm states `hidden` (`[n, s, d]`) of rows that continue
    /// `prefix` with `suffixes`, each `lens[i]` positions long.
    pub(crate) fn head_input(&self, prefix: &Prefix, suffixes: &[&[Key]], hidden: &Tensor, lens: &[usize]) -> Result<Tensor> {
        let last: Vec<usize> = lens.iter().map(|l| l - 1).collect();
        let last = Llama::gather_positions(hidden, &last)?;
        match self.input_means(prefix, suffixes, hidden)? {
            Some(means) => Ok(Tensor::cat(&[last, means], 1)?),
            None => Ok(last),
        }
    }

    fn run_suffixes(&self, prefix: &Prefix, suffixes: &[&[Key]]) -> Result<Vec<f64>> {
        self.values(&self.readout(prefix, suffixes)?)
    }

    /// Head inputs `[n, width]` → the user's values.
    pub(crate) fn values(&self, head_input: &Tensor) -> Result<Vec<f64>> {
        let raw: Vec<f32> = head_input.broadcast_mul(&self.head_w)?.sum(D::Minus1)?.to_vec1()?;
        Ok(raw.into_iter().map(|r| self.finish(r + self.head_b)).collect())
    }

    /// Head output → the user's value: undo the target normalisation, or a probability.
    fn finish(&self, raw: f32) -> f64 {
        match (self.function.meta.output, &self.function.meta.target) {
            (Some(OutputKind::BinaryClassification), _) => 1.0 / (1.0 + (-raw as f64).exp()),
            (_, Some(t)) => {
                let v = raw as f64 * t.std + t.mean;
                t.range.map_or(v, |(lo, hi)| v.clamp(lo, hi))
            }
            _ => raw as f64,
        }
    }
}
