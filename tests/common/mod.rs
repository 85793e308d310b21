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

/// A fresh folder under the system's temporary folder, removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("tagllm-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes the test tags into a fresh folder (removed when the result is dropped).
pub fn test_tag_dir(name: &str) -> Scratch {
    let dir = Scratch::new(&format!("test-{name}"));
    for t in test_tags() {
        t.save(&dir.join(format!("{}.safetensors", t.meta.name))).unwrap();
    }
    dir
}

/// Twelve small drug-like molecules (and common solvents) whose predictions the weight kinds are
/// compared on.
pub const MOLECULES: &[&str] = &[
    "CC(=O)Oc1ccccc1C(=O)O",
    "CCO",
    "CN1C=NC2=C1C(=O)N(C(=O)N2C)C",
    "C[C@@H](N)C(=O)O",
    "c1ccc2c(c1)[nH]c1ccccc12",
    "CC(C)Cc1ccc(cc1)[C@@H](C)C(=O)O",
    "O=C(O)c1ccccc1O",
    "CCN(CC)CC",
    "FC(F)(F)c1ccc(cc1)O",
    "Cc1c(C(=O)N(CC(N)=O)C2CCCC2)cnn1C(C)(C)C",
    "N#Cc1ccc(NS(=O)(=O)Cc2ccccc2)nc1",
    "CCOC(=O)c1ccc(NC(=O)C2CCN(c3ncccn3)CC2)cc1",
];

/// The shipped tags (LogP: a trained regression tag, stable in the repository).
pub fn shipped(model: &Model) -> tagllm::tags::TagLibrary {
    let (lib, _) = tagllm::tags::TagLibrary::load_dir(&repo_root().join("tags"), &model.identity).unwrap();
    lib
}

/// Relative L2 distance of `a` from `b`.
pub fn rel(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den).sqrt()
}
