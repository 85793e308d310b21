//! Benchmarks that print numbers: the same code runs natively (`tagllm bench`) and in the page,
//! so figures from any machine or browser compare. Timing comes from the caller (`now` in
//! milliseconds: `Instant` natively, `performance.now()` in a browser), as wasm has no clock of
//! its own.

use candle_core::{DType, Device, IndexOp, Tensor};
use serde::Serialize;

use crate::error::Result;
#[cfg(feature = "gpu")]
use crate::gpu::GpuLlama;
use crate::model::int8::Int8Linear;
use crate::model::{KvCache, Mode, Model, Segment, Weights};
use crate::predict::Predictor;

/// One matrix product of the model's shapes.
#[derive(Debug, Clone, Serialize)]
pub struct KernelFigure {
    pub name: String,
    /// `[m, k] × [k, n]`.
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub ms: f64,
    pub gflops: f64,
    /// Bytes of the weight and activations read and written, per second.
    pub gb_per_s: f64,
}

/// Tokens per second of one forward pass over a prompt of `tokens` tokens.
#[derive(Debug, Clone, Serialize)]
pub struct PrefillFigure {
    pub tokens: usize,
    pub ms: f64,
    pub tokens_per_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub backend: String,
    /// How the weights are held: `f32`, `quantized` or `int8` (integer kernels).
    pub weights: String,
    pub kernels: Vec<KernelFigure>,
    pub prefill: Vec<PrefillFigure>,
    /// Greedy decoding after a short prompt, one token per forward pass, KV cache on.
    pub decode_tokens: usize,
    pub decode_tokens_per_s: f64,
    /// A function tag over a list of molecules through the real Predictor (prefix reuse,
    /// batching), end to end from SMILES text to numbers.
    pub molecules: usize,
    pub molecules_tag: String,
    pub molecules_per_s: f64,
}

/// Median of `reps` timings of `f` (after one warm-up call), in ms.
fn time_ms(now: &dyn Fn() -> f64, reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let t = now();
        f()?;
        times.push(now() - t);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// The model's matrix products at `rows` rows (1 = decoding, 64 = a prefill chunk), as the
/// model runs them: an f32 matmul, or with [`Weights::Int8`] the integer kernels and with
/// [`Weights::Compact`] the panel-by-panel f32 product over Q4_1 weights (random ones, quantised
/// like the file's).
pub fn kernels(model: &Model, rows: &[usize], now: &dyn Fn() -> f64) -> Result<Vec<KernelFigure>> {
    let weights = model.llama.weights();
    let int8 = matches!(weights, Weights::Int8 | Weights::Int16);
    let c = &model.llama.config;
    let shapes = [
        ("attn q/o", c.hidden, c.hidden),
        ("attn k/v", c.hidden, c.n_kv_head * c.head_dim),
        ("mlp gate/up", c.hidden, c.ffn),
        ("mlp down", c.ffn, c.hidden),
    ];
    let mut out = Vec::new();
    for &m in rows {
        for (name, k, n) in shapes {
            let a = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu)?;
            let w = Tensor::randn(0f32, 0.02, (k, n), &Device::Cpu)?;
            // The file's blocks: random weights quantised like the file's, timed through `forward`.
            let q4_1 = || candle_core::quantized::QTensor::quantize(&w.t()?.contiguous()?, candle_core::quantized::GgmlDType::Q4_1);
            let timed = |forward: &dyn Fn() -> candle_core::Result<Tensor>| {
                time_ms(now, 5, || {
                    forward()?;
                    Ok(())
                })
            };
            let (ms, weight_bytes) = if int8 {
                let lin = Int8Linear::from_qtensor(&q4_1()?)?.with_wide_inputs(weights == Weights::Int16);
                (timed(&|| lin.forward(&a))?, lin.size_in_bytes() as f64)
            } else if weights == Weights::Compact {
                let lin = crate::model::compact::CompactLinear::new(std::sync::Arc::new(q4_1()?))?;
                (timed(&|| lin.forward(&a))?, lin.size_in_bytes() as f64)
            } else if weights == Weights::Amx {
                amx_kernel(&a, &w, now)?
            } else {
                let ms = time_ms(now, 5, || {
                    a.matmul(&w)?;
                    Ok(())
                })?;
                (ms, 4.0 * (k * n) as f64)
            };
            let flops = 2.0 * (m * k * n) as f64;
            let bytes = weight_bytes + 4.0 * (m * k + m * n) as f64;
            out.push(KernelFigure {
                name: format!("{name} ({m} rows)"),
                m,
                k,
                n,
                ms,
                gflops: flops / ms / 1e6,
                gb_per_s: bytes / ms / 1e6,
            });
        }
    }
    Ok(out)
}

