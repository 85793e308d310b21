//! Writes the untrained (random, deterministic) demo tags — SMILES, Protein, QED and
//! BindingAffinity, the same ones the native tests use — into a folder, for the web page's
//! end-to-end test: `cargo run --example make_test_tags -- target/e2e-tags`.

use tagllm::model::Model;
use tagllm::tags::init::untrained_demo_tags;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "target/e2e-tags".into()));
    let model_path = std::env::var("TAGLLM_MODEL").unwrap_or_else(|_| tagllm::model::DEFAULT_MODEL_PATH.into());
    let m = Model::load(std::path::Path::new(&model_path))?;
    std::fs::create_dir_all(&dir)?;
    for t in untrained_demo_tags(&m)? {
        let path = dir.join(format!("{}.safetensors", t.meta.name));
        t.save(&path)?;
        println!("{}", path.display());
    }
    Ok(())
}
