//! Inputs that crashed a parser or broke an invariant, found by the fuzz targets in `fuzz/`
//! (fuzz/README.md) or while writing them: each must now give a clean error (or the documented
//! result), never a panic or an abort.
//!
//! The GGUF cases patch one value of the committed fuzz seed (a complete 1-layer model), so
//! each test shows the one thing that is wrong with its file.

mod common;

use tagllm::model::{GgufFile, Model, TextTokenizer, Weights};
use tagllm::tags::Tag;

/// A complete tiny Llama GGUF (v3; Q8_0 embedding, Q4_1 matrices): fuzz/make_seeds.py.
const TINY: &[u8] = include_bytes!("../fuzz/corpus/gguf/tiny-q4_1-v3.gguf");
/// The same model in f32, GGUF v2, with `general.alignment` = 64.
const TINY_ALIGNED: &[u8] = include_bytes!("../fuzz/corpus/gguf/tiny-f32-v2-align64.gguf");

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{:?} not in the file", String::from_utf8_lossy(needle)))
}

/// `bytes` with the u32 value of metadata key `key` replaced by `value`.
fn with_u32(bytes: &[u8], key: &str, value: u32) -> Vec<u8> {
    let at = find(bytes, key.as_bytes()) + key.len();
    assert_eq!(bytes[at..at + 4], 4u32.to_le_bytes(), "{key} is not a u32");
    let mut out = bytes.to_vec();
    out[at + 4..at + 8].copy_from_slice(&value.to_le_bytes());
    out
}

/// The message `Model::from_bytes` refuses `bytes` with (the same with every weight layout).
fn refused(bytes: &[u8]) -> String {
    let mut messages = Vec::new();
    for weights in [Weights::Quantized, Weights::F32, Weights::Compact] {
        match Model::from_bytes(bytes.to_vec(), weights) {
            Ok(_) => panic!("the file was accepted with {weights:?} weights"),
            Err(e) => messages.push(e.to_string()),
        }
    }
    assert!(messages.iter().all(|m| *m == messages[0]), "{messages:?}");
    messages.remove(0)
}

#[test]
fn the_unpatched_seeds_load() {
    for bytes in [TINY, TINY_ALIGNED] {
        for weights in [Weights::Quantized, Weights::Compact] {
            let model = Model::from_bytes(bytes.to_vec(), weights).unwrap();
            assert!(!model.tokenizer.encode("CCO").unwrap().is_empty());
        }
    }
}

/// Found by `gguf` (crash-ec5a4ec5…): `blk.0.attn_k.weight` with shape [0, huge] has no values;
/// candle then made a slice of Q4_1 blocks from an empty byte buffer's dangling pointer
/// (misaligned: undefined behaviour, a panic with debug assertions).
#[test]
fn gguf_tensor_without_values() {
    let bytes = include_bytes!("fixtures/fuzz/gguf-empty-tensor.gguf");
    let message = refused(bytes);
    assert!(message.contains("blk.0.attn_k.weight has no values"), "{message}");
}

/// Found while writing `gguf`: `general.alignment` = 0 made candle's header reader divide by
/// zero (a panic in every build).
#[test]
fn gguf_alignment_zero() {
    let message = refused(&with_u32(TINY_ALIGNED, "general.alignment", 0));
    assert!(message.contains("`general.alignment` is 0"), "{message}");
}

