//! The WebGPU backend against the CPU path: every kernel on random inputs against a CPU
//! reference, then the whole model on a real QED prompt (tags spliced in) against
//! `Llama::forward` with f32-expanded weights.
//!
//! Run with `cargo test --features gpu --test gpu_parity`. Without any GPU adapter (natively:
//! no Vulkan driver; `apt-get install mesa-vulkan-drivers` gives the software one, lavapipe) the
//! tests fail, unless `TAGLLM_GPU_TESTS=skip` is set.
//!
//! Error measure everywhere: max |gpu − cpu| / max |cpu| over the whole output.
#![cfg(feature = "gpu")]

mod common;

use std::sync::OnceLock;

use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType};
use candle_core::{Device, IndexOp, Tensor};
use tagllm::gpu::kernels::Quant;
use tagllm::gpu::{Gpu, GpuLlama};
use tagllm::model::{GgufFile, KvCache, Mode, Segment};
use tagllm::predict::Predictor;
use tagllm::rng::SplitMix64;

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

/// One device shared by the kernel tests.
fn gpu() -> Option<&'static Gpu> {
    static GPU: OnceLock<Option<Gpu>> = OnceLock::new();
    GPU.get_or_init(new_gpu).as_ref()
}

fn randn(rng: &mut SplitMix64, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.next_normal() as f32 * scale).collect()
}

/// max |a − b| / max |b|.
fn rel_err(gpu: &[f32], cpu: &[f32]) -> f32 {
    assert_eq!(gpu.len(), cpu.len());
    assert!(gpu.iter().all(|v| v.is_finite()), "the GPU result has non-finite values");
    let diff = gpu.iter().zip(cpu).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    let scale = cpu.iter().map(|v| v.abs()).fold(0f32, f32::max);
    diff / scale.max(f32::MIN_POSITIVE)
}

fn check(name: &str, gpu: &[f32], cpu: &[f32], bound: f32) {
    let err = rel_err(gpu, cpu);
    eprintln!("{name}: max |gpu - cpu| / max |cpu| = {err:.3e} (bound {bound:.0e})");
    assert!(err < bound, "{name}: relative error {err:.3e} exceeds {bound:.0e}");
}

/// Random GGUF blocks of `quant` for an `[n, k]` matrix: random codes, scales of realistic size.
fn random_blocks(rng: &mut SplitMix64, quant: Quant, n: usize, k: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * k / 32 * quant.block_bytes());
    for _ in 0..n * k / 32 {
        let d = half::f16::from_f32(0.002 + 0.01 * rng.next_f64() as f32);
        out.extend_from_slice(&d.to_le_bytes());
        if quant == Quant::Q4_1 {
            let m = half::f16::from_f32(-0.08 * rng.next_f64() as f32);
            out.extend_from_slice(&m.to_le_bytes());
        }
        let codes = if quant == Quant::Q4_1 { 16 } else { 32 };
        out.extend((0..codes).map(|_| rng.next_u64() as u8));
    }
    assert_eq!(out.len(), n * k / 32 * quant.block_bytes());
    out
}

