//! The Predictor on the real model: batching and prefix reuse change nothing but speed, and one
//! bad input never stops the others.

mod common;

use candle_core::{IndexOp, D};
use tagllm::model::{KvCache, Mode, Segment};
use tagllm::predict::Predictor;

fn items(xs: &[&str]) -> Vec<Vec<String>> {
    xs.iter().map(|s| vec![s.to_string()]).collect()
}

const MOLECULES: &[&str] = &[
    "CC(=O)Oc1ccccc1C(=O)O",
    "CCO",
    "CN1C=NC2=C1C(=O)N(C(=O)N2C)C",
    "C[C@@H](N)C(=O)O",
    "[NH4+].[Cl-]",
    "c1ccc2c(c1)[nH]c1ccccc12",
    "CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)O",
    "O=C(O)c1ccccc1O",
    "CCN(CC)CC",
    "FC(F)(F)c1ccc(cc1)O",
];

/// The same prediction computed the slow, obvious way: the whole prompt, one forward pass.
fn by_hand(smiles: &str) -> f64 {
    let m = common::model();
    let lib = common::test_library();
    let qed = lib.get("QED").unwrap();
    let tok = &m.tokenizer;
    let segs = vec![
        Segment::Tokens(tok.encode("# # Input: The SMILES of the molecule is").unwrap()),
        Segment::Vectors(lib.get("SMILES").unwrap().vectors.clone()),
        Segment::Tokens(tok.encode(&format!(" {smiles}")).unwrap()),
        Segment::Tokens(tok.encode(". \n# # Output: the quantitative estimate of druglikeness score is").unwrap()),
        Segment::Vectors(qed.vectors.clone()),
    ];
    let x = m.llama.embed(&segs).unwrap().unsqueeze(0).unwrap();
    let h = m.llama.forward(&x, &mut KvCache::new(), Mode::Infer).unwrap();
    let last = h.dim(1).unwrap() - 1;
    let h = h.i((0, last)).unwrap();
    let (w, b) = qed.head.as_ref().unwrap();
    let raw = (h * w.flatten_all().unwrap()).unwrap().sum(D::Minus1).unwrap().to_scalar::<f32>().unwrap()
        + b.to_vec1::<f32>().unwrap()[0];
    let t = qed.meta.target.as_ref().unwrap();
    raw as f64 * t.std + t.mean
}

#[test]
fn batching_and_prefix_reuse_match_the_plain_forward_pass() {
    let m = common::model();
    let lib = common::test_library();
    let mut p = Predictor::new(m, &lib, "QED").unwrap();
    p.batch_size = 4;
    let batched: Vec<f64> = p.predict(&items(MOLECULES)).into_iter().map(|r| r.unwrap()).collect();
    p.batch_size = 1;
    let single: Vec<f64> = p.predict(&items(MOLECULES)).into_iter().map(|r| r.unwrap()).collect();
    for (i, s) in MOLECULES.iter().enumerate() {
        let plain = by_hand(s);
        // f32 sums in a different order: agreement to 1e-3 of the target scale is exact enough.
        assert!((batched[i] - plain).abs() < 1e-3, "{s}: batched {} vs plain {plain}", batched[i]);
        assert!((single[i] - plain).abs() < 1e-3, "{s}: single {} vs plain {plain}", single[i]);
    }
    // Different molecules give different predictions (the input really reaches the read-out).
    let distinct: std::collections::BTreeSet<i64> = batched.iter().map(|v| (v * 1e6) as i64).collect();
    assert_eq!(distinct.len(), MOLECULES.len());
}

#[test]
fn bad_inputs_get_errors_and_the_rest_get_values() {
    let m = common::model();
    let lib = common::test_library();
    let p = Predictor::new(m, &lib, "QED").unwrap();
    let input = ["CCO", "C1CC", "Xx(", "", "c1ccccc1", "\u{0}\u{1}junk"];
    let out = p.predict(&items(&input));
    assert!(out[0].is_ok() && out[4].is_ok());
    let err = |i: usize| out[i].clone().unwrap_err();
    assert!(err(1).contains("ring") && err(1).contains("character"), "{}", err(1));
    assert!(err(2).contains("Xx"), "{}", err(2));
    assert!(err(3).contains("empty"), "{}", err(3));
    assert!(out[5].is_err());
    // The valid ones are exactly what they are when predicted alone.
    let alone = p.predict(&items(&["CCO"]))[0].clone().unwrap();
    assert!((alone - out[0].clone().unwrap()).abs() < 1e-3);
}