/// Found while writing `gguf`: a tensor offset near u64::MAX overflowed the end-of-data sum
/// (a panic with overflow checks; without them it wrapped and passed the truncation check).
#[test]
fn gguf_tensor_offset_overflow() {
    let mut bytes = TINY.to_vec();
    // name, then n_dims (u32), two dims (u64), dtype (u32), offset (u64)
    let at = find(&bytes, b"output_norm.weight") + "output_norm.weight".len() + 4 + 8 + 4;
    bytes[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    let message = refused(&bytes);
    assert!(message.contains("output_norm.weight ([32]) is larger than any file can be"), "{message}");
}

/// Found while writing `gguf`: `llama.block_count` was used as a capacity before any tensor
/// was looked up (4 294 967 295 layers: an allocation failure, which aborts).
#[test]
fn gguf_block_count_beyond_the_tensors() {
    let message = refused(&with_u32(TINY, "llama.block_count", u32::MAX));
    assert!(message.contains("tensors for at most 1 blocks"), "{message}");
}

/// Found while writing `gguf`: the RoPE tables are context × head size / 2 values, allocated
/// at load (here 4 294 967 295 × 4: an allocation failure, which aborts).
#[test]
fn gguf_context_length_too_large() {
    let message = refused(&with_u32(TINY, "llama.context_length", u32::MAX));
    assert!(message.contains("more than this tool supports"), "{message}");
}

/// Found while writing `gguf`: a width from metadata that no tensor has (2^31, one head) sized
/// the RoPE tables; the width is now checked against the token embedding's.
#[test]
fn gguf_width_not_the_embedding_width() {
    let bytes = with_u32(TINY, "llama.embedding_length", 1 << 31);
    let bytes = with_u32(&bytes, "llama.attention.head_count", 1);
    let bytes = with_u32(&bytes, "llama.attention.head_count_kv", 1);
    let message = refused(&bytes);
    assert!(message.contains("expected [vocabulary, 2147483648]"), "{message}");
}

/// Found by `tokenizer` on its seed of all 256 byte values: encoding and decoding loses bytes.
/// Not a bug of the code: the SmolLM2 vocabulary has no token for 21 byte values, and
/// byte-level BPE without an unknown token has nothing to map them to, so it drops them. The
/// fuzz target now expects exactly this; the test pins which bytes they are.
#[test]
fn tokenizer_drops_only_the_bytes_without_a_token() {
    let file = GgufFile::open(&common::model_path()).unwrap_or_else(|e| panic!("{e}"));
    let tokenizer = TextTokenizer::from_gguf(&file.content).unwrap();
    let all: Vec<u8> = (0..=255).collect();
    assert_eq!(all, include_bytes!("../fuzz/corpus/tokenizer/bytes"));

    let text = String::from_utf8_lossy(&all);
    let back = tokenizer.decode(&tokenizer.encode(&text).unwrap()).unwrap();
    // 0x80..=0xff are not UTF-8 on their own: each became U+FFFD (bytes ef bf bd), all kept.
    let lost: Vec<u8> = (0u8..0x80).filter(|b| !back.contains(char::from(*b))).collect();
    assert_eq!(lost, [0x04, 0x06, 0x13, 0x14, 0x16, 0x1d]);
    let expected: String = text.chars().filter(|&c| !(c.is_ascii() && lost.contains(&(c as u8)))).collect();
    assert_eq!(back, expected);

    // The other 15: bytes that occur only in malformed UTF-8 or in planes 4-11 (U+40000..).
    let back = tokenizer.decode(&tokenizer.encode("a\u{40000}b").unwrap()).unwrap();
    assert_eq!(back, "a\u{FFFD}\u{FFFD}\u{FFFD}b", "F1 dropped, its three continuation bytes kept");
}

/// Found by `tag_file` (crash-ae3610ec…, JSON metadata the target wraps into a safetensors
/// file): a tag saved and loaded again came back with another `target.std` (60.420945532669556
/// instead of 60.42094553266955). serde_json's default float parsing is not correctly rounded
/// (it read both the file's `60.4209455326695505` and the saved shortest form one unit in the
/// last place off); with its `float_roundtrip` feature it is, and save → load is exact.
#[test]
fn tag_numbers_survive_save_and_load() {
    let json = include_str!("fixtures/fuzz/tag-float-roundtrip.json");
    let zeros = [0u8; 4 * 8];
    let views = [
        ("vectors", vec![1, 8], &zeros[..]),
        ("head.weight", vec![1, 8], &zeros[..]),
        ("head.bias", vec![1], &zeros[..4]),
    ]
    .map(|(name, shape, data)| (name, safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, data).unwrap()));
    let metadata = std::collections::HashMap::from([("tagllm".to_string(), json.to_string())]);
    let bytes = safetensors::serialize(views, Some(metadata)).unwrap();

    let tag = Tag::from_bytes(&bytes, "crash.safetensors").unwrap();
    let target = tag.meta.target.as_ref().unwrap();
    assert_eq!(target.std, "60.4209455326695505".parse::<f64>().unwrap());
    assert_eq!(target.mean, "5.6474054162999988".parse::<f64>().unwrap());
    let again = Tag::from_bytes(&tag.to_bytes().unwrap(), "saved.safetensors").unwrap();
    assert_eq!(again.meta, tag.meta);
}
