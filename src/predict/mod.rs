//! From validated inputs to numbers: the function tag's template is filled in, the model runs,
//! the final-norm hidden state at the function tag's last position goes through the tag's head,
//! and the target normalisation is undone.
//!
//! Speed comes from two facts about causal attention: the part of the prompt that is the same
//! for every input (template text, domain tags — and the protein, when one protein is scored
//! against many molecules) is computed once and its keys/values reused, and the varying suffixes
//! run many at a time, right-padded, in one forward pass.

use std::collections::HashMap;

use candle_core::{Tensor, D};

use crate::error::{Error, Result};
use crate::input::{parse_protein, parse_smiles};
use crate::model::{KvCache, Llama, Mode, Model, Segment};
use crate::tags::{InputType, OutputKind, Piece, Tag, TagKind, TagLibrary, Template};

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Tokens(Vec<u32>),
    Tag(String),
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
        Ok(Self { model, function, template, tags, slots, head_w, head_b, batch_size: DEFAULT_BATCH })
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
        // The shared prefix: whole segments equal across every valid item.
        let first = &prompts[0].1;
        let shared = (0..first.len() - 1)
            .take_while(|&k| prompts.iter().all(|(_, keys)| keys[k] == first[k]))
            .count();
        let prefix = match self.run_prefix(&first[..shared]) {
            Ok(cache) => cache,
            Err(e) => {
                for (i, _) in &prompts {
                    results[*i] = Err(e.to_string());
                }
                return results;
            }
        };
        // Similar lengths together waste the least padding.
        let mut order: Vec<usize> = (0..prompts.len()).collect();
        order.sort_by_key(|&j| self.len_of(&prompts[j].1[shared..]));
        let mut done = 0;
        for chunk in order.chunks(self.batch_size.max(1)) {
            let suffixes: Vec<Vec<Segment>> =
                chunk.iter().map(|&j| self.segments(&prompts[j].1[shared..])).collect();
            match self.run_suffixes(&prefix, &suffixes) {
                Ok(values) => {
                    for (&j, v) in chunk.iter().zip(values) {
                        results[prompts[j].0] = Ok(v);
                    }
                }
                Err(e) => {
                    for &j in chunk {
                        results[prompts[j].0] = Err(format!("model failed: {e}"));
                    }
                }
            }
            done += chunk.len();
            if !progress(done, total) {
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

    fn run_prefix(&self, keys: &[Key]) -> Result<KvCache> {
        let mut cache = KvCache::new();
        if !keys.is_empty() {
            let x = self.model.llama.embed(&self.segments(keys))?.unsqueeze(0)?;
            self.model.llama.forward(&x, &mut cache, Mode::Infer)?;
        }
        Ok(cache)
    }

    /// Hidden states at the function tag's last position, `[n, d]`, for suffixes after `prefix`.
    pub(crate) fn readout(&self, prefix: &KvCache, suffixes: &[Vec<Segment>]) -> Result<Tensor> {
        let llama = &self.model.llama;
        let (x, lens) = llama.embed_batch(suffixes)?;
        let mut cache = prefix.clone();
        let hidden = llama.forward(&x, &mut cache, Mode::Infer)?;
        let last: Vec<usize> = lens.iter().map(|l| l - 1).collect();
        Llama::gather_positions(&hidden, &last)
    }

    fn run_suffixes(&self, prefix: &KvCache, suffixes: &[Vec<Segment>]) -> Result<Vec<f64>> {
        let h = self.readout(prefix, suffixes)?;
        let raw: Vec<f32> = h.broadcast_mul(&self.head_w)?.sum(D::Minus1)?.to_vec1()?;
        Ok(raw.into_iter().map(|r| self.finish(r + self.head_b)).collect())
    }

    /// Head output → the user's value: undo the target normalisation, or a probability.
    fn finish(&self, raw: f32) -> f64 {
        match (self.function.meta.output, &self.function.meta.target) {
            (Some(OutputKind::BinaryClassification), _) => 1.0 / (1.0 + (-raw as f64).exp()),
            (_, Some(t)) => raw as f64 * t.std + t.mean,
            _ => raw as f64,
        }
    }
}
