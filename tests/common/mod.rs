//! Shared test set-up: the real model, loaded once per test binary.
#![allow(dead_code)]

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

/// The real SmolLM2 model. Tests need it: run `scripts/setup.sh` first.
pub fn model() -> &'static Model {
    static MODEL: OnceLock<Model> = OnceLock::new();
    MODEL.get_or_init(|| {
        Model::load(&model_path()).unwrap_or_else(|e| panic!("{e}\n(the tests need the real model)"))
    })
}
