//! Fresh tags, initialised as the paper does: every vector starts as the mean token embedding,
//! rescaled to the typical token-embedding norm (plus a little seeded noise so that the `p`
//! vectors of a tag are not identical).

use std::collections::BTreeMap;

use candle_core::{Device, Tensor, D};

use super::file::{InputType, OutputKind, Readout, Requirement, Tag, TagKind, TagMeta, Target, FORMAT_VERSION};
use crate::error::Result;
use crate::model::Model;

/// `[p, d]` initial vectors; `noise` is relative to the embedding norm.
pub fn initial_vectors(model: &Model, p: usize, noise: f32, seed: u64) -> Result<Tensor> {
    let table = model.llama.embedding_table()?;
    let mean = table.mean(0)?;
    let typical_norm = table.sqr()?.sum(D::Minus1)?.sqrt()?.mean_all()?.to_scalar::<f32>()?;
    let mean_norm = mean.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?;
    let base = (mean * (typical_norm / mean_norm.max(1e-12)) as f64)?;
    let d = model.llama.config.hidden;
    let noise_values = seeded_normal(p * d, seed);
    let scale = noise * typical_norm / (d as f32).sqrt();
    let noise = Tensor::from_vec(noise_values, (p, d), &Device::Cpu)? * scale as f64;
    Ok(base.unsqueeze(0)?.broadcast_add(&noise?)?)
}

/// Deterministic standard-normal values.
pub fn seeded_normal(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = crate::rng::SplitMix64(seed);
    (0..n).map(|_| rng.next_normal() as f32).collect()
}

fn meta(model: &Model, name: &str, kind: TagKind, p: usize) -> TagMeta {
    TagMeta {
        format_version: FORMAT_VERSION,
        name: name.to_string(),
        kind,
        p,
        d: model.llama.config.hidden,
        base_model: model.identity.clone(),
        description: String::new(),
        input: None,
        template: None,
        output: None,
        target: None,
        readout: Default::default(),
        requires: Vec::new(),
        provenance: BTreeMap::new(),
        metrics: BTreeMap::new(),
    }
}

/// A new, untrained domain tag marking inputs of type `input`.
pub fn new_domain_tag(model: &Model, name: &str, input: InputType, p: usize, seed: u64) -> Result<Tag> {
    let mut meta = meta(model, name, TagKind::Domain, p);
    meta.input = Some(input);
    let vectors = initial_vectors(model, p, 0.1, seed)?;
    finish(meta, vectors, None)
}

/// What a function tag is for: everything but its learned numbers.
pub struct FunctionSpec<'a> {
    pub name: &'a str,
    pub template: &'a str,
    pub output: OutputKind,
    pub target: Option<Target>,
    /// The domain tags its template uses, as they will be frozen.
    pub domains: &'a [&'a Tag],
    pub readout: Readout,
}

/// A new, untrained function tag with a zero-bias head whose weights are small and seeded.
pub fn new_function_tag(model: &Model, spec: FunctionSpec<'_>, p: usize, seed: u64) -> Result<Tag> {
    let output = spec.output;
    let mut meta = meta(model, spec.name, TagKind::Function, p);
    meta.template = Some(spec.template.to_string());
    meta.output = Some(output);
    meta.target = spec.target;
    meta.readout = spec.readout;
    meta.requires = spec
        .domains
        .iter()
        .map(|t| Requirement { name: t.meta.name.clone(), vectors_sha256: t.vectors_sha256.clone() })
        .collect();
    let vectors = initial_vectors(model, p, 0.1, seed)?;
    let width = meta.head_width();
    let head = match output {
        OutputKind::Generation => None,
        _ => {
            let w = seeded_normal(width, seed ^ 0x5EED);
            let w = Tensor::from_vec(w, (1, width), &Device::Cpu)? * (1.0 / (width as f64).sqrt());
            Some((w?, Tensor::zeros(1, candle_core::DType::F32, &Device::Cpu)?))
        }
    };
    finish(meta, vectors, head)
}

/// Wraps vectors and head into a checked tag (round-tripping through the file format, so a tag
/// made here obeys every rule a loaded one does).
pub fn finish(meta: TagMeta, vectors: Tensor, head: Option<(Tensor, Tensor)>) -> Result<Tag> {
    let tag = Tag { meta, vectors, head, vectors_sha256: String::new() };
    let bytes = tag.to_bytes()?;
    Tag::from_bytes(&bytes, &format!("<new tag {}>", tag.meta.name))
}

/// The QED prompt of the paper's reference code.
pub const QED_TEMPLATE: &str = "# # Input: The SMILES of the molecule is <SMILES> {SMILES}. \n# # Output: the quantitative estimate of druglikeness score is <QED>";
/// A two-input prompt: the protein first, so that one protein scored against many molecules is
/// a shared prefix.
pub const AFFINITY_TEMPLATE: &str = "# # Input: The protein sequence is <Protein> {Protein}. The SMILES of the drug is <SMILES> {SMILES}. \n# # Output: the binding affinity is <BindingAffinity>";

/// Untrained, deterministic demo tags — `SMILES`, `Protein` (domain), `QED` and
/// `BindingAffinity` (function) — for tests and for trying the machinery before trained tags
/// exist. Their predictions mean nothing.
pub fn untrained_demo_tags(model: &Model) -> Result<Vec<Tag>> {
    let smiles = new_domain_tag(model, "SMILES", InputType::Smiles, 10, 1)?;
    let protein = new_domain_tag(model, "Protein", InputType::Protein, 10, 2)?;
    let qed = new_function_tag(
        model,
        FunctionSpec {
            name: "QED",
            template: QED_TEMPLATE,
            output: OutputKind::Regression,
            target: Some(Target { name: "QED".into(), units: String::new(), mean: 0.6, std: 0.15, range: Some((0.0, 1.0)) }),
            domains: &[&smiles],
            readout: Readout::Last,
        },
        10,
        3,
    )?;
    let affinity = new_function_tag(
        model,
        FunctionSpec {
            name: "BindingAffinity",
            template: AFFINITY_TEMPLATE,
            output: OutputKind::Regression,
            target: Some(Target { name: "pKd".into(), units: "-log10(M)".into(), mean: 5.5, std: 0.9, range: None }),
            domains: &[&protein, &smiles],
            readout: Readout::LastAndInputMeans,
        },
        10,
        4,
    )?;
    Ok(vec![smiles, protein, qed, affinity])
}
