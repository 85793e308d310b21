//! The real model file, the real tokenizer: known answers from `shared/docs/model.md`, and
//! agreement between the inference and training kernels (the comparison with
//! candle-transformers' reference implementation is `tests/reference.rs`).

mod common;

use candle_core::IndexOp;
use tagllm::model::{KvCache, Mode, Sampling, Segment};

#[test]
fn tokenizer_known_answer_and_round_trips() {
    let model = common::model();
    let tok = &model.tokenizer;
    assert_eq!(tok.encode("The capital of France is").unwrap(), vec![504, 3575, 282, 4649, 314]);
    for text in [
        "The capital of France is",
        "<|im_start|>user\nHi<|im_end|>",
        "Ünïcödé — 東京 🧪 ß",
        "CC(=O)Oc1ccccc1C(=O)O 12345",
        "  leading and trailing spaces  ",
    ] {
        let ids = tok.encode(text).unwrap();
        assert_eq!(tok.decode(&ids).unwrap(), text, "round trip of {text:?}");
    }
    // Special tokens are single ids, not spelled out.
    let ids = tok.encode("<|im_start|>").unwrap();
    assert_eq!(ids.len(), 1);
    // Digits are split one by one (the `smollm` pre-tokenizer).
    assert_eq!(tok.encode("2024").unwrap().len(), 4);
}

#[test]
fn greedy_next_token_is_paris() {
    let model = common::model();
    let ids = model.tokenizer.encode("The capital of France is").unwrap();
    let x = model.llama.embed(&[Segment::Tokens(ids)]).unwrap().unsqueeze(0).unwrap();
    let hidden = model.llama.forward(&x, &mut KvCache::new(), Mode::Infer).unwrap();
    let logits: Vec<f32> = model.llama.logits(&hidden.i((0, 4)).unwrap()).unwrap().to_vec1().unwrap();
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    let top: Vec<String> = order[..3].iter().map(|&i| model.tokenizer.token_text(i as u32)).collect();
    assert_eq!(top, [" Paris", " the", " London"], "logits {:?}", &order[..3].iter().map(|&i| logits[i]).collect::<Vec<_>>());
    assert!((logits[order[0]] - 17.4).abs() < 0.3, "Paris logit {}", logits[order[0]]);

    let text = std::cell::RefCell::new(String::new());
    model
        .generate(&[Segment::Tokens(model.tokenizer.encode("The capital of France is").unwrap())], 3, Sampling::default(), |p| {
            text.borrow_mut().push_str(p);
            true
        })
        .unwrap();
    assert!(text.borrow().starts_with(" Paris"), "generated {:?}", text.borrow());
}

/// Decoding with the KV cache gives the logits a full forward pass gives.
#[test]
fn kv_cache_matches_a_full_pass() {
    let model = common::model();
    let ids = model.tokenizer.encode("Tags are vectors spliced into the input").unwrap();
    let llama = &model.llama;
    let full = llama
        .forward(&llama.embed(&[Segment::Tokens(ids.clone())]).unwrap().unsqueeze(0).unwrap(), &mut KvCache::new(), Mode::Infer)
        .unwrap();
    let mut cache = KvCache::new();
    let n = ids.len();
    llama.forward(&llama.embed_tokens(&ids[..n - 3]).unwrap().unsqueeze(0).unwrap(), &mut cache, Mode::Infer).unwrap();
    let mut last = None;
    for &id in &ids[n - 3..] {
        last = Some(llama.forward(&llama.embed_tokens(&[id]).unwrap().unsqueeze(0).unwrap(), &mut cache, Mode::Infer).unwrap());
    }
    let step = last.unwrap().i((0, 0)).unwrap();
    let diff: f32 = (full.i((0, n - 1)).unwrap() - step).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
    assert!(diff < 1e-3, "hidden state difference {diff}");
}

/// The training mode (differentiable kernels) computes exactly what the fused inference kernels
/// compute on the same f32 weights; the quantised path differs from both only by the 8-bit
/// quantisation of activations inside its Q4_1 dot products (as in llama.cpp).
#[test]
fn train_mode_matches_infer_mode() {
    let dense = common::model();
    let model = common::quantized_model();
    let ids = model.tokenizer.encode("The capital of France is").unwrap();
    let x = model.llama.embed(&[Segment::Tokens(ids.clone())]).unwrap().unsqueeze(0).unwrap();
    let quantised = model.llama.forward(&x, &mut KvCache::new(), Mode::Infer).unwrap();
    let train = dense.llama.forward(&x, &mut KvCache::new(), Mode::Train).unwrap();
    let infer = dense.llama.forward(&x, &mut KvCache::new(), Mode::Infer).unwrap();
    let norm = |t: &candle_core::Tensor| -> f32 { t.sqr().unwrap().sum_all().unwrap().sqrt().unwrap().to_scalar().unwrap() };
    let rel = |a: &candle_core::Tensor, b: &candle_core::Tensor| norm(&(a - b).unwrap()) / norm(a);
    let same_kernels = rel(&infer, &train);
    assert!(same_kernels < 1e-4, "train vs infer kernels on f32 weights: {same_kernels}");
    // Measured: 0.033 on this prompt.
    let activation_quantisation = rel(&quantised, &train);
    assert!(activation_quantisation < 0.05, "quantised vs f32 path: {activation_quantisation}");
    let top = |h: &candle_core::Tensor| -> u32 { model.llama.logits(&h.i((0, 4)).unwrap()).unwrap().argmax(0).unwrap().to_scalar().unwrap() };
    assert_eq!(top(&quantised), top(&train));
}

/// Ragged batches: each row gets exactly what it gets alone, also for a block appended after
/// rows of different lengths (how the trainer puts a function tag after each input).
#[test]
fn ragged_rows_match_rows_alone() {
    let model = common::model();
    let llama = &model.llama;
    let texts = ["Short one", "A somewhat longer second input", "Mid length text"];
    let tail = model.tokenizer.encode(" and then").unwrap();
    let mut shared = KvCache::new();
    let head = model.tokenizer.encode("Prefix shared by all:").unwrap();
    llama.forward(&llama.embed_tokens(&head).unwrap().unsqueeze(0).unwrap(), &mut shared, Mode::Infer).unwrap();
    let rows: Vec<Vec<Segment>> = texts.iter().map(|t| vec![Segment::Tokens(model.tokenizer.encode(t).unwrap())]).collect();
    let (x, lens) = llama.embed_batch(&rows).unwrap();
    let mut cache = shared.clone();
    llama.forward_ragged(&x, &lens, &mut cache, Mode::Infer).unwrap();
    let tail_x = llama.embed_tokens(&tail).unwrap().unsqueeze(0).unwrap().repeat((3, 1, 1)).unwrap();
    for mode in [Mode::Infer, Mode::Train] {
        let out = llama.forward_ragged(&tail_x, &[tail.len(); 3], &mut cache.clone(), mode).unwrap();
        for (i, t) in texts.iter().enumerate() {
            let mut ids = head.clone();
            ids.extend(model.tokenizer.encode(t).unwrap());
            ids.extend(&tail);
            let alone = llama.forward(&llama.embed_tokens(&ids).unwrap().unsqueeze(0).unwrap(), &mut KvCache::new(), Mode::Infer).unwrap();
            let a = alone.i((0, ids.len() - 1)).unwrap();
            let r = out.i((i, tail.len() - 1)).unwrap();
            let diff: f32 = (a - r).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
            assert!(diff < 1e-3, "row {i} ({mode:?}): {diff}");
        }
    }
}