/// The AMX product of `a` (`[m, k]`) and `w` (`[k, n]`): its median time and weight bytes.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn amx_kernel(a: &Tensor, w: &Tensor, now: &dyn Fn() -> f64) -> Result<(f64, f64)> {
    let (k, n) = w.dims2()?;
    let values: Vec<f32> = w.t()?.contiguous()?.flatten_all()?.to_vec1()?;
    let lin = crate::model::amx::AmxLinear::new(&values, n, k)
        .ok_or_else(|| crate::error::Error::Usage(format!("a [{n}, {k}] matrix does not tile for AMX")))?;
    let ms = time_ms(now, 5, || {
        lin.forward(a)?;
        Ok(())
    })?;
    Ok((ms, lin.size_in_bytes() as f64))
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn amx_kernel(_: &Tensor, _: &Tensor, _: &dyn Fn() -> f64) -> Result<(f64, f64)> {
    Err(crate::error::Error::Usage("AMX products need x86-64 Linux".into()))
}

/// A prompt of exactly `n` tokens: a SMILES-like text repeated and cut (the page's benchmark
/// hands the text of these ids to the wllama harness, which checks it makes `n` tokens of it).
pub fn tokens(model: &Model, n: usize) -> Result<Vec<u32>> {
    let text = "# # Input: The SMILES of the molecule is CC(=O)Oc1ccccc1C(=O)O. ".repeat(n / 8 + 2);
    let mut ids = model.tokenizer.encode(&text)?;
    ids.truncate(n);
    Ok(ids)
}

pub fn prefill(model: &Model, n: usize, now: &dyn Fn() -> f64) -> Result<PrefillFigure> {
    let ids = tokens(model, n)?;
    let x = model.llama.embed(&[Segment::Tokens(ids)])?.unsqueeze(0)?;
    let ms = time_ms(now, 3, || {
        model.llama.forward(&x, &mut KvCache::new(), Mode::Infer)?;
        Ok(())
    })?;
    Ok(PrefillFigure { tokens: n, ms, tokens_per_s: n as f64 * 1000.0 / ms })
}

/// Decoding speed: `n` single-token steps with the KV cache after a 16-token prompt, each with
/// the logits over the vocabulary (as generation needs).
pub fn decode(model: &Model, n: usize, now: &dyn Fn() -> f64) -> Result<f64> {
    let ids = tokens(model, 16)?;
    let mut cache = KvCache::new();
    let x = model.llama.embed(&[Segment::Tokens(ids)])?.unsqueeze(0)?;
    let h = model.llama.forward(&x, &mut cache, Mode::Infer)?;
    let mut logits = model.llama.logits(&h.i((0, h.dim(1)? - 1))?)?;
    let t = now();
    for _ in 0..n {
        let next = logits.argmax(0)?.to_dtype(DType::U32)?.to_scalar::<u32>()?;
        let x = model.llama.embed_tokens(&[next])?.unsqueeze(0)?;
        let h = model.llama.forward(&x, &mut cache, Mode::Infer)?;
        logits = model.llama.logits(&h.i((0, 0))?)?;
    }
    Ok(n as f64 * 1000.0 / (now() - t))
}

/// Molecules per second through `predictor` (after a warm-up of a few molecules).
pub fn molecules(predictor: &Predictor, smiles: &[String], now: &dyn Fn() -> f64) -> Result<f64> {
    let items: Vec<Vec<String>> = smiles.iter().map(|s| vec![s.clone()]).collect();
    predictor.predict(&items[..items.len().min(4)]);
    let t = now();
    let out = predictor.predict(&items);
    let ms = now() - t;
    let ok = out.iter().filter(|r| r.is_ok()).count();
    Ok(ok as f64 * 1000.0 / ms)
}

/// 100 drug-like molecules (the first of the QED test split's MOSES scaffold part) for the
/// molecules-per-second figure everywhere, so that every benchmark runs the same prompts.
pub const BENCH_SMILES: &str = include_str!("../tests/fixtures/bench_smiles.txt");

/// The first `count` of [`BENCH_SMILES`].
pub fn bench_smiles(count: usize) -> Vec<String> {
    BENCH_SMILES.lines().filter(|l| !l.is_empty()).take(count).map(str::to_string).collect()
}

/// Prefill of `n` tokens on the GPU: a warm-up pass (it builds the buffers for that length), then
/// the median of `reps` passes, each timed from the upload of the embeddings to the read-back of
/// the states.
#[cfg(feature = "gpu")]
pub async fn gpu_prefill(model: &Model, gpu: &mut GpuLlama, n: usize, reps: usize, now: &dyn Fn() -> f64) -> Result<PrefillFigure> {
    let x = model.llama.embed(&[Segment::Tokens(tokens(model, n)?)])?.flatten_all()?.to_vec1::<f32>()?;
    gpu.forward(&x).await?;
    let mut times = Vec::new();
    for _ in 0..reps.max(1) {
        let t = now();
        gpu.forward(&x).await?;
        times.push(now() - t);
    }
    times.sort_by(f64::total_cmp);
    let ms = times[times.len() / 2];
    Ok(PrefillFigure { tokens: n, ms, tokens_per_s: n as f64 * 1000.0 / ms })
}