#[test]
fn one_protein_against_many_molecules() {
    let m = common::model();
    let lib = common::test_library();
    let p = Predictor::new(m, &lib, "BindingAffinity").unwrap();
    assert_eq!(p.slots().iter().map(|s| s.domain.as_str()).collect::<Vec<_>>(), ["Protein", "SMILES"]);
    let protein = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQFEVVHSLAKWKRQTLGQHDFSAGEGLYTHMKALRPDEDRLSPLHSVYVDQWDWERVMGDGERQFSTLKSTVEAIWAGIKATEAAVSEEFGLAPFLPDQIHFVHSQELLSRYPDLDAKGRERAIAKDLGAVFLVGIGGKLSDGHRHDVRAPDYDDWUAQW";
    let batch: Vec<Vec<String>> = MOLECULES[..5].iter().map(|s| vec![protein.to_string(), s.to_string()]).collect();
    let together = p.predict(&batch);
    for (i, item) in batch.iter().enumerate() {
        let alone = p.predict(std::slice::from_ref(item))[0].clone().unwrap();
        let t = together[i].clone().unwrap();
        assert!((alone - t).abs() < 1e-3, "{}: {alone} vs {t}", item[1]);
    }
    let bad = p.predict(&[vec!["MKT1A".into(), "CCO".into()]]);
    let msg = bad[0].clone().unwrap_err();
    assert!(msg.contains("Protein") && msg.contains('1'), "{msg}");
}

/// `<BindingAffinity>` (test tag) reads the tag's last state and the mean state over each input:
/// computed here by hand from one plain forward pass over the whole prompt.
fn affinity_by_hand(p: &Predictor, protein: &str, smiles: &str) -> f64 {
    let m = common::model();
    let keys = p.prompt(&[protein.to_string(), smiles.to_string()]).unwrap();
    assert_eq!(keys.len(), 8, "text, <Protein>, protein, text, <SMILES>, smiles, text, <BindingAffinity>");
    let x = m.llama.embed(&p.segments(&keys)).unwrap().unsqueeze(0).unwrap();
    let h = m.llama.forward(&x, &mut KvCache::new(), Mode::Infer).unwrap().squeeze(0).unwrap();
    let span_mean = |k: usize| {
        let start = p.len_of(&keys[..k]);
        h.narrow(0, start, p.len_of(&keys[k..=k])).unwrap().mean(0).unwrap()
    };
    let last = h.i(h.dim(0).unwrap() - 1).unwrap();
    let features = candle_core::Tensor::cat(&[last, span_mean(2), span_mean(5)], 0).unwrap();
    let tag = p.tag();
    assert_eq!(tag.meta.readout, tagllm::tags::Readout::LastAndInputMeans);
    let (w, b) = tag.head.as_ref().unwrap();
    let raw = (features * w.flatten_all().unwrap()).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap()
        + b.to_vec1::<f32>().unwrap()[0];
    let t = tag.meta.target.as_ref().unwrap();
    raw as f64 * t.std + t.mean
}

#[test]
fn many_proteins_and_molecules_in_one_call_match_the_read_out_by_hand() {
    let m = common::model();
    let lib = common::test_library();
    let mut p = Predictor::new(m, &lib, "BindingAffinity").unwrap();
    p.batch_size = 3;
    let proteins = ["MKTAYIAKQRQISFVKSHFSRQLEERLGLIEV", "MSDNGPQNQRNAPRITFGGPSDSTGSNQNGERS", "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEV"];
    // Interleaved proteins: the Predictor groups the pairs by protein and runs each protein once.
    let batch: Vec<Vec<String>> = MOLECULES[..6]
        .iter()
        .enumerate()
        .map(|(i, s)| vec![proteins[i % 3].to_string(), s.to_string()])
        .collect();
    let together = p.predict(&batch);
    for (item, got) in batch.iter().zip(&together) {
        let want = affinity_by_hand(&p, &item[0], &item[1]);
        let got = got.clone().unwrap();
        assert!((want - got).abs() < 1e-3, "{item:?}: by hand {want} vs predictor {got}");
    }
}

/// A bounded target (`Target.range`, QED's 0 to 1) is never predicted outside its range: each
/// prediction is the unbounded one clamped to it.
#[test]
fn a_bounded_target_is_predicted_inside_its_range() {
    let m = common::model();
    let lib = common::test_library();
    let free: Vec<f64> = Predictor::new(m, &lib, "QED").unwrap().predict(&items(MOLECULES)).into_iter().map(|r| r.unwrap()).collect();
    let mut sorted = free.clone();
    sorted.sort_by(f64::total_cmp);
    // A range that cuts off the lowest and highest few of these molecules.
    let (lo, hi) = (sorted[2], sorted[sorted.len() - 3]);
    let mut qed = lib.get("QED").unwrap().clone();
    qed.meta.target.as_mut().unwrap().range = Some((lo, hi));
    let mut bounded_lib = lib.clone();
    bounded_lib.insert(qed, &m.identity, "QED").unwrap();
    let bounded: Vec<f64> = Predictor::new(m, &bounded_lib, "QED").unwrap().predict(&items(MOLECULES)).into_iter().map(|r| r.unwrap()).collect();
    for (f, b) in free.iter().zip(&bounded) {
        assert_eq!(*b, f.clamp(lo, hi), "unbounded {f}, bounded {b}, range {lo}..{hi}");
    }
    assert!(free.iter().any(|f| *f < lo) && free.iter().any(|f| *f > hi), "{free:?}");
}
