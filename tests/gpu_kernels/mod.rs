//! Every WGSL kernel against a CPU reference on random inputs, shared by the native parity tests
//! (`tests/gpu_parity.rs`, on Vulkan/lavapipe) and the browser's (`tests/gpu_web.rs`, WebGPU on
//! SwiftShader in headless Chromium). Each case is async (a browser cannot block on the GPU) and
//! panics when a result is outside its bound.
//!
//! Error measure everywhere: max |gpu − cpu| / max |cpu| over the whole output.
#![allow(dead_code)]

use candle_core::quantized::{ggml_file::qtensor_from_ggml, GgmlDType};
use candle_core::{Device, Tensor};
use tagllm::gpu::kernels::Quant;
use tagllm::gpu::Gpu;
use tagllm::rng::SplitMix64;

/// A line of the test's report.
pub fn say(line: &str) {
    #[cfg(target_arch = "wasm32")]
    wasm_bindgen_test::console_log!("{line}");
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("{line}");
}

/// Every kernel case, in order.
pub async fn all(gpu: &Gpu) {
    matmul_q4_1(gpu).await;
    matmul_q8_0(gpu).await;
    rmsnorm(gpu).await;
    rope(gpu).await;
    attention(gpu).await;
    silu_mul(gpu).await;
    add(gpu).await;
}

pub fn randn(rng: &mut SplitMix64, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.next_normal() as f32 * scale).collect()
}

/// max |a − b| / max |b|.
pub fn rel_err(gpu: &[f32], cpu: &[f32]) -> f32 {
    assert_eq!(gpu.len(), cpu.len());
    assert!(gpu.iter().all(|v| v.is_finite()), "the GPU result has non-finite values");
    let diff = gpu.iter().zip(cpu).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    let scale = cpu.iter().map(|v| v.abs()).fold(0f32, f32::max);
    diff / scale.max(f32::MIN_POSITIVE)
}

