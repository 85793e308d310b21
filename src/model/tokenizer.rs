//! The text tokenizer, rebuilt from the GGUF metadata (no `tokenizer.json` ships).
//!
//! SmolLM2 uses GPT-2 style byte-level BPE with one twist that the GGUF names
//! `tokenizer.ggml.pre = "smollm"`: digits are split one by one before the byte-level regex
//! runs (llama.cpp's `LLAMA_VOCAB_PRE_TYPE_SMOLLM`; Hugging Face's `Digits(individual_digits)`).
//! Control tokens (`<|im_start|>`, `<|endoftext|>`, …) are added as special tokens so that they
//! are matched whole in text and can be skipped when decoding.

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{Error, Result};

/// GGUF `tokenizer.ggml.token_type` value of control tokens.
const TOKEN_TYPE_CONTROL: u32 = 3;

/// A byte-level BPE tokenizer plus the ids the model treats specially.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    /// End-of-sequence token ids: generation stops at any of them.
    pub eos_ids: Vec<u32>,
}

fn strings(content: &Content, key: &str) -> Result<Vec<String>> {
    let values = content
        .metadata
        .get(key)
        .and_then(|v| v.to_vec().ok())
        .ok_or_else(|| Error::Tokenizer(format!("GGUF metadata `{key}` is missing")))?;
    values
        .iter()
        .map(|v| {
            v.to_string()
                .cloned()
                .map_err(|_| Error::Tokenizer(format!("`{key}` holds a non-string")))
        })
        .collect()
}

/// An integer metadata value as u32, whatever its stored width; `None` for other kinds or values
/// out of range. Matches on the value rather than trying candle's `to_*` conversions, whose
/// errors capture a backtrace each (0.3 s over the 49,152 token types with RUST_BACKTRACE=1).
fn as_u32(v: &Value) -> Option<u32> {
    match *v {
        Value::U8(x) => Some(x.into()),
        Value::U16(x) => Some(x.into()),
        Value::U32(x) => Some(x),
        Value::U64(x) => u32::try_from(x).ok(),
        Value::I8(x) => u32::try_from(x).ok(),
        Value::I16(x) => u32::try_from(x).ok(),
        Value::I32(x) => u32::try_from(x).ok(),
        Value::I64(x) => u32::try_from(x).ok(),
        _ => None,
    }
}

impl TextTokenizer {
    pub fn from_gguf(content: &Content) -> Result<Self> {
        let model = content
            .metadata
            .get("tokenizer.ggml.model")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        if model != "gpt2" {
            return Err(Error::Tokenizer(format!(
                "tokenizer model `{model}` is not supported (byte-level BPE, `gpt2`, is)"
            )));
        }
        let tokens = strings(content, "tokenizer.ggml.tokens")?;
        let merges = strings(content, "tokenizer.ggml.merges")?
            .into_iter()
            .map(|m| match m.split_once(' ') {
                Some((a, b)) => Ok((a.to_string(), b.to_string())),
                None => Err(Error::Tokenizer(format!("malformed merge `{m}`"))),
            })
            .collect::<Result<Vec<_>>>()?;
        let vocab: tokenizers::models::bpe::Vocab =
            tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let mut inner = Tokenizer::new(bpe);
        inner.with_pre_tokenizer(Some(Sequence::new(vec![
            Digits::new(true).into(),
            ByteLevel::new(false, true, true).into(),
        ])));
        inner.with_decoder(Some(ByteLevelDecoder::default()));

        let types: Vec<u32> = content
            .metadata
            .get("tokenizer.ggml.token_type")
            .and_then(|v| v.to_vec().ok())
            .map(|vs| vs.iter().map(|v| as_u32(v).unwrap_or(1)).collect())
            .unwrap_or_default();
        let specials: Vec<AddedToken> = tokens
            .iter()
            .zip(types.iter())
            .filter(|(_, &t)| t == TOKEN_TYPE_CONTROL)
            .map(|(tok, _)| AddedToken::from(tok.clone(), true))
            .collect();
        inner
            .add_special_tokens(specials)
            .map_err(|e| Error::Tokenizer(format!("cannot add special tokens: {e}")))?;

        let mut eos_ids = Vec::new();
        if let Some(id) = content.metadata.get("tokenizer.ggml.eos_token_id").and_then(as_u32) {
            eos_ids.push(id);
        }
        // The instruct model ends a chat turn with <|im_end|>; treat it as an end too.
        for extra in ["<|im_end|>", "<|endoftext|>"] {
            if let Some(id) = inner.token_to_id(extra) {
                if !eos_ids.contains(&id) {
                    eos_ids.push(id);
                }
            }
        }
        Ok(Self { inner, eos_ids })
    }

    /// Token ids of `text`; special tokens written in the text are recognised.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.inner
            .encode_fast(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| Error::Tokenizer(format!("cannot encode text: {e}")))
    }

    /// The text of `ids`, special tokens included.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| Error::Tokenizer(format!("cannot decode ids: {e}")))
    }

    /// The vocabulary entry of one id, as raw bytes decoded to text (lossy for partial UTF-8).
    pub fn token_text(&self, id: u32) -> String {
        self.decode(&[id]).unwrap_or_default()
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn is_eos(&self, id: u32) -> bool {
        self.eos_ids.contains(&id)
    }
}

/// Turns a stream of generated ids into text pieces without splitting multi-byte characters.
pub struct TokenStream<'a> {
    tokenizer: &'a TextTokenizer,
    ids: Vec<u32>,
    emitted: usize,
}

impl<'a> TokenStream<'a> {
    pub fn new(tokenizer: &'a TextTokenizer) -> Self {
        Self { tokenizer, ids: Vec::new(), emitted: 0 }
    }

    /// Adds a token; returns the new text that is complete so far, if any.
    pub fn push(&mut self, id: u32) -> Result<Option<String>> {
        self.ids.push(id);
        let text = self.tokenizer.decode(&self.ids)?;
        // A trailing U+FFFD means the last character's bytes are not all there yet.
        if text.ends_with('\u{FFFD}') || text.len() <= self.emitted {
            return Ok(None);
        }
        let piece = text.get(self.emitted..).map(str::to_string);
        self.emitted = text.len();
        Ok(piece)
    }
}
