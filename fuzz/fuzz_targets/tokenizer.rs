//! The real SmolLM2 tokenizer (rebuilt from the GGUF metadata, once) on arbitrary bytes:
//! encoding must give in-vocabulary ids that decode back to the text exactly, less the bytes
//! the vocabulary has no token for (SmolLM2 lacks 21 of the 256 byte tokens: 0x04, 0x06, 0x13,
//! 0x14, 0x16, 0x1d, 0xc0, 0xc1, 0xf1, 0xf2, 0xf5-0xff; byte-level BPE without an unknown
//! token has nothing to map them to and drops them); decoding and streaming arbitrary ids
//! (in range or not) must return text or a clean error.
//!
//! Needs the model file: `models/SmolLM2-135M-Instruct.Q4_1.gguf` (`scripts/setup.sh`), or
//! the path in `TAGLLM_MODEL`.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tagllm::model::{GgufFile, TextTokenizer, TokenStream, DEFAULT_MODEL_PATH};

static TOKENIZER: OnceLock<TextTokenizer> = OnceLock::new();
/// Which bytes have a token of their own (GPT-2 byte-to-character map).
static BYTE_HAS_TOKEN: OnceLock<[bool; 256]> = OnceLock::new();

fn byte_has_token(tokenizer: &TextTokenizer) -> [bool; 256] {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xa1..=0xac | 0xae..=0xff);
    let mut shifted = 0;
    std::array::from_fn(|b| {
        let b = b as u8;
        let c = if printable(b) {
            char::from(b)
        } else {
            shifted += 1;
            char::from_u32(255 + shifted).unwrap()
        };
        tokenizer.token_to_id(c.encode_utf8(&mut [0; 4])).is_some()
    })
}

fn load() -> TextTokenizer {
    let path = std::env::var_os("TAGLLM_MODEL").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(DEFAULT_MODEL_PATH)
    });
    let fail = |why: String| -> ! {
        eprintln!(
            "tokenizer fuzz target: {why}\n  it needs the model file {}: run scripts/setup.sh, \
             or set TAGLLM_MODEL to a SmolLM2 GGUF file",
            path.display()
        );
        std::process::exit(2)
    };
    let bytes = std::fs::read(&path).unwrap_or_else(|e| fail(format!("cannot read the model file ({e})")));
    let file = GgufFile::from_bytes(bytes).unwrap_or_else(|e| fail(e.to_string()));
    TextTokenizer::from_gguf(&file.content).unwrap_or_else(|e| fail(e.to_string()))
}

fuzz_target!(
    init: {
        let tokenizer = TOKENIZER.get_or_init(load);
        BYTE_HAS_TOKEN.get_or_init(|| byte_has_token(tokenizer));
    },
    |data: &[u8]| {
        let tokenizer = TOKENIZER.get_or_init(load);
        let has_token = BYTE_HAS_TOKEN.get_or_init(|| byte_has_token(tokenizer));
        let vocab = tokenizer.vocab_size();

        let text = String::from_utf8_lossy(data);
        match tokenizer.encode(&text) {
            Ok(ids) => {
                assert!(ids.iter().all(|&id| (id as usize) < vocab), "id out of vocabulary");
                let back = tokenizer.decode(&ids).expect("encoded ids decode");
                let kept: Vec<u8> = text.bytes().filter(|&b| has_token[usize::from(b)]).collect();
                assert_eq!(back, String::from_utf8_lossy(&kept), "decode(encode(text)) != text");
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }

        // The same bytes as token ids, 16 bits each: the vocabulary (49152) and ids beyond it.
        let ids: Vec<u32> = data
            .chunks(2)
            .map(|c| u32::from(u16::from_le_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
            .collect();
        let _ = tokenizer.decode(&ids);
        // A stream decodes everything so far on each push: a few ids keep this cheap.
        let mut stream = TokenStream::new(tokenizer);
        for &id in ids.iter().take(16) {
            let _ = tokenizer.token_text(id);
            let _ = tokenizer.is_eos(id);
            let _ = stream.push(id);
        }
    }
);