/// x · Wᵀ on the CPU, W read by candle from the same bytes (what the CPU path does).
fn cpu_matmul(quant: Quant, w: &[u8], x: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    let dtype = match quant {
        Quant::Q4_1 => GgmlDType::Q4_1,
        Quant::Q8_0 => GgmlDType::Q8_0,
    };
    let w = qtensor_from_ggml(dtype, w, vec![n, k], &Device::Cpu).unwrap().dequantize(&Device::Cpu).unwrap();
    assert_eq!(w.dims(), [n, k]);
    let x = Tensor::from_slice(x, (m, k), &Device::Cpu).unwrap();
    x.matmul(&w.t().unwrap()).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

fn matmul_case(quant: Quant, seed: u64, shapes: &[(usize, usize, usize)], bound: f32) {
    let Some(gpu) = gpu() else { return };
    let mut rng = SplitMix64(seed);
    for &(m, n, k) in shapes {
        let w = random_blocks(&mut rng, quant, n, k);
        let x = randn(&mut rng, m * k, 1.0);
        let got = gpu.run_matmul(quant, &w, &x, m, n, k).unwrap();
        let want = cpu_matmul(quant, &w, &x, m, n, k);
        check(&format!("{quant:?} matmul [{m}, {k}] x [{n}, {k}]^T"), &got, &want, bound);
    }
}

#[test]
fn matmul_q4_1_matches_cpu() {
    // The model's shapes (q/o, k/v, gate/up, down) and ragged ones (m not a multiple of 8,
    // n not a multiple of 64).
    matmul_case(Quant::Q4_1, 1, &[(13, 576, 576), (5, 192, 576), (9, 1536, 576), (17, 576, 1536), (1, 100, 64)], 1e-5);
}

#[test]
fn matmul_q8_0_matches_cpu() {
    matmul_case(Quant::Q8_0, 2, &[(13, 576, 576), (3, 1000, 576), (1, 100, 64)], 1e-5);
}

#[test]
fn rmsnorm_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut rng = SplitMix64(3);
    let (rows, d, eps) = (7, 576, 1e-5f32);
    let x = randn(&mut rng, rows * d, 2.0);
    let w = randn(&mut rng, d, 1.0);
    let got = gpu.run_rmsnorm(&x, &w, eps).unwrap();
    let xt = Tensor::from_slice(&x, (rows, d), &Device::Cpu).unwrap();
    let wt = Tensor::from_slice(&w, d, &Device::Cpu).unwrap();
    let want: Vec<f32> = candle_nn::ops::rms_norm(&xt, &wt, eps).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    check("rmsnorm", &got, &want, 1e-6);
}

/// The CPU path's tables (`rope_tables` in src/model/llama.rs), for `positions` positions.
fn rope_tables(positions: usize, head_dim: usize, base: f32) -> (Vec<f32>, Vec<f32>) {
    let half = head_dim / 2;
    let inv: Vec<f32> = (0..half).map(|i| 1.0 / base.powf(2.0 * i as f32 / head_dim as f32)).collect();
    let angles: Vec<f32> = (0..positions).flat_map(|p| inv.iter().map(move |f| p as f32 * f)).collect();
    (angles.iter().map(|a| a.cos()).collect(), angles.iter().map(|a| a.sin()).collect())
}

#[test]
fn rope_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut rng = SplitMix64(4);
    let (t, heads, hd, pos0) = (11, 9, 64, 5);
    let (cos, sin) = rope_tables(64, hd, 100_000.0);
    let x = randn(&mut rng, t * heads * hd, 1.0);
    let got = gpu.run_rope(&x, heads, hd, pos0, &cos, &sin).unwrap();
    // candle's interleaved rope (the CPU path's Mode::Infer) on [1, heads, t, hd].
    let dev = &Device::Cpu;
    let xt = Tensor::from_slice(&x, (1, t, heads, hd), dev).unwrap().transpose(1, 2).unwrap().contiguous().unwrap();
    let c = Tensor::from_slice(&cos, (64, hd / 2), dev).unwrap().narrow(0, pos0, t).unwrap();
    let s = Tensor::from_slice(&sin, (64, hd / 2), dev).unwrap().narrow(0, pos0, t).unwrap();
    let want = candle_nn::rotary_emb::rope_i(&xt, &c, &s).unwrap();
    let want: Vec<f32> = want.transpose(1, 2).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    check("rope", &got, &want, 1e-6);
}

