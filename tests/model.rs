//! The real model file, the real tokenizer: known answers from `shared/docs/model.md`, and
//! agreement with candle-transformers' reference implementation.

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