pub fn check(name: &str, gpu: &[f32], cpu: &[f32], bound: f32) {
    let err = rel_err(gpu, cpu);
    say(&format!("{name}: max |gpu - cpu| / max |cpu| = {err:.3e} (bound {bound:.0e})"));
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

async fn matmul_case(gpu: &Gpu, quant: Quant, seed: u64, shapes: &[(usize, usize, usize)], bound: f32) {
    let mut rng = SplitMix64(seed);
    for &(m, n, k) in shapes {
        let w = random_blocks(&mut rng, quant, n, k);
        let x = randn(&mut rng, m * k, 1.0);
        let got = gpu.run_matmul(quant, &w, &x, m, n, k).await.unwrap();
        let want = cpu_matmul(quant, &w, &x, m, n, k);
        check(&format!("{quant:?} matmul [{m}, {k}] x [{n}, {k}]^T"), &got, &want, bound);
    }
}

pub async fn matmul_q4_1(gpu: &Gpu) {
    // The model's shapes (q/o, k/v, gate/up, down) and ragged ones (m not a multiple of 8,
    // n not a multiple of 64); m = 1 runs the matrix–vector kernel (decoding).
    matmul_case(gpu, Quant::Q4_1, 1, &[(13, 576, 576), (5, 192, 576), (9, 1536, 576), (17, 576, 1536), (1, 100, 64), (1, 576, 1536)], 1e-5).await;
}

/// The one-row (matrix–vector) cases of both formats.
pub async fn matvec(gpu: &Gpu) {
    matmul_case(gpu, Quant::Q4_1, 3, &[(1, 576, 1536), (1, 1536, 576), (1, 100, 64)], 1e-5).await;
    matmul_case(gpu, Quant::Q8_0, 4, &[(1, 1000, 576), (1, 100, 64)], 1e-5).await;
}

pub async fn matmul_q8_0(gpu: &Gpu) {
    matmul_case(gpu, Quant::Q8_0, 2, &[(13, 576, 576), (3, 1000, 576), (1, 100, 64), (1, 1000, 576)], 1e-5).await;
}

pub async fn rmsnorm(gpu: &Gpu) {
    let mut rng = SplitMix64(3);
    let (rows, d, eps) = (7, 576, 1e-5f32);
    let x = randn(&mut rng, rows * d, 2.0);
    let w = randn(&mut rng, d, 1.0);
    let got = gpu.run_rmsnorm(&x, &w, eps).await.unwrap();
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

pub async fn rope(gpu: &Gpu) {
    let mut rng = SplitMix64(4);
    let (t, heads, hd, pos0) = (11, 9, 64, 5);
    let (cos, sin) = rope_tables(64, hd, 100_000.0);
    let x = randn(&mut rng, t * heads * hd, 1.0);
    let got = gpu.run_rope(&x, heads, hd, pos0, &cos, &sin).await.unwrap();
    // candle's interleaved rope (the CPU path's Mode::Infer) on [1, heads, t, hd].
    let dev = &Device::Cpu;
    let xt = Tensor::from_slice(&x, (1, t, heads, hd), dev).unwrap().transpose(1, 2).unwrap().contiguous().unwrap();
    let c = Tensor::from_slice(&cos, (64, hd / 2), dev).unwrap().narrow(0, pos0, t).unwrap();
    let s = Tensor::from_slice(&sin, (64, hd / 2), dev).unwrap().narrow(0, pos0, t).unwrap();
    let want = candle_nn::rotary_emb::rope_i(&xt, &c, &s).unwrap();
    let want: Vec<f32> = want.transpose(1, 2).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    check("rope", &got, &want, 1e-6);
}

pub async fn attention(gpu: &Gpu) {
    let mut rng = SplitMix64(5);
    // 150 tokens: three key chunks of 64, the last one partial; 20 queries after 100 cached
    // positions (the KV cache of a shared prompt prefix); three sequences of 12 rows after the same
    // 100 (a batch of inputs: each sees the shared rows, then only its own).
    for (t, past, seq) in [(150, 0, 150), (20, 100, 20), (36, 100, 12)] {
        let (heads, kv, hd) = (9, 3, 64);
        let q = randn(&mut rng, t * heads * hd, 1.0);
        let k = randn(&mut rng, (past + t) * kv * hd, 1.0);
        let v = randn(&mut rng, (past + t) * kv * hd, 1.0);
        let got = gpu.run_attention(&q, &k, &v, heads, kv, past, seq).await.unwrap();
        // Plain causal softmax attention in f64.
        let mut want = vec![0f32; t * heads * hd];
        let scale = 1.0 / (hd as f64).sqrt();
        for i in 0..t {
            for h in 0..heads {
                let g = h / (heads / kv);
                let qi = &q[(i * heads + h) * hd..][..hd];
                // The shared rows, then this sequence's rows up to this one.
                let own = (i / seq) * seq;
                let key_rows: Vec<usize> = (0..past).chain(past + own..=past + i).collect();
                let scores: Vec<f64> = key_rows
                    .iter()
                    .map(|&j| {
                        let kj = &k[(j * kv + g) * hd..][..hd];
                        qi.iter().zip(kj).map(|(a, b)| *a as f64 * *b as f64).sum::<f64>() * scale
                    })
                    .collect();
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = e.iter().sum();
                for d in 0..hd {
                    let y: f64 = key_rows.iter().zip(&e).map(|(&j, e)| e * v[(j * kv + g) * hd + d] as f64).sum::<f64>() / sum;
                    want[(i * heads + h) * hd + d] = y as f32;
                }
            }
        }
        check(&format!("attention, {t} query rows (sequences of {seq}) after {past} cached positions"), &got, &want, 1e-5);
    }
}

pub async fn silu_mul(gpu: &Gpu) {
    let mut rng = SplitMix64(6);
    let n = 3 * 1536 + 7;
    let gate = randn(&mut rng, n, 3.0);
    let up = randn(&mut rng, n, 1.0);
    let got = gpu.run_silu_mul(&gate, &up).await.unwrap();
    let g = Tensor::from_slice(&gate, n, &Device::Cpu).unwrap();
    let u = Tensor::from_slice(&up, n, &Device::Cpu).unwrap();
    let want: Vec<f32> = (candle_nn::ops::silu(&g).unwrap() * u).unwrap().to_vec1().unwrap();
    check("silu_mul", &got, &want, 1e-6);
}

pub async fn add(gpu: &Gpu) {
    let mut rng = SplitMix64(7);
    let n = 5 * 576 + 3;
    let h = randn(&mut rng, n, 1.0);
    let y = randn(&mut rng, n, 1.0);
    let got = gpu.run_add(&h, &y).await.unwrap();
    let want: Vec<f32> = h.iter().zip(&y).map(|(a, b)| a + b).collect();
    check("add", &got, &want, 1e-7);
}

