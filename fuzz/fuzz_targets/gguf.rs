//! GGUF header and metadata: `GgufFile::from_bytes` (header, metadata, tensor table, config,
//! truncation check) and, for files it accepts, the model built on them: the tokenizer rebuilt
//! from the metadata and the weights read through the tensor table.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tagllm::model::{GgufFile, Model, Weights};

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::from_bytes(data.to_vec()) else { return };
    // The portable ways a model is held; f32 expands every matrix (small here), compact checks
    // each matrix's blocks.
    let weights = [Weights::Quantized, Weights::F32, Weights::Compact][data.len() % 3];
    if let Ok(model) = Model::from_gguf(file, weights) {
        let _ = model.tokenizer.encode("CCO <|im_start|>1234");
    }
});
