//! Tag files: `Tag::from_bytes` (safetensors + the `tagllm` JSON metadata and its checks) on
//! arbitrary bytes. An input that starts with `{` is also taken as the JSON metadata alone and
//! wrapped into a well-formed safetensors file, so that the metadata checks and the tensor
//! shape checks are reached without the fuzzer having to keep the safetensors framing intact.
//! A tag that loads must save and load back to the same metadata.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use safetensors::{tensor::TensorView, Dtype};
use tagllm::tags::{Tag, TagLibrary};

fuzz_target!(|data: &[u8]| {
    check(data);
    if data.first() == Some(&b'{') {
        if let Ok(json) = std::str::from_utf8(data) {
            if let Some(bytes) = wrap(json) {
                check(&bytes);
            }
        }
    }
});

fn check(bytes: &[u8]) {
    let tag = match Tag::from_bytes(bytes, "fuzz.safetensors") {
        Ok(tag) => tag,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let _ = tag.template();
    let _ = tag.meta.head_width();
    let saved = tag.to_bytes().expect("a loaded tag serialises");
    let again = Tag::from_bytes(&saved, "saved.safetensors").expect("a saved tag loads again");
    assert_eq!(again.meta, tag.meta);
    assert_eq!(again.vectors_sha256, tag.vectors_sha256);
    let mut library = TagLibrary::new();
    library
        .add_bytes(bytes, "fuzz.safetensors", &tag.meta.base_model)
        .expect("a tag fits the model it names");
}

/// A safetensors file holding `json` as its `tagllm` metadata, with `vectors` `[p, d]` and a
/// head sized from the metadata's own `p`, `d`, `readout` and template (when they are small).
fn wrap(json: &str) -> Option<Vec<u8>> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    let dim = |key: &str| value.get(key).and_then(|v| v.as_u64()).filter(|&n| (1..=64).contains(&n));
    let (p, d) = (dim("p").unwrap_or(1) as usize, dim("d").unwrap_or(8) as usize);
    let inputs = value.get("template").and_then(|t| t.as_str()).map_or(0, |t| t.matches('{').count());
    let width = if value.get("readout").is_some() { d * (1 + inputs.min(4)) } else { d };
    let zeros = |n: usize| vec![0u8; 4 * n];
    let owned = [
        ("vectors", vec![p, d], zeros(p * d)),
        ("head.weight", vec![1, width], zeros(width)),
        ("head.bias", vec![1], zeros(1)),
    ];
    let views = owned
        .iter()
        .map(|(n, s, b)| TensorView::new(Dtype::F32, s.clone(), b).map(|v| (n.to_string(), v)))
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let info = HashMap::from([("tagllm".to_string(), json.to_string())]);
    safetensors::serialize(views, Some(info)).ok()
}
