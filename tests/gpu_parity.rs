//! The WebGPU backend against the CPU path: every kernel on random inputs against a CPU
//! reference (the cases in `tests/gpu_kernels/`, which `tests/gpu_web.rs` runs in a browser), then the whole model on a real QED prompt (tags spliced in) against
//! `Llama::forward` with f32-expanded weights.
//!
//! Run with `cargo test --features gpu --test gpu_parity`. Without any GPU adapter (natively:
//! no Vulkan driver; `apt-get install mesa-vulkan-drivers` gives the software one, lavapipe) the
//! tests fail, unless `TAGLLM_GPU_TESTS=skip` is set.
//!
//! Error measure everywhere: max |gpu − cpu| / max |cpu| over the whole output.
#![cfg(feature = "gpu")]

mod common;
mod gpu_kernels;

use std::sync::OnceLock;

use candle_core::IndexOp;
use gpu_kernels::check;
use tagllm::gpu::{block_on, Gpu, GpuLlama};
use tagllm::model::{GgufFile, KvCache, Mode, Model, Sampling, Segment};
use tagllm::predict::Predictor;

/// A fresh device, or `None` when there is no adapter and `TAGLLM_GPU_TESTS=skip` says to skip.
fn new_gpu() -> Option<Gpu> {
    match Gpu::new_blocking() {
        Ok(gpu) => {
            eprintln!("GPU adapter: {}", gpu.describe());
            Some(gpu)
        }
        Err(e) if std::env::var("TAGLLM_GPU_TESTS").as_deref() == Ok("skip") => {
            eprintln!("TAGLLM_GPU_TESTS=skip: skipping a GPU parity test ({e})");
            None
        }
        Err(e) => panic!(
            "{e}\nThe GPU parity tests need a GPU adapter: install a Vulkan driver (scripts/setup.sh \
             installs mesa-vulkan-drivers, the software one), or set TAGLLM_GPU_TESTS=skip to skip them."
        ),
    }
}

/// The real model on the CPU (f32 weights) and on a fresh device, or `None` as [`new_gpu`].
fn gpu_model() -> Option<(&'static Model, GpuLlama)> {
    let gpu = new_gpu()?;
    let file = GgufFile::open(&common::model_path()).unwrap();
    let t = std::time::Instant::now();
    let gpu_llama = GpuLlama::new(gpu, &file).unwrap();
    eprintln!("weights uploaded in {:.2?}", t.elapsed());
    Some((common::model(), gpu_llama))
}

/// One device shared by the kernel tests.
fn gpu() -> Option<&'static Gpu> {
    static GPU: OnceLock<Option<Gpu>> = OnceLock::new();
    GPU.get_or_init(new_gpu).as_ref()
}

/// Runs a shared kernel case (tests/gpu_kernels) on the shared device.
macro_rules! kernel_test {
    ($name:ident, $case:ident) => {
        #[test]
        fn $name() {
            let Some(gpu) = gpu() else { return };
            block_on(gpu_kernels::$case(gpu));
        }
    };
}

kernel_test!(matmul_q4_1_matches_cpu, matmul_q4_1);
kernel_test!(matmul_q8_0_matches_cpu, matmul_q8_0);
kernel_test!(rmsnorm_matches_cpu, rmsnorm);
kernel_test!(rope_matches_cpu, rope);
kernel_test!(attention_matches_cpu, attention);
kernel_test!(silu_mul_matches_cpu, silu_mul);
kernel_test!(add_matches_cpu, add);

/// Where the shared device adds the matrix–vector kernels' partial sums by subgroup shuffles, the
/// WebGPU core's variant (workgroup memory, as in browsers) on this adapter too.
#[test]
fn matvec_without_subgroups_matches_cpu() {
    let Some(shared) = gpu() else { return };
    if !shared.subgroups {
        return; // the shared device runs the core variant in matmul_*_matches_cpu
    }
    let plain = block_on(Gpu::with_features(false)).unwrap();
    assert!(!plain.subgroups && !plain.describe().contains("subgroups"));
    block_on(gpu_kernels::matvec(&plain));
}

