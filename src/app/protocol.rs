//! Messages between the page and its inference worker (JSON strings over `postMessage`; a tag
//! file's bytes travel as a second array element).

use serde::{Deserialize, Serialize};

use crate::tags::{InputType, Tag, TagKind};

/// Page → worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ToWorker {
    /// Load the model (from Cache Storage, else `model_url`) and the tags listed at `tags_url`.
    Init {
        model_url: String,
        model_sha256: String,
        tags_url: String,
        weights: WeightsChoice,
        #[serde(default)]
        backend: BackendChoice,
    },
    /// A user's GGUF model file (its bytes follow the message); replaces the loaded model if it
    /// loads, else the current one stays (`ModelError`).
    LoadModel {
        file: String,
        weights: WeightsChoice,
        #[serde(default)]
        backend: BackendChoice,
    },
    /// A user's tag file (its bytes follow the message).
    AddTag { file: String },
    Predict { id: u32, tag: String, items: Vec<Vec<String>> },
    Cancel { id: u32 },
    /// Free text generation; `<Tag>` names in the prompt splice in loaded tags.
    Generate { id: u32, prompt: String, max_tokens: usize, temperature: f64, seed: u64 },
    /// The `k` vocabulary tokens nearest (cosine) to each vector of tag `tag`; `centred`: with the
    /// direction of the vocabulary's mean embedding projected out of both.
    Inspect {
        tag: String,
        k: usize,
        #[serde(default)]
        centred: bool,
    },
    /// The benchmark view (`?bench`): the figures of `crate::bench` on the loaded model — prefill
    /// at each of `prefill` tokens, `decode_tokens` greedy steps, tag `tag` over the first
    /// `molecules` benchmark SMILES, and the matrix products if `kernels`.
    Bench { molecules: usize, tag: String, kernels: bool, prefill: Vec<usize>, decode_tokens: usize },
    /// Fault injection (the page's `?fault=lose-gpu`, for tests): destroy the GPU device, as a
    /// driver reset would, after the next GPU forward pass.
    LoseGpuDevice,
}

/// Where the forward pass runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum BackendChoice {
    /// WebGPU when the browser offers an adapter that fits, else the CPU.
    #[default]
    Auto,
    /// WebGPU if at all possible (the CPU, with the reason, if not).
    Gpu,
    Cpu,
}

impl BackendChoice {
    /// From the page's `?backend=` value (or a saved choice): `gpu`/`webgpu`, `cpu`, else auto.
    pub fn parse(s: &str) -> Self {
        match s.to_ascii_lowercase().as_str() {
            "gpu" | "webgpu" => Self::Gpu,
            "cpu" | "wasm" => Self::Cpu,
            _ => Self::Auto,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Gpu => "gpu",
            Self::Cpu => "cpu",
        }
    }
}

/// How the worker holds the weights: `F32` gives the results of f32 weights (held as the
/// file's blocks, `Weights::Compact`); `Quantized` runs candle's quantised kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WeightsChoice {
    F32,
    Quantized,
}

/// Worker → page.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum FromWorker {
    /// The worker is running and listening (messages sent before this would be lost).
    Hello,
    /// Model download progress (bytes).
    Download { loaded: u64, total: u64 },
    /// A loading step, for the status line.
    Status { text: String },
    /// The model is loaded.
    Ready {
        weights: WeightsChoice,
        backend: String,
        load_ms: f64,
        from_cache: bool,
        model: ModelInfo,
        tags: Vec<TagInfo>,
        tag_errors: Vec<String>,
    },
    /// The backend changed after loading (WebGPU failed; the rest runs on the CPU): what runs now.
    Backend { backend: String },
    /// Loading failed for good.
    Fatal { message: String },
    /// A user's model file was refused; the model loaded before stays.
    ModelError { message: String },
    /// The tag library changed (or a tag file was refused: `errors`).
    Tags { tags: Vec<TagInfo>, errors: Vec<String> },
    /// `done` counts every finished input, invalid ones (done at once) included.
    Progress { id: u32, done: usize, total: usize },
    /// Outcomes as they are computed: (index in the run's items, outcome).
    Partial { id: u32, values: Vec<(usize, Outcome)> },
    Results { id: u32, values: Vec<Outcome>, ms: f64, cancelled: bool },
    /// A piece of generated text, as soon as it is complete.
    Piece { id: u32, text: String },
    /// Generation ended; `on_gpu`: its forward passes ran on WebGPU.
    Generated { id: u32, tokens: usize, ms: f64, error: Option<String>, on_gpu: bool },
    /// For each of the tag's vectors, the nearest vocabulary tokens (text, cosine).
    Nearest { tag: String, centred: bool, vectors: Vec<Vec<(String, f32)>>, ms: f64, error: Option<String> },
    /// The answer to `Bench`: the figures as JSON (see `src/app/worker/bench.rs`), or why not.
    BenchReport { report: Option<serde_json::Value>, error: Option<String> },
}

/// The loaded model, for the status line.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub sha256: String,
    /// "downloaded", "browser cache", or "local file NAME".
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    Value(f64),
    Error(String),
}

/// What the page needs to know about a tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagInfo {
    pub name: String,
    pub function: bool,
    pub description: String,
    /// e.g. "QED", "pKd -log10(M)"
    pub target: String,
    /// Function tags: inputs in template order; empty if the tag cannot predict (then `problem`).
    pub slots: Vec<SlotInfo>,
    pub problem: Option<String>,
    pub metrics: String,
    /// Tag file format version and the sha256 of the vectors (identifies the tag's version).
    pub format_version: u32,
    pub vectors_sha256: String,
    /// Number of vectors.
    pub p: usize,
    /// Domain tags: what they mark ("SMILES", "protein").
    pub input: Option<String>,
    pub template: String,
    /// Domain tags a function tag was trained with.
    pub requires: Vec<String>,
    /// Training provenance, `key: value` pairs.
    pub provenance: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotInfo {
    pub domain: String,
    pub protein: bool,
}

impl SlotInfo {
    pub fn kind(&self) -> InputType {
        if self.protein {
            InputType::Protein
        } else {
            InputType::Smiles
        }
    }
}

impl TagInfo {
    pub fn basic(tag: &Tag) -> Self {
        let m = &tag.meta;
        let target = m
            .target
            .as_ref()
            .map(|t| format!("{} {}", t.name, t.units).trim().to_string())
            .unwrap_or_default();
        let metrics = m
            .metrics
            .iter()
            .map(|(k, v)| match v.as_f64() {
                Some(x) => format!("{k} {x:.3}"),
                None => format!("{k} {v}"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let show = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        Self {
            name: m.name.clone(),
            function: m.kind == TagKind::Function,
            description: m.description.clone(),
            target,
            slots: Vec::new(),
            problem: None,
            metrics,
            format_version: m.format_version,
            vectors_sha256: tag.vectors_sha256.clone(),
            p: m.p,
            input: m.input.map(|i| match i {
                InputType::Protein => "protein".to_string(),
                other => format!("{other:?}").to_uppercase(),
            }),
            template: m.template.clone().unwrap_or_default(),
            requires: m.requires.iter().map(|r| r.name.clone()).collect(),
            provenance: m.provenance.iter().map(|(k, v)| (k.clone(), show(v))).collect(),
        }
    }
}

/// One line of the result table, ready for CSV (`input,prediction,error`, like the CLI).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
