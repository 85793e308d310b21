//! The whole model with `Weights::Int8` and `Weights::Int16` (integer kernels over the file's
//! Q4_1 / Q8_0 blocks, inputs rounded to 8 or 16 bits) against the f32 path: hidden states,
//! logits, a shipped tag's predictions, and batching.
//! (The kernels themselves are checked exactly in `src/model/int8.rs`'s unit tests.)

mod common;

use std::sync::OnceLock;

use candle_core::IndexOp;
use tagllm::model::{KvCache, Mode, Model, Segment, Weights};
use tagllm::predict::Predictor;

use common::{rel, shipped, MOLECULES};

fn int8_model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| Model::load_with(&common::model_path(), Weights::Int8).unwrap())
}

fn int16_model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| Model::load_with(&common::model_path(), Weights::Int16).unwrap())
}


fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn int8_weights_are_the_files_blocks() {
    let m = int8_model();
    assert_eq!(m.llama.weights(), Weights::Int8);
    assert_eq!(common::model().llama.weights(), Weights::F32);
}

#[test]
fn hidden_states_and_logits_stay_close_to_f32() {
    let (f, q, w) = (common::model(), int8_model(), int16_model());
    let text = "# # Input: The SMILES of the molecule is CC(=O)Oc1ccccc1C(=O)O. The quantitative estimate";
    let ids = f.tokenizer.encode(text).unwrap();
    let run = |m: &Model| {
        let x = m.llama.embed(&[Segment::Tokens(ids.clone())]).unwrap().unsqueeze(0).unwrap();
        let h = m.llama.forward(&x, &mut KvCache::new(), Mode::Infer).unwrap();
        let last = h.i((0, ids.len() - 1)).unwrap();
        let logits: Vec<f32> = m.llama.logits(&last).unwrap().to_vec1().unwrap();
        let all: Vec<f32> = h.flatten_all().unwrap().to_vec1().unwrap();
        (last.to_vec1::<f32>().unwrap(), all, logits)
    };
    let (hf, allf, lf) = run(f);
    let (hq, allq, lq) = run(q);
    let (hw, allw, lw) = run(w);
    let (w_last, w_all, w_logits) = (rel(&hw, &hf), rel(&allw, &allf), rel(&lw, &lf));
    eprintln!("int16 vs f32: read-out state rel. L2 {w_last:.2e}, all states {w_all:.2e}, logits {w_logits:.2e}");
    // 16-bit inputs: measured 1.3e-4 .. 1.5e-4 (int8: 2e-2 .. 3e-2); ~3× headroom.
    assert!(w_last < 5e-4 && w_all < 5e-4 && w_logits < 5e-4, "int16: {w_last} {w_all} {w_logits}");
    let (r_last, r_all, r_logits) = (rel(&hq, &hf), rel(&allq, &allf), rel(&lq, &lf));
    eprintln!("int8 vs f32: read-out state rel. L2 {r_last:.4} (cos {:.5}), all states {r_all:.4}, logits {r_logits:.4}",
        cosine(&hq, &hf));
    // Measured on SmolLM2-135M: see the bounds' note in the report; ~3× headroom.
    assert!(r_last < 0.05, "read-out state differs by {r_last}");
    assert!(r_all < 0.05, "hidden states differ by {r_all}");
    assert!(r_logits < 0.05, "logits differ by {r_logits}");
    let argmax = |v: &[f32]| v.iter().enumerate().fold((0, f32::MIN), |b, (i, &x)| if x > b.1 { (i, x) } else { b }).0;
    assert_eq!(argmax(&lq), argmax(&lf), "the next token changed");
}

