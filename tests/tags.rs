//! Tag files: round trips, and refusal of wrong or corrupt files with messages that name the
//! problem.

mod common;

use tagllm::model::ModelIdentity;
use tagllm::tags::Tag;

fn qed_bytes() -> Vec<u8> {
    common::test_tags().into_iter().find(|t| t.meta.name == "QED").unwrap().to_bytes().unwrap()
}

fn refuse(bytes: &[u8]) -> String {
    match Tag::from_bytes(bytes, "x.safetensors") {
        Ok(_) => panic!("a bad tag file was accepted"),
        Err(e) => e.to_string(),
    }
}

/// Rewrites the JSON metadata of a tag file.
fn with_meta(edit: impl Fn(&mut serde_json::Value)) -> Vec<u8> {
    let tag = Tag::from_bytes(&qed_bytes(), "qed").unwrap();
    let mut meta = serde_json::to_value(&tag.meta).unwrap();
    edit(&mut meta);
    // Build the file by hand so that the library's own checks do not stop us writing it.
    let vectors: Vec<f32> = tag.vectors.flatten_all().unwrap().to_vec1().unwrap();
    let (w, b) = tag.head.as_ref().unwrap();
    let w: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
    let b: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
    let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let (vb, wb, bb) = (bytes(&vectors), bytes(&w), bytes(&b));
    let views = vec![
        ("vectors", safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![10, 576], &vb).unwrap()),
        ("head.weight", safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1, 576], &wb).unwrap()),
        ("head.bias", safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1], &bb).unwrap()),
    ];
    let info = std::collections::HashMap::from([("tagllm".to_string(), meta.to_string())]);
    safetensors::serialize(views, Some(info)).unwrap()
}

#[test]
fn a_saved_tag_reloads_identically() {
    let bytes = qed_bytes();
    let tag = Tag::from_bytes(&bytes, "qed").unwrap();
    assert_eq!(tag.to_bytes().unwrap(), bytes);
    assert_eq!(tag.meta.p, 10);
    assert_eq!(tag.meta.requires[0].name, "SMILES");
}

#[test]
fn corrupt_files_are_refused_with_a_reason() {
    let good = qed_bytes();
    assert!(refuse(b"").contains("not a valid safetensors file"));
    assert!(refuse(&good[..good.len() / 2]).contains("not a valid safetensors file"));
    assert!(refuse(b"\x00\x01\x02 binary junk \xff\xfe").contains("not a valid safetensors file"));
    let mut flipped = good.clone();
    flipped[10] ^= 0xff; // inside the JSON header
    let msg = refuse(&flipped);
    assert!(msg.contains("x.safetensors"), "{msg}");
}

#[test]
fn malformed_metadata_is_named() {
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(Edit, &str)> = vec![
        (Box::new(|m| m["p"] = 12.into()), "shape [10, 576], expected [12, 576]"),
        (Box::new(|m| m["name"] = "bad name!".into()), "tag name"),
        (Box::new(|m| m["format_version"] = 99.into()), "format version 99"),
        (Box::new(|m| m["template"] = "no tag at the end {SMILES}".into()), "template must end with <QED>"),
        (Box::new(|m| m["target"]["std"] = 0.0.into()), "normalisation"),
        (Box::new(|m| m["requires"] = serde_json::json!([])), "`requires` does not list it"),
        (Box::new(|m| m["kind"] = "gadget".into()), "metadata is malformed"),
        (Box::new(|m| m["d"] = 64.into()), "d = 64"),
    ];
    for (edit, expected) in cases {
        let msg = refuse(&with_meta(edit));
        assert!(msg.contains(expected), "expected {expected:?} in {msg:?}");
    }
}

#[test]
fn a_tag_for_another_model_is_refused() {
    let tag = Tag::from_bytes(&qed_bytes(), "qed").unwrap();
    let other = ModelIdentity { gguf_sha256: "0".repeat(64), ..common::model().identity.clone() };
    let msg = tag.check_model(&other, "qed.safetensors").unwrap_err().to_string();
    assert!(msg.contains("tags only work on the model they were trained on"), "{msg}");
    let wider = ModelIdentity { hidden_size: 960, ..common::model().identity.clone() };
    let msg = tag.check_model(&wider, "qed.safetensors").unwrap_err().to_string();
    assert!(msg.contains("width 576") && msg.contains("width 960"), "{msg}");
    tag.check_model(&common::model().identity, "qed").unwrap();
}

#[test]
fn non_finite_vectors_are_refused() {
    let tag = Tag::from_bytes(&qed_bytes(), "qed").unwrap();
    let mut bytes = tag.to_bytes().unwrap();
    // The vectors are the first tensor after the header: poison the first value with NaN.
    let header = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let start = 8 + header;
    let order = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    // Find the byte offset of `vectors` by its data pointer.
    let view = order.tensor("vectors").unwrap();
    let offset = view.data().as_ptr() as usize - bytes.as_ptr() as usize;
    assert!(offset >= start);
    bytes[offset..offset + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    assert!(refuse(&bytes).contains("non-finite"));
}

#[test]
fn the_head_must_fit_the_read_out() {
    // A last-state head ([1, d]) declared as reading the input means too is refused, and so is
    // the means read-out in a version-1 file.
    let e = refuse(&with_meta(|m| {
        m["readout"] = serde_json::json!("last_and_input_means");
    }));
    assert!(e.contains("head.weight") && e.contains("shape"), "{e}");
    let e = refuse(&with_meta(|m| {
        m["readout"] = serde_json::json!("last_and_input_means");
        m["format_version"] = serde_json::json!(1);
    }));
    assert!(e.contains("format version 2"), "{e}");
}
