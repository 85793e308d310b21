//! One tag per file: safetensors with the vectors (and head) plus JSON metadata under the key
//! `tagllm`. Loading checks everything a later step relies on, so that a wrong or corrupt file
//! is refused with a message naming the problem instead of producing silent nonsense.

use std::collections::{BTreeMap, HashMap};

use candle_core::{Device, Tensor};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};
use serde::{Deserialize, Serialize};

use super::template::{is_valid_tag_name, Template};
use crate::error::{Error, Result};
use crate::model::ModelIdentity;

/// Version of the metadata layout written by this build.
pub const FORMAT_VERSION: u32 = 2;
/// Largest tag file accepted (a p = 10 tag for d = 576 is ~25 KB).
pub const MAX_TAG_FILE_BYTES: usize = 16 * 1024 * 1024;
const META_KEY: &str = "tagllm";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TagKind {
    Domain,
    Function,
}

/// What a domain tag marks: decides how an input is validated and written into the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputType {
    Smiles,
    Protein,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    Regression,
    BinaryClassification,
    Generation,
}

/// What a function tag's head reads from the model's final-norm hidden states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Readout {
    /// The state at the function tag's last position, as in the paper: head `[1, d]`.
    #[default]
    Last,
    /// That state, then the mean state over each input's tokens in template order (format
    /// version 2): head `[1, d · (1 + inputs)]`. The means are read from the same forward pass
    /// and cost nothing; they carry what the input is made of (atoms, residues) directly, where
    /// the tag's state has to gather it through attention.
    LastAndInputMeans,
}

impl Readout {
    fn is_last(&self) -> bool {
        *self == Readout::Last
    }
}

/// The predicted quantity: how the head's output maps back to the user's units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// e.g. "QED", "logP", "pKd".
    pub name: String,
    /// e.g. "" (unitless), "log units", "pH".
    #[serde(default)]
    pub units: String,
    /// Training-split mean and standard deviation: value = head · std + mean.
    pub mean: f64,
    pub std: f64,
    /// A bounded quantity's range (QED: 0 to 1): predictions are clamped to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<(f64, f64)>,
}

/// A domain tag a function tag was trained with, pinned by the hash of its vectors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    pub name: String,
    pub vectors_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagMeta {
    pub format_version: u32,
    pub name: String,
    pub kind: TagKind,
    pub p: usize,
    pub d: usize,
    pub base_model: ModelIdentity,
    #[serde(default)]
    pub description: String,
    /// Domain tags: what they mark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<InputType>,
    /// Function tags: the prompt they are used in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<OutputKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// Function tags with a head: what the head reads (absent: [`Readout::Last`]).
    #[serde(default, skip_serializing_if = "Readout::is_last")]
    pub readout: Readout,
    /// Function tags: the domain tags of the template, as trained.
    #[serde(default)]
    pub requires: Vec<Requirement>,
    /// Free-form training provenance (data, split, steps, time, command).
    #[serde(default)]
    pub provenance: BTreeMap<String, serde_json::Value>,
    /// Test metrics as measured at training time.
    #[serde(default)]
    pub metrics: BTreeMap<String, serde_json::Value>,
}

/// A loaded, checked tag.
#[derive(Debug, Clone)]
pub struct Tag {
    pub meta: TagMeta,
    /// `[p, d]`.
    pub vectors: Tensor,
    /// Regression / classification head: weight `[1, TagMeta::head_width]` and bias `[1]`.
    pub head: Option<(Tensor, Tensor)>,
    /// sha256 of the vectors' bytes: identifies a domain tag for the function tags built on it.
    pub vectors_sha256: String,
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn read_f32(view: &TensorView<'_>, file: &str, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
    if view.dtype() != Dtype::F32 {
        return Err(Error::tag(file, format!("tensor `{name}` is {:?}, expected F32", view.dtype())));
    }
    if view.shape() != shape {
        return Err(Error::tag(
            file,
            format!("tensor `{name}` has shape {:?}, expected {shape:?}", view.shape()),
        ));
    }
    let values: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(Error::tag(file, format!("tensor `{name}` holds a non-finite value at index {i}")));
    }
    Ok(values)
}