#[test]
fn a_shipped_tag_predicts_within_a_small_margin_of_f32() {
    let (f, q) = (common::model(), int8_model());
    let (lf, lq) = (shipped(f), shipped(q));
    let items: Vec<Vec<String>> = MOLECULES.iter().map(|s| vec![s.to_string()]).collect();
    let pf: Vec<f64> = Predictor::new(f, &lf, "LogP").unwrap().predict(&items).into_iter().map(|r| r.unwrap()).collect();
    let pq: Vec<f64> = Predictor::new(q, &lq, "LogP").unwrap().predict(&items).into_iter().map(|r| r.unwrap()).collect();
    let worst = pf.iter().zip(&pq).map(|(a, b)| (a - b).abs()).fold(0f64, f64::max);
    let spread = {
        let mean = pf.iter().sum::<f64>() / pf.len() as f64;
        (pf.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / pf.len() as f64).sqrt()
    };
    let mean = pf.iter().zip(&pq).map(|(a, b)| (a - b).abs()).sum::<f64>() / pf.len() as f64;
    eprintln!("LogP f32 {pf:.3?}\nLogP int8 {pq:.3?}\nmean |Δ| {mean:.3}, worst {worst:.3} (spread of predictions {spread:.3})");
    // NOT small: the read-out state moves by ~2.5% (test above) and the LogP head, fitted on
    // f32 states, amplifies it (on 300 test rows: mean |Δ| 0.41, max 1.49 log units; R² 0.66 →
    // 0.40). These bounds pin the measured behaviour (12 molecules: mean 0.4, worst 1.2) so a
    // kernel regression shows; they do not make int8 accurate enough for f32-trained tags.
    assert!(mean < 0.8, "int8 LogP moved by {mean} log units on average");
    assert!(worst < 2.0, "int8 LogP moved by {worst} log units");
}

#[test]
fn int16_predicts_like_f32_and_batching_barely_moves_it() {
    let (f, w) = (common::model(), int16_model());
    let (lf, lw) = (shipped(f), shipped(w));
    let items: Vec<Vec<String>> = MOLECULES.iter().map(|s| vec![s.to_string()]).collect();
    let pf: Vec<f64> = Predictor::new(f, &lf, "LogP").unwrap().predict(&items).into_iter().map(|r| r.unwrap()).collect();
    let mut p = Predictor::new(w, &lw, "LogP").unwrap();
    let pw: Vec<f64> = p.predict(&items).into_iter().map(|r| r.unwrap()).collect();
    p.batch_size = 1;
    let single: Vec<f64> = p.predict(&items).into_iter().map(|r| r.unwrap()).collect();
    let worst = pf.iter().zip(&pw).map(|(a, b)| (a - b).abs()).fold(0f64, f64::max);
    let batching = pw.iter().zip(&single).map(|(a, b)| (a - b).abs()).fold(0f64, f64::max);
    eprintln!("LogP int16 vs f32: worst |Δ| {worst:.5}; int16 batch 8 vs 1: worst |Δ| {batching:.5}");
    // Measured: worst 0.0045 and 0.0031 log units (int8: 1.2 and 0.47); ~3× headroom.
    assert!(worst < 0.015, "int16 LogP moved by {worst} log units from f32");
    assert!(batching < 0.01, "int16 batching moved LogP by {batching} log units");
}

#[test]
fn int8_batching_moves_predictions_by_a_bounded_amount() {
    let q = int8_model();
    let lib = shipped(q);
    let items: Vec<Vec<String>> = MOLECULES.iter().map(|s| vec![s.to_string()]).collect();
    let mut p = Predictor::new(q, &lib, "LogP").unwrap();
    p.batch_size = 5;
    let batched: Vec<f64> = p.predict(&items).into_iter().map(|r| r.unwrap()).collect();
    p.batch_size = 1;
    let single: Vec<f64> = p.predict(&items).into_iter().map(|r| r.unwrap()).collect();
    // Each row is quantised alone and the integer products of a row are bit-identical in any
    // batch (unit tests). But attention runs over right-padded rows in f32, whose sums take a
    // padding-dependent order: last-bit differences (1e-3 of a prediction at most on the f32
    // path, tests/predict.rs) then flip 8-bit rounding steps in later layers, and the head
    // amplifies them. Measured worst: 0.47 log units (12 molecules); this pins it.
    let worst = batched.iter().zip(&single).map(|(a, b)| (a - b).abs()).fold(0f64, f64::max);
    eprintln!("int8, batch 5 vs 1: worst |Δ| {worst:.4}");
    for (i, s) in MOLECULES.iter().enumerate() {
        assert!((batched[i] - single[i]).abs() < 1.0, "{s}: batched {} vs single {}", batched[i], single[i]);
    }
}

#[test]
fn training_refuses_int8_weights() {
    let q = int8_model();
    let x = q.llama.embed(&[Segment::Tokens(vec![1, 2, 3])]).unwrap().unsqueeze(0).unwrap();
    let err = q.llama.forward(&x, &mut KvCache::new(), Mode::Train).unwrap_err();
    assert!(err.to_string().contains("f32"), "{err}");
}