/// The whole model on a real QED prompt (SMILES domain tag and QED function tag spliced in),
/// against the CPU path with f32 weights; then a plain-text prompt whose next token is known.
#[test]
fn whole_model_matches_cpu_forward() {
    let Some((model, mut gpu_llama)) = gpu_model() else { return };

    let lib = common::test_library();
    let predictor = Predictor::new(model, &lib, "QED").unwrap();
    let keys = predictor.prompt(&["CC(=O)Oc1ccccc1C(=O)O".to_string()]).unwrap();
    let segments = predictor.segments(&keys);
    assert!(segments.iter().any(|s| matches!(s, Segment::Vectors(_))), "the prompt has tags");

    let x = model.llama.embed(&segments).unwrap();
    let n = x.dims()[0];
    let t = std::time::Instant::now();
    let cpu = model.llama.forward(&x.unsqueeze(0).unwrap(), &mut KvCache::new(), Mode::Infer).unwrap();
    eprintln!("CPU forward of {n} tokens: {:.2?}", t.elapsed());
    let cpu: Vec<f32> = cpu.flatten_all().unwrap().to_vec1().unwrap();

    let t = std::time::Instant::now();
    let got = gpu_llama.hidden_states(&model.llama, &segments).unwrap();
    eprintln!("GPU forward of {n} tokens (first, builds the workspace): {:.2?}", t.elapsed());
    let got: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
    check(&format!("whole model, QED prompt of {n} positions"), &got, &cpu, 1e-3);
    let d = model.llama.config.hidden;
    check("whole model, read-out row (the function tag's last position)", &got[(n - 1) * d..], &cpu[(n - 1) * d..], 1e-3);

    // The same length again reuses the workspace and gives the same bits.
    let t = std::time::Instant::now();
    let again = gpu_llama.forward_blocking(&x.flatten_all().unwrap().to_vec1::<f32>().unwrap()).unwrap();
    eprintln!("GPU forward of {n} tokens (workspace reused): {:.2?}", t.elapsed());
    assert_eq!(again, got, "a second run of the same input differs");

    // Plain text: the known next token.
    let ids = model.tokenizer.encode("The capital of France is").unwrap();
    let prompt = [Segment::Tokens(ids)];
    let hidden = gpu_llama.hidden_states(&model.llama, &prompt).unwrap();
    let logits: Vec<f32> = model.llama.logits(&hidden.i(4).unwrap()).unwrap().to_vec1().unwrap();
    let best = (0..logits.len()).max_by(|&a, &b| logits[a].total_cmp(&logits[b])).unwrap();
    assert_eq!(model.tokenizer.token_text(best as u32), " Paris", "logit {}", logits[best]);
    // The output head on the GPU (on the pass's last row, as generation reads it) against the
    // CPU's head on those states: the same f32 products, summed in another order.
    let x = model.llama.embed(&prompt).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let gpu_logits = block_on(gpu_llama.logits_at(&x, 0)).unwrap();
    check("logits of the last position, output head on the GPU", &gpu_logits, &logits, 1e-4);

    // Generation: the prompt in one pass, then a pass per token on the KV cache; greedy, so the
    // same tokens and the same streamed text as the CPU's.
    let (mut cpu_text, mut gpu_text) = (String::new(), String::new());
    let cpu_tokens = model
        .generate(&prompt, 6, Sampling::default(), |p| {
            cpu_text.push_str(p);
            true
        })
        .unwrap();
    let t = std::time::Instant::now();
    let gpu_tokens = block_on(gpu_llama.generate(model, &prompt, 6, Sampling::default(), |p| {
        gpu_text.push_str(p);
        true
    }))
    .unwrap();
    eprintln!("GPU generation of {} tokens: {:.2?}: {gpu_text:?}", gpu_tokens.len(), t.elapsed());
    assert_eq!(gpu_tokens, cpu_tokens, "GPU text {gpu_text:?}, CPU text {cpu_text:?}");
    assert_eq!(gpu_text, cpu_text);
    assert!(gpu_text.starts_with(" Paris") && gpu_tokens.len() == 6, "{gpu_text:?}");
}

