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
        range: None,
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
    // The kept tag records the whole run (every validation, the examples its steps saw), and
    // the ridge start is kept beside it for the model card.
    assert_eq!(tag.meta.provenance["run_examples_seen"].as_u64(), Some(48));
    assert_eq!(tag.meta.provenance["valid_history"].as_array().map(Vec::len), Some(3));
    let start = Tag::load(&tagllm::train::start_path(&out)).unwrap();
    assert_eq!(start.meta.provenance["best_step"].as_u64(), Some(0));
    assert_eq!(start.meta.provenance["examples_seen"].as_u64(), Some(0));
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

/// A library with the test SMILES tag, a fresh QED tag for it (the shipped prompt, `readout`),
/// `n` training examples and their targets' mean and standard deviation.
fn qed_setup(n: usize, readout: Readout) -> (TagLibrary, Tag, Vec<tagllm::train::Example>, f64, f64) {
    let model = common::model();
    let mut library = TagLibrary::new();
    let smiles = common::test_tags().into_iter().find(|t| t.name() == "SMILES").unwrap();
    let domains = [&smiles];
    let train = qed_examples(n);
    let ys: Vec<f64> = train.iter().map(|e| e.target).collect();
    let mean = ys.iter().sum::<f64>() / n as f64;
    let std = (ys.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
    let spec = tagllm::tags::init::FunctionSpec {
        name: "QED",
        template: common::QED_TEMPLATE,
        output: OutputKind::Regression,
        target: Some(tagllm::tags::Target { name: "QED".into(), units: String::new(), mean, std, range: None }),
        domains: &domains,
        readout,
    };
    let tag = tagllm::tags::init::new_function_tag(model, spec, 10, 5).unwrap();
    library.insert(smiles.clone(), &model.identity, "SMILES").unwrap();
    (library, tag, train, mean, std)
}

/// The training gradients (autograd through the tag's positions in training mode) agree with
/// central differences of the loss computed on the *inference* path, along each parameter's
/// gradient direction: a wrong backward, or a training forward that differs from what the
/// predictor computes, fails it.
#[test]
fn gradients_match_finite_differences_of_the_inference_loss() {
    use candle_core::Tensor;
    let model = common::model();
    let (mut library, tag, train, mean, std) = qed_setup(6, Readout::LastAndInputMeans);
    library.insert(tag.clone(), &model.identity, "QED").unwrap();
    let obj = tagllm::train::Objective::new(model, &library, "QED", &train, mean, std).unwrap();
    let width = tag.meta.head_width();
    let params = tagllm::train::Params::new(&tag.vectors, width, 0.0).unwrap();
    // A head that reads every feature: seeded, of the scale a fitted one has.
    let w: Vec<f64> = tagllm::tags::init::seeded_normal(width, 9).iter().map(|v| *v as f64 / (width as f64).sqrt() / 20.0).collect();
    params.set_head(&w, 0.1).unwrap();
    let batch: Vec<usize> = (0..train.len()).collect();
    let (loss, grads, _, _) = obj.loss_and_grads(&batch, &params).unwrap();
    let (v0, w0, b0) = (params.vectors.as_tensor().detach(), params.w.as_tensor().detach(), params.b.as_tensor().detach());
    let infer = obj.loss_infer(&batch, &v0, &w0, &b0).unwrap();
    assert!((loss - infer).abs() < 1e-4 * loss.abs().max(1.0), "training loss {loss}, inference loss {infer}");
    let base = [v0, w0, b0];
    for (i, name) in ["vectors", "head weights", "head bias"].iter().enumerate() {
        let g = &grads[i];
        let norm = g.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() as f64;
        let norm = norm.sqrt();
        assert!(norm > 1e-6, "{name}: no gradient");
        let u = (g / norm).unwrap();
        let at = |eps: f64| -> f64 {
            let mut p: Vec<Tensor> = base.to_vec();
            p[i] = (&base[i] + (&u * eps).unwrap()).unwrap();
            obj.loss_infer(&batch, &p[0], &p[1], &p[2]).unwrap()
        };
        // A step that moves the loss by ~0.2% of itself (the loss is far from linear in the
        // vectors: at 2% the slope has changed by a tenth), and Richardson's extrapolation of
        // two central differences (error O(ε⁴)).
        let eps = 0.002 * loss / norm;
        let fd = |e: f64| (at(e) - at(-e)) / (2.0 * e);
        let (d1, d2) = (fd(eps), fd(eps / 2.0));
        let fd = (4.0 * d2 - d1) / 3.0;
        let rel = (fd - norm).abs() / norm;
        eprintln!("{name}: |g| {norm:.6e}, finite difference {fd:.6e} ({d1:.6e}, {d2:.6e}), relative error {rel:.2e}");
        assert!(rel <= 1e-3, "{name}: gradient {norm} vs finite difference {fd} (relative error {rel:.2e})");
    }
}

/// The paper's read-out (the tag's last state only): the tag, with its head re-solved in closed
/// form at every step, fits 32 training examples to R² ≥ 0.95 on them, and the vectors do much
/// of it (the ridge head alone, on the initial tag, is well short). If they cannot, the
/// gradient path is broken.
#[test]
fn a_function_tag_overfits_32_examples() {
    let model = common::model();
    let (library, _, train, _, _) = qed_setup(32, Readout::Last);
    let plan = FunctionPlan {
        name: "QED".into(),
        template: common::QED_TEMPLATE.into(),
        output: OutputKind::Regression,
        target_name: "QED".into(),
        units: String::new(),
        description: "overfitting test".into(),
        readout: Readout::Last,
        range: None,
    };
    let opts = TrainOptions { steps: 100, batch: 32, lr: 5e-3, warmup: 0.05, eval_every: 25, init_examples: 32, refit_every: 1, ..Default::default() };
    let scratch = out_dir("overfit");
    let out = scratch.join("QED.safetensors");
    let (mut losses, mut r2) = (Vec::new(), Vec::new());
    let tag = train_function_tag(model, &library, &plan, &opts, &train, &train, &out, |r| {
        if r.step > 0 {
            losses.push(r.loss)
        }
        if let Some(m) = &r.valid {
            r2.push(m.r2)
        }
    })
    .unwrap();
    let (m, _) = evaluate_tag(model, &library, &tag, &train).unwrap();
    eprintln!("losses {losses:?}; training R² by validation {r2:?}, final {}", m.r2);
    assert!(m.r2 >= 0.95, "training R² {} on 32 examples (losses {losses:?})", m.r2);
    assert!(1.0 - m.r2 <= 0.5 * (1.0 - r2[0]), "the ridge start had R² {} and training reached only {}", r2[0], m.r2);
}
