//! Writes untrained (random, deterministic) test tags — SMILES, Protein, QED and BindingAffinity,
//! made exactly as `tests/common/mod.rs` makes them — into a folder, for the web page's
//! end-to-end test: `cargo run --example make_test_tags -- target/e2e-tags`.

use tagllm::model::Model;
use tagllm::tags::init::{new_domain_tag, new_function_tag, FunctionSpec};
use tagllm::tags::{InputType, OutputKind, Target};

const QED_TEMPLATE: &str = "# # Input: The SMILES of the molecule is <SMILES> {SMILES}. \n# # Output: the quantitative estimate of druglikeness score is <QED>";
const AFFINITY_TEMPLATE: &str = "# # Input: The protein sequence is <Protein> {Protein}. The SMILES of the drug is <SMILES> {SMILES}. \n# # Output: the binding affinity is <BindingAffinity>";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "target/e2e-tags".into()));
    let model_path = std::env::var("TAGLLM_MODEL").unwrap_or_else(|_| tagllm::model::DEFAULT_MODEL_PATH.into());
    let m = Model::load(std::path::Path::new(&model_path))?;
    let smiles = new_domain_tag(&m, "SMILES", InputType::Smiles, 10, 1)?;
    let protein = new_domain_tag(&m, "Protein", InputType::Protein, 10, 2)?;
    let qed = new_function_tag(
        &m,
        FunctionSpec {
            name: "QED",
            template: QED_TEMPLATE,
            output: OutputKind::Regression,
            target: Some(Target { name: "QED".into(), units: String::new(), mean: 0.6, std: 0.15 }),
            domains: &[&smiles],
        },
        10,
        3,
    )?;
    let aff = new_function_tag(
        &m,
        FunctionSpec {
            name: "BindingAffinity",
            template: AFFINITY_TEMPLATE,
            output: OutputKind::Regression,
            target: Some(Target { name: "pKd".into(), units: "-log10(M)".into(), mean: 5.5, std: 0.9 }),
            domains: &[&protein, &smiles],
        },
        10,
        4,
    )?;
    std::fs::create_dir_all(&dir)?;
    for t in [smiles, protein, qed, aff] {
        let path = dir.join(format!("{}.safetensors", t.meta.name));
        t.save(&path)?;
        println!("{}", path.display());
    }
    Ok(())
}