#[test]
fn attention_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut rng = SplitMix64(5);
    // 150 tokens: three key chunks of 64, the last one partial.
    let (t, heads, kv, hd) = (150, 9, 3, 64);
    let q = randn(&mut rng, t * heads * hd, 1.0);
    let k = randn(&mut rng, t * kv * hd, 1.0);
    let v = randn(&mut rng, t * kv * hd, 1.0);
    let got = gpu.run_attention(&q, &k, &v, heads, kv).unwrap();
    // Plain causal softmax attention in f64.
    let mut want = vec![0f32; t * heads * hd];
    let scale = 1.0 / (hd as f64).sqrt();
    for i in 0..t {
        for h in 0..heads {
            let g = h / (heads / kv);
            let qi = &q[(i * heads + h) * hd..][..hd];
            let scores: Vec<f64> = (0..=i)
                .map(|j| {
                    let kj = &k[(j * kv + g) * hd..][..hd];
                    qi.iter().zip(kj).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>() * scale
                })
                .collect();
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let sum: f64 = e.iter().sum();
            for d in 0..hd {
                let y: f64 = (0..=i).map(|j| e[j] * v[(j * kv + g) * hd + d] as f64).sum::<f64>() / sum;
                want[(i * heads + h) * hd + d] = y as f32;
            }
        }
    }
    check("attention", &got, &want, 1e-5);
}

#[test]
fn silu_mul_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut rng = SplitMix64(6);
    let n = 3 * 1536 + 7;
    let gate = randn(&mut rng, n, 3.0);
    let up = randn(&mut rng, n, 1.0);
    let got = gpu.run_silu_mul(&gate, &up).unwrap();
    let g = Tensor::from_slice(&gate, n, &Device::Cpu).unwrap();
    let u = Tensor::from_slice(&up, n, &Device::Cpu).unwrap();
    let want: Vec<f32> = (candle_nn::ops::silu(&g).unwrap() * u).unwrap().to_vec1().unwrap();
    check("silu_mul", &got, &want, 1e-6);
}

#[test]
fn add_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let mut rng = SplitMix64(7);
    let n = 5 * 576 + 3;
    let h = randn(&mut rng, n, 1.0);
    let y = randn(&mut rng, n, 1.0);
    let got = gpu.run_add(&h, &y).unwrap();
    let want: Vec<f32> = h.iter().zip(&y).map(|(a, b)| a + b).collect();
    check("add", &got, &want, 1e-7);
}

/// The whole model on a real QED prompt (SMILES domain tag and QED function tag spliced in),
/// against the CPU path with f32 weights; then a plain-text prompt whose next token is known.
#[test]
fn whole_model_matches_cpu_forward() {
    let Some(gpu) = new_gpu() else { return };
    let model = common::model();
    let file = GgufFile::open(&common::model_path()).unwrap();
    let t = std::time::Instant::now();
    let mut gpu_llama = GpuLlama::new(gpu, &file).unwrap();
    eprintln!("weights uploaded in {:.2?}", t.elapsed());

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
    let hidden = gpu_llama.hidden_states(&model.llama, &[Segment::Tokens(ids)]).unwrap();
    let logits: Vec<f32> = model.llama.logits(&hidden.i(4).unwrap()).unwrap().to_vec1().unwrap();
    let best = (0..logits.len()).max_by(|&a, &b| logits[a].total_cmp(&logits[b])).unwrap();
    assert_eq!(model.tokenizer.token_text(best as u32), " Paris", "logit {}", logits[best]);
}

/// Predictions through the GPU forward pass against the CPU's (same prompts, read-out and head):
/// within 1e-4 of the value's scale; a bad input gets the CPU path's own error. Then the device
/// is destroyed (as when a driver resets): the next call fails with a clear error instead of
/// panicking, so the caller can finish on the CPU.
#[test]
fn predictions_match_cpu_and_a_lost_device_is_an_error() {
    let Some(gpu) = new_gpu() else { return };
    let model = common::model();
    let file = GgufFile::open(&common::model_path()).unwrap();
    let mut gpu_llama = GpuLlama::new(gpu, &file).unwrap();
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
    let predictor = Predictor::new(model, &lib, "QED").unwrap();
    gpu_llama.gpu().lose_device();
    let err = predictor.predict_gpu_blocking(&mut gpu_llama, &[vec!["CCO".to_string()]]).unwrap_err().to_string();
    eprintln!("after the device was destroyed: {err}");
    assert!(err.contains("GPU"), "{err}");
}
