//! Shared test set-up: the real model, loaded once per test binary.
#![allow(dead_code, unused_imports)]

use std::path::PathBuf;
use std::sync::OnceLock;

use tagllm::model::Model;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn model_path() -> PathBuf {
    std::env::var_os("TAGLLM_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(tagllm::model::DEFAULT_MODEL_PATH))
}

/// The real SmolLM2 model with its weights kept quantised.
pub fn quantized_model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| {
        let file = tagllm::model::GgufFile::open(&model_path()).unwrap_or_else(|e| panic!("{e}"));
        Model::from_gguf(file, tagllm::model::Weights::Quantized).unwrap()
    })
}

/// The real SmolLM2 model (f32 weights, as the CLI runs it). Tests need it: run
/// `scripts/setup.sh` first.
pub fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| {
        Model::load(&model_path()).unwrap_or_else(|e| panic!("{e}\n(the tests need the real model)"))
    })
}

use tagllm::tags::{Tag, TagLibrary};

pub use tagllm::tags::init::QED_TEMPLATE;

/// Untrained (random) test tags: SMILES and Protein domain tags, a QED regression tag and a
/// two-input BindingAffinity tag. Deterministic.
pub fn test_tags() -> Vec<Tag> {
    tagllm::tags::init::untrained_demo_tags(model()).unwrap()
}

pub fn test_library() -> TagLibrary {
    let mut lib = TagLibrary::new();
    for t in test_tags() {
        let name = t.meta.name.clone();
        lib.insert(t, &model().identity, &name).unwrap();
    }
    lib
}

/// Writes the test tags into a fresh folder and returns it.
pub fn test_tag_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tagllm-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for t in test_tags() {
        t.save(&dir.join(format!("{}.safetensors", t.meta.name))).unwrap();
    }
    dir
}
