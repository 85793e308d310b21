//! The trainer on a tiny budget, on the real model and real data.

mod common;

use tagllm::predict::Predictor;
use tagllm::tags::{OutputKind, Readout, Tag, TagLibrary};
use tagllm::train::{evaluate_tag, load_examples, train_domain_tag, train_function_tag, FunctionPlan, TrainOptions};

fn qed_examples(n: usize) -> Vec<tagllm::train::Example> {
    let path = common::repo_root().join("data/tasks/QED/train.csv");
    let (mut ex, _) = load_examples(&path, &["smiles".to_string()], "target").unwrap();
    ex.truncate(n);
    ex
}

fn out_dir(name: &str) -> common::Scratch {
    common::Scratch::new(&format!("train-{name}"))
}

#[test]
fn function_tag_training_lowers_the_loss_and_keeps_domain_tags_frozen() {
    let model = common::model();
    let mut library = TagLibrary::new();
    let smiles = common::test_tags().into_iter().find(|t| t.name() == "SMILES").unwrap();
    let smiles_before = smiles.to_bytes().unwrap();
    library.insert(smiles, &model.identity, "SMILES").unwrap();
    let train = qed_examples(12);
    let plan = FunctionPlan {
        name: "QED".into(),
        template: common::QED_TEMPLATE.into(),
        output: OutputKind::Regression,
        target_name: "QED".into(),
        units: String::new(),
        description: "test".into(),
        readout: Readout::LastAndInputMeans,
    };
    let opts = TrainOptions { steps: 12, batch: 4, lr: 1e-2, eval_every: 6, ..Default::default() };
    let scratch = out_dir("function");
    let out = scratch.join("QED.safetensors");
    let mut losses = Vec::new();
    let mut valid = Vec::new();
    let mut init = Vec::new();
    let tag = train_function_tag(model, &library, &plan, &opts, &train, &train, &out, |r| {
        if r.step > 0 {
            losses.push(r.loss);
        }
        if let Some(m) = &r.valid {
            valid.push((r.step, m.r2));
        }
        if let Some(i) = r.init {
            init.push(i);
        }
    })
    .unwrap();
    assert_eq!(losses.len(), 12);
    // The ridge start reports its progress, is validated before step 1, and the tag kept is the
    // best one validated.
    assert_eq!(init.last().map(|i| i.0 == i.1), Some(true), "{init:?}");
    assert_eq!(valid.iter().map(|v| v.0).collect::<Vec<_>>(), [0, 6, 12]);
    let best = valid.iter().map(|v| v.1).fold(f64::NEG_INFINITY, f64::max);
    let kept = tag.meta.provenance["valid_metrics"]["r2"].as_f64().unwrap();
    assert!((kept - best).abs() < 1e-9, "kept {kept}, history {valid:?}");
    // The tag fits its 12 training examples better than predicting their mean.
    let (m, _) = evaluate_tag(model, &library, &tag, &train).unwrap();
    let targets: Vec<f64> = train.iter().map(|e| e.target).collect();
    let mean = targets.iter().sum::<f64>() / targets.len() as f64;
    let var = targets.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / targets.len() as f64;
    assert!(m.mse < var, "mse {} vs predicting the mean {var}", m.mse);
    // Frozen: the domain tag is bit for bit what it was, and the function tag pins it.
    let smiles_after = library.get("SMILES").unwrap();
    assert_eq!(smiles_after.to_bytes().unwrap(), smiles_before);
    assert_eq!(tag.meta.requires[0].vectors_sha256, smiles_after.vectors_sha256);
    // The saved tag reloads to identical predictions.
    let reloaded = Tag::load(&out).unwrap();
    let items: Vec<Vec<String>> = train.iter().map(|e| e.inputs.clone()).collect();
    let predict = |t: &Tag| {
        let mut lib = library.clone();
        lib.insert(t.clone(), &model.identity, "QED").unwrap();
        let p = Predictor::new(model, &lib, "QED").unwrap();
        p.predict(&items).into_iter().map(|r| r.unwrap()).collect::<Vec<f64>>()
    };
    assert_eq!(predict(&tag), predict(&reloaded));
    assert!(tag.meta.provenance.contains_key("valid_metrics"));
}

#[test]
fn domain_tag_training_lowers_the_loss() {
    let model = common::model();
    let corpus: Vec<String> = ["CC(=O)Oc1ccccc1C(=O)O", "CCN(CC)CC", "c1ccccc1O", "CCOC(=O)C"].iter().map(|s| s.to_string()).collect();
    // One batch holding the whole corpus: every step sees the same sequences.
    let opts = TrainOptions { steps: 8, batch: 4, lr: 3e-2, warmup: 0.0, ..Default::default() };
    let scratch = out_dir("domain");
    let out = scratch.join("SMILES.safetensors");
    let mut losses = Vec::new();
    let (tag, _, _) = train_domain_tag(model, "SMILES", tagllm::tags::InputType::Smiles, &corpus, &opts, &out, |r| losses.push(r.loss)).unwrap();
    assert!(losses[7] < losses[0] - 0.05, "losses {losses:?}");
    assert_eq!(Tag::load(&out).unwrap().vectors_sha256, tag.vectors_sha256);
}