impl Tag {
    /// Parses and checks a tag file. `file` names it in error messages.
    pub fn from_bytes(bytes: &[u8], file: &str) -> Result<Self> {
        if bytes.len() > MAX_TAG_FILE_BYTES {
            return Err(Error::tag(
                file,
                format!("{} bytes is larger than the {} MB a tag file may have", bytes.len(), MAX_TAG_FILE_BYTES >> 20),
            ));
        }
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| Error::tag(file, format!("not a valid safetensors file ({e})")))?;
        let (_, header) = SafeTensors::read_metadata(bytes)
            .map_err(|e| Error::tag(file, format!("not a valid safetensors file ({e})")))?;
        let json = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get(META_KEY))
            .ok_or_else(|| Error::tag(file, "no `tagllm` metadata: this safetensors file is not a tag"))?;
        let meta: TagMeta = serde_json::from_str(json)
            .map_err(|e| Error::tag(file, format!("metadata is malformed: {e}")))?;
        meta.check(file)?;
        let vectors_view = st
            .tensor("vectors")
            .map_err(|_| Error::tag(file, "tensor `vectors` is missing"))?;
        let vectors = read_f32(&vectors_view, file, "vectors", &[meta.p, meta.d])?;
        let vectors_sha256 = crate::model::gguf::sha256_hex(vectors_view.data());
        let vectors = Tensor::from_vec(vectors, (meta.p, meta.d), &Device::Cpu)?;
        let head = match (meta.kind, meta.output) {
            (TagKind::Function, Some(OutputKind::Regression | OutputKind::BinaryClassification)) => {
                let w = st
                    .tensor("head.weight")
                    .map_err(|_| Error::tag(file, "tensor `head.weight` is missing"))?;
                let b = st
                    .tensor("head.bias")
                    .map_err(|_| Error::tag(file, "tensor `head.bias` is missing"))?;
                let width = meta.head_width();
                let w = read_f32(&w, file, "head.weight", &[1, width])?;
                let b = read_f32(&b, file, "head.bias", &[1])?;
                Some((
                    Tensor::from_vec(w, (1, width), &Device::Cpu)?,
                    Tensor::from_vec(b, 1, &Device::Cpu)?,
                ))
            }
            _ => None,
        };
        Ok(Self { meta, vectors, head, vectors_sha256 })
    }

    /// Serialises the tag to safetensors bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let vectors: Vec<f32> = self.vectors.flatten_all()?.to_vec1()?;
        let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> =
            vec![("vectors".into(), vec![self.meta.p, self.meta.d], f32_bytes(&vectors))];
        if let Some((w, b)) = &self.head {
            owned.push(("head.weight".into(), vec![1, self.meta.head_width()], f32_bytes(&w.flatten_all()?.to_vec1()?)));
            owned.push(("head.bias".into(), vec![1], f32_bytes(&b.flatten_all()?.to_vec1()?)));
        }
        let views = owned
            .iter()
            .map(|(n, s, d)| {
                TensorView::new(Dtype::F32, s.clone(), d)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| Error::Usage(format!("cannot serialise tag: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let json = serde_json::to_string(&self.meta)
            .map_err(|e| Error::Usage(format!("cannot serialise tag metadata: {e}")))?;
        let info = HashMap::from([(META_KEY.to_string(), json)]);
        safetensors::serialize(views, Some(info))
            .map_err(|e| Error::Usage(format!("cannot serialise tag: {e}")))
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| Error::tag(&shown, format!("cannot read: {e}")))?;
        Self::from_bytes(&bytes, &shown)
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        // Write-then-rename: an interrupted save never leaves a half-written tag behind.
        let tmp = path.with_extension("safetensors.tmp");
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    pub fn name(&self) -> &str {
        &self.meta.name
    }

    /// The parsed template of a function tag.
    pub fn template(&self) -> Option<Template> {
        self.meta.template.as_deref().and_then(|t| Template::parse(t).ok())
    }

    /// Refuses a tag trained on another base model.
    pub fn check_model(&self, model: &ModelIdentity, file: &str) -> Result<()> {
        let base = &self.meta.base_model;
        if base.architecture != model.architecture || base.hidden_size != model.hidden_size {
            return Err(Error::tag(
                file,
                format!(
                    "made for a {} model of width {}, but the loaded model is {} of width {}",
                    base.architecture, base.hidden_size, model.architecture, model.hidden_size
                ),
            ));
        }
        if base.gguf_sha256 != model.gguf_sha256 {
            return Err(Error::tag(
                file,
                format!(
                    "trained on the model file with sha256 {}…, but the loaded file is {}…; \
                     tags only work on the model they were trained on",
                    &base.gguf_sha256.get(..12).unwrap_or(&base.gguf_sha256),
                    &model.gguf_sha256.get(..12).unwrap_or(&model.gguf_sha256)
                ),
            ));
        }
        Ok(())
    }
}

impl TagMeta {
    /// Width of the head's weight: what [`Self::readout`] reads.
    pub fn head_width(&self) -> usize {
        match self.readout {
            Readout::Last => self.d,
            Readout::LastAndInputMeans => {
                let inputs = self.template.as_deref().and_then(|t| Template::parse(t).ok()).map_or(0, |t| t.inputs().count());
                self.d * (1 + inputs)
            }
        }
    }

    /// Internal consistency of the metadata alone.
    fn check(&self, file: &str) -> Result<()> {
        let bad = |reason: String| Err(Error::tag(file, reason));
        if self.format_version == 0 || self.format_version > FORMAT_VERSION {
            return bad(format!(
                "format version {} is not supported (this build reads up to {FORMAT_VERSION})",
                self.format_version
            ));
        }
        if !is_valid_tag_name(&self.name) {
            return bad(format!("tag name {:?} is not valid (letters, digits, _ and -, ≤ 40)", self.name));
        }
        if self.p == 0 || self.p > 256 {
            return bad(format!("p = {} is outside 1..=256", self.p));
        }
        if self.d == 0 || self.d != self.base_model.hidden_size {
            return bad(format!("d = {} does not match the base model width {}", self.d, self.base_model.hidden_size));
        }
        match self.kind {
            TagKind::Domain => {
                if self.input.is_none() {
                    return bad("a domain tag must say what it marks (`input`: smiles or protein)".into());
                }
            }
            TagKind::Function => {
                let Some(template) = &self.template else {
                    return bad("a function tag needs a `template`".into());
                };
                let t = Template::parse(template).map_err(|e| Error::tag(file, e.to_string()))?;
                t.check_for_function(&self.name).map_err(|e| Error::tag(file, e.to_string()))?;
                let Some(output) = self.output else {
                    return bad("a function tag needs an `output` kind".into());
                };
                for domain in t.tags().filter(|n| *n != self.name) {
                    if !self.requires.iter().any(|r| r.name == domain) {
                        return bad(format!("template uses <{domain}> but `requires` does not list it"));
                    }
                }
                if self.readout != Readout::Last && self.format_version < 2 {
                    return bad(format!("readout {:?} needs format version 2", self.readout));
                }
                if output == OutputKind::Regression {
                    match &self.target {
                        Some(t) if t.std.is_finite() && t.std > 0.0 && t.mean.is_finite() => {}
                        Some(t) => return bad(format!("target normalisation mean {} std {} is invalid", t.mean, t.std)),
                        None => return bad("a regression tag needs its `target` (name, units, mean, std)".into()),
                    }
                }
            }
        }
        Ok(())
    }
}