/// Decoding one position at a time across the KV cache's growth (128 rows, then 256: every
/// workspace is rebuilt on the new buffers) gives the logits of one pass over all the positions.
#[test]
fn decoding_across_cache_growth_matches_one_pass() {
    let Some((model, mut gpu_llama)) = gpu_model() else { return };
    let mut ids = model.tokenizer.encode(&"The capital of France is Paris, and its river is the Seine. ".repeat(12)).unwrap();
    assert!(ids.len() >= 132, "{} tokens", ids.len());
    ids.truncate(132);
    let d = model.llama.config.hidden;
    let x = model.llama.embed_tokens(&ids).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
    // 120 positions in one pass (a cache of 128 rows), then one row a pass up to 132.
    let mut stepped = block_on(gpu_llama.logits_at(&x[..120 * d], 0)).unwrap();
    for p in 120..132 {
        stepped = block_on(gpu_llama.logits_at(&x[p * d..(p + 1) * d], p)).unwrap();
    }
    let whole = block_on(gpu_llama.logits_at(&x, 0)).unwrap();
    check("logits at 132 positions, decoded one by one from 120 vs one pass", &stepped, &whole, 1e-4);
}

/// Predictions through the GPU forward pass against the CPU's (same prompts, read-out and head;
/// the shared prefix run once, its keys and values kept in the GPU's KV cache): within 1e-4 of
/// the value's scale; a bad input gets the CPU path's own error. Then the device
/// is destroyed (as when a driver resets): the next call fails with a clear error instead of
/// panicking, so the caller can finish on the CPU.
#[test]
fn predictions_match_cpu_and_a_lost_device_is_an_error() {
    let Some((model, mut gpu_llama)) = gpu_model() else { return };
    // The shipped tags: trained heads that read the last state and the input's mean state.
    let (lib, _) = tagllm::tags::TagLibrary::load_dir(&common::repo_root().join("tags"), &model.identity).unwrap();
    for tag in ["QED", "LogP"] {
        let predictor = Predictor::new(model, &lib, tag).unwrap();
        let items: Vec<Vec<String>> =
            ["CCO", "c1ccccc1O", "C1CC1(", "CC(=O)Nc1ccc(O)cc1"].iter().map(|s| vec![s.to_string()]).collect();
        let cpu = predictor.predict(&items);
        let got = predictor.predict_gpu_blocking(&mut gpu_llama, &items).unwrap();
        for (i, (g, c)) in got.iter().zip(&cpu).enumerate() {
            match (g, c) {
                (Ok(g), Ok(c)) => {
                    eprintln!("{tag} {:?}: gpu {g:.6} cpu {c:.6}", items[i][0]);
                    assert!((g - c).abs() <= 1e-4 * (1.0 + c.abs()), "{tag} item {i}: gpu {g} vs cpu {c}");
                }
                (Err(g), Err(c)) => assert_eq!(g, c),
                _ => panic!("{tag} item {i}: gpu {g:?} vs cpu {c:?}"),
            }
        }
        assert!(cpu[2].is_err(), "the unbalanced ring is refused");
    }
    // Two inputs, one protein: the protein runs once (its keys and values stay in the GPU's KV
    // cache); both ligands then run in one padded pass, and sub-batches of one (reusing the
    // protein) give the very same bits.
    let protein = "MKTAYIAKQRQISFVKSHFSRQLEERLGLIEVQAPILSRVGDGTQDNLSGAEKAVQVKVKALPDAQ";
    let predictor = Predictor::new(model, &lib, "BindingAffinity").unwrap();
    let items: Vec<Vec<String>> = ["CCO", "CC(=O)Nc1ccc(O)cc1"].iter().map(|s| vec![protein.to_string(), s.to_string()]).collect();
    let cpu = predictor.predict(&items);
    let got = predictor.predict_gpu_blocking(&mut gpu_llama, &items).unwrap();
    let one_by_one: Vec<_> =
        items.iter().flat_map(|it| predictor.predict_gpu_blocking(&mut gpu_llama, std::slice::from_ref(it)).unwrap()).collect();
    for ((g, c), o) in got.iter().zip(&cpu).zip(&one_by_one) {
        let (g, c, o) = (*g.as_ref().unwrap(), *c.as_ref().unwrap(), *o.as_ref().unwrap());
        eprintln!("BindingAffinity: gpu {g:.6} cpu {c:.6}");
        assert!((g - c).abs() <= 1e-4 * (1.0 + c.abs()), "gpu {g} vs cpu {c}");
        assert_eq!(g, o, "sub-batches of one differ from one call");
    }

    let predictor = Predictor::new(model, &lib, "QED").unwrap();
    gpu_llama.gpu().lose_device();
    let err = predictor.predict_gpu_blocking(&mut gpu_llama, &[vec!["CCO".to_string()]]).unwrap_err().to_string();
    eprintln!("after the device was destroyed: {err}");
    assert!(err.contains("GPU"), "{err}");
}