/// Decoding on the GPU: `n` single-token passes on the KV cache after a 16-token prompt, each
/// token picked greedily from the pass's read-back logits (the output head on the GPU, as
/// `GpuLlama::generate` does). Tokens/s, timed from the first token's pass.
#[cfg(feature = "gpu")]
pub async fn gpu_decode(model: &Model, gpu: &mut GpuLlama, n: usize, now: &dyn Fn() -> f64) -> Result<f64> {
    let ids = tokens(model, 16)?;
    let x = model.llama.embed(&[Segment::Tokens(ids.clone())])?.flatten_all()?.to_vec1::<f32>()?;
    let mut logits = gpu.logits_at(&x, 0).await?;
    let t = now();
    for step in 0..n {
        let next = (0..logits.len()).max_by(|&a, &b| logits[a].total_cmp(&logits[b])).unwrap_or(0) as u32;
        let x = model.llama.embed_tokens(&[next])?.flatten_all()?.to_vec1::<f32>()?;
        logits = gpu.logits_at(&x, ids.len() + step).await?;
    }
    Ok(n as f64 * 1000.0 / (now() - t))
}

/// `predictor` over the first `count` benchmark SMILES on the GPU, as predictions run there
/// (after one warm-up molecule): (molecules, failed, molecules/s).
#[cfg(feature = "gpu")]
pub async fn gpu_molecules(predictor: &Predictor<'_>, gpu: &mut GpuLlama, count: usize, now: &dyn Fn() -> f64) -> Result<(usize, usize, f64)> {
    let items: Vec<Vec<String>> = bench_smiles(count).into_iter().map(|s| vec![s]).collect();
    predictor.predict_gpu(gpu, &items[..items.len().min(1)]).await?;
    let t = now();
    let failed = predictor.predict_gpu(gpu, &items).await?.iter().filter(|r| r.is_err()).count();
    Ok((items.len(), failed, items.len() as f64 * 1000.0 / (now() - t)))
}

/// The whole benchmark: kernels, prefill at ~50 and 512 tokens, decoding, and `tag` over
/// [`BENCH_SMILES`].
pub fn run(model: &Model, predictor: &Predictor, backend: &str, now: &dyn Fn() -> f64) -> Result<BenchReport> {
    let smiles = bench_smiles(usize::MAX);
    let decode_tokens = 32;
    Ok(BenchReport {
        backend: backend.to_string(),
        weights: model.llama.weights().name().to_string(),
        kernels: kernels(model, &[1, 64], now)?,
        prefill: vec![prefill(model, 50, now)?, prefill(model, 512, now)?],
        decode_tokens,
        decode_tokens_per_s: decode(model, decode_tokens, now)?,
        molecules: smiles.len(),
        molecules_tag: predictor.tag().meta.name.clone(),
        molecules_per_s: molecules(predictor, &smiles, now)?,
    })
}

/// Training speed: AdamW steps of a function tag over the benchmark SMILES.
#[derive(Debug, Clone, Serialize)]
pub struct TrainingFigure {
    pub tag: String,
    pub examples: usize,
    pub batch: usize,
    pub examples_per_s: f64,
}

/// `tag` trained for one pass over the first `count` benchmark SMILES in batches of `batch`
/// (after one warm-up step), as `tagllm train function` steps: the loss with its gradients and
/// the AdamW update. `model` must hold f32 weights (training's). The targets only need to be
/// numbers for the loss: each molecule's length, which costs the same as a measured one.
#[cfg(not(target_arch = "wasm32"))]
pub fn training(model: &Model, library: &crate::tags::TagLibrary, tag: &str, count: usize, batch: usize, now: &dyn Fn() -> f64) -> Result<TrainingFigure> {
    use crate::train::{Example, Objective, Params};
    let t = library.get(tag)?;
    let examples: Vec<Example> = bench_smiles(count).into_iter().map(|s| Example { target: s.len() as f64, inputs: vec![s] }).collect();
    let obj = Objective::new(model, library, tag, &examples, 40.0, 20.0)?;
    let mut params = Params::new(&t.vectors, t.meta.head_width(), 0.0)?;
    let rows: Vec<usize> = (0..obj.examples().len()).collect();
    let batches: Vec<&[usize]> = rows.chunks(batch.max(1)).collect();
    let mut step = |b: &[usize]| -> Result<()> {
        let (_, grads, _, _) = obj.loss_and_grads(b, &params)?;
        params.step(&grads, 1e-5, 0.0, 1.0)?;
        Ok(())
    };
    step(batches[0])?;
    let start = now();
    for b in &batches {
        step(b)?;
    }
    Ok(TrainingFigure { tag: tag.to_string(), examples: rows.len(), batch, examples_per_s: rows.len() as f64 * 1000.0 / (now() - start) })
}
