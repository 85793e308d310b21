//! The whole model with `Weights::Compact` (the file's blocks, expanded to f32 a panel at a time
//! inside each product) against `Weights::F32` (every matrix expanded once): the same hidden
//! states and predictions, bit for bit, in any batch; decoding (one-row products, computed from
//! the blocks directly) within rounding, and the same generated text.
//! (The products themselves are checked exactly in `src/model/compact.rs`'s unit tests.)

mod common;

use std::sync::OnceLock;

use candle_core::IndexOp;
use tagllm::model::{KvCache, Mode, Model, Sampling, Segment, Weights};
use tagllm::predict::Predictor;

use common::{rel, shipped, MOLECULES};

fn compact_model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| Model::load_with(&common::model_path(), Weights::Compact).unwrap())
}

#[test]
fn hidden_states_are_the_f32_paths_bits_and_logits_within_rounding() {
    let (f, c) = (common::model(), compact_model());
    assert_eq!((f.llama.weights(), c.llama.weights()), (Weights::F32, Weights::Compact));
    let text = "# # Input: The SMILES of the molecule is CC(=O)Oc1ccccc1C(=O)O. The quantitative estimate";
    let ids = f.tokenizer.encode(text).unwrap();
    let run = |m: &Model| {
        let x = m.llama.embed(&[Segment::Tokens(ids.clone())]).unwrap().unsqueeze(0).unwrap();
        let h = m.llama.forward(&x, &mut KvCache::new(), Mode::Infer).unwrap();
        let logits: Vec<f32> = m.llama.logits(&h.i((0, ids.len() - 1)).unwrap()).unwrap().to_vec1().unwrap();
        (h.flatten_all().unwrap().to_vec1::<f32>().unwrap(), logits)
    };
    let ((hf, lf), (hc, lc)) = (run(f), run(c));
    let differ = hf.iter().zip(&hc).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
    assert_eq!(differ, 0, "{differ} of {} hidden-state values differ from the f32 path's", hf.len());
    // The output head multiplies one row: computed from the Q8_0 blocks, rounded otherwise.
    let r = rel(&lc, &lf);
    eprintln!("compact vs f32: hidden states identical; logits rel. L2 {r:.2e}");
    assert!(r < 1e-5, "logits differ by {r}");
}

#[test]
fn predictions_are_the_f32_paths_in_any_batch() {
    let (f, c) = (common::model(), compact_model());
    let (lf, lc) = (shipped(f), shipped(c));
    let items: Vec<Vec<String>> = MOLECULES.iter().map(|s| vec![s.to_string()]).collect();
    for tag in ["LogP", "QED"] {
        let pf: Vec<f64> = Predictor::new(f, &lf, tag).unwrap().predict(&items).into_iter().map(|r| r.unwrap()).collect();
        let mut p = Predictor::new(c, &lc, tag).unwrap();
        let batched: Vec<f64> = p.predict(&items).into_iter().map(|r| r.unwrap()).collect();
        p.batch_size = 1;
        let single: Vec<f64> = p.predict(&items).into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(batched, pf, "{tag}: compact predictions differ from f32's");
        // One molecule a batch: the products have other row counts, the bits stay.
        let f_single: Vec<f64> = {
            let mut p = Predictor::new(f, &lf, tag).unwrap();
            p.batch_size = 1;
            p.predict(&items).into_iter().map(|r| r.unwrap()).collect()
        };
        assert_eq!(single, f_single, "{tag}: compact predictions one at a time differ from f32's");
    }
}

#[test]
fn generates_the_f32_paths_text() {
    let (f, c) = (common::model(), compact_model());
    let prompt = "The capital of France is";
    let text = |m: &Model| {
        let mut out = String::new();
        m.generate(&[Segment::Tokens(m.tokenizer.encode(prompt).unwrap())], 12, Sampling::default(), |piece| {
            out.push_str(piece);
            true
        })
        .unwrap();
        out
    };
    let (tf, tc) = (text(f), text(c));
    eprintln!("f32: {tf:?}\ncompact: {tc:?}");
    assert!(!tc.trim().is_empty(), "nothing generated");
    assert_eq!(tc, tf);
}

#[test]
fn training_refuses_compact_weights() {
    let c = compact_model();
    let x = c.llama.embed(&[Segment::Tokens(vec![1, 2, 3])]).unwrap().unsqueeze(0).unwrap();
    let err = c.llama.forward(&x, &mut KvCache::new(), Mode::Train).unwrap_err();
    assert!(err.to_string().contains("f32"), "{err}");
}
