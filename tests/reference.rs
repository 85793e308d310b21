//! Our forward pass against candle-transformers' `quantized_llama`, an independent implementation,
//! on the same file and the same f32 weights: the logits at several positions of a plain text.
//!
//! Both run the weights expanded to f32 (ours: `Weights::F32`; theirs: candle's
//! `CANDLE_DEQUANTIZE_ALL`), so that only the summation order differs. On the file's quantised
//! kernels activations are rounded to 8 bits inside every product, which turns last-bit
//! differences (our attention sums in another order) into percent-level ones and would hide a
//! real error behind a loose bound.
//!
//! This file holds one test on purpose: candle reads `CANDLE_DEQUANTIZE_ALL` once per thread,
//! and the variable is set for the whole process.

mod common;

use candle_core::IndexOp;
use tagllm::model::{KvCache, Mode, Segment};

#[test]
fn logits_match_the_reference_implementation() {
    use candle_transformers::models::quantized_llama::ModelWeights;
    std::env::set_var("CANDLE_DEQUANTIZE_ALL", "1");
    let model = common::model();
    let path = common::model_path();
    let text = "Aspirin is CC(=O)Oc1ccccc1C(=O)O and water is O.";
    let ids = model.tokenizer.encode(text).unwrap();
    let x = model.llama.embed(&[Segment::Tokens(ids.clone())]).unwrap().unsqueeze(0).unwrap();
    let hidden = model.llama.forward(&x, &mut KvCache::new(), Mode::Infer).unwrap();
    // The reference answers the last position of its input: feed it each prefix.
    let mut worst = 0f32;
    for end in [1, 5, ids.len() / 2, ids.len()] {
        let mut file = std::fs::File::open(&path).unwrap();
        let content = candle_core::quantized::gguf_file::Content::read(&mut file).unwrap();
        let mut reference = ModelWeights::from_gguf(content, &mut file, &candle_core::Device::Cpu).unwrap();
        let ours = model.llama.logits(&hidden.i((0, end - 1)).unwrap()).unwrap();
        let input = candle_core::Tensor::new(&ids[..end], &candle_core::Device::Cpu).unwrap().unsqueeze(0).unwrap();
        let theirs = reference.forward(&input, 0).unwrap().squeeze(0).unwrap();
        let diff: f32 = (&ours - &theirs).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        let top = |t: &candle_core::Tensor| -> u32 { t.argmax(0).unwrap().to_scalar().unwrap() };
        assert_eq!(top(&ours), top(&theirs), "next token after {end} tokens");
        worst = worst.max(diff);
    }
    // Measured: 4e-5 (logits reach ~20; f32 sums in another order differ in the last bits).
    const MAX_ABS_DIFF: f32 = 5e-4;
    assert!(worst < MAX_ABS_DIFF, "largest logit difference {worst}");
    eprintln!("largest logit difference: {worst}");
}
