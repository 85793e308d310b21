//! The benchmark view's measurements (`?bench`, `src/app/ui/bench.rs`), run in the inference
//! worker on the loaded model: the same functions as `tagllm bench` ([`crate::bench`]), timed with
//! the worker's `performance.now()`, plus the size of the worker's wasm memory.

use serde_json::json;
use wasm_bindgen::JsCast;
use web_sys::WorkerGlobalScope;

use super::{send, status, STATE};
use crate::app::protocol::FromWorker;
use crate::bench;
use crate::predict::Predictor;

/// Milliseconds from the worker's clock (`performance.now()`; `Date.now()` if it has none).
fn now() -> f64 {
    js_sys::global()
        .unchecked_into::<WorkerGlobalScope>()
        .performance()
        .map(|p| p.now())
        .unwrap_or_else(js_sys::Date::now)
}

/// Bytes of this worker's WebAssembly memory: it only grows, so this is its peak so far.
pub fn wasm_memory_bytes() -> f64 {
    let memory: js_sys::WebAssembly::Memory = wasm_bindgen::memory().unchecked_into();
    memory.buffer().unchecked_into::<js_sys::ArrayBuffer>().byte_length() as f64
}

/// Runs the benchmark and answers with [`FromWorker::BenchReport`]: the CPU figures, then the
/// GPU's when the model is on a GPU (`gpu`: adapter, prefill, decode, molecules/s).
pub async fn run(molecules: usize, tag: &str, kernels: bool, prefill: &[usize], decode_tokens: usize) {
    let mut report = measure(molecules, tag, kernels, prefill, decode_tokens);
    if let Ok(r) = &mut report {
        r["gpu"] = match gpu_figures(molecules, tag, prefill, decode_tokens).await {
            Ok(Some(g)) => g,
            Ok(None) => json!(null),
            Err(e) => json!({ "error": e }),
        };
        r["backend_in_use"] = json!(STATE.with(|s| s.borrow().backend.clone()));
    }
    let (report, error) = match report {
        Ok(r) => (Some(r), None),
        Err(e) => (None, Some(e)),
    };
    send(&FromWorker::BenchReport { report, error });
}

/// The GPU's figures, when the model is on one: prefill at each of `prefill` tokens (after a
/// warm-up pass at that length), decoding (at most 8 tokens on a software adapter) and `tag` over the first `molecules` benchmark SMILES, as the page
/// predicts on the GPU (the shared prefix once, the inputs 8 per pass).
#[cfg(feature = "gpu")]
async fn gpu_figures(molecules: usize, tag: &str, prefill: &[usize], decode_tokens: usize) -> Result<Option<serde_json::Value>, String> {
    let Some(mut gpu) = STATE.with(|s| s.borrow_mut().gpu.take()) else { return Ok(None) };
    let result = gpu_measure(&mut gpu, molecules, tag, prefill, decode_tokens).await.map_err(|e| e.to_string());
    STATE.with(|s| s.borrow_mut().gpu = Some(gpu));
    result.map(Some)
}

#[cfg(feature = "gpu")]
async fn gpu_measure(
    gpu: &mut crate::gpu::GpuLlama,
    molecules: usize,
    tag: &str,
    prefill: &[usize],
    decode_tokens: usize,
) -> crate::Result<serde_json::Value> {
    let (model, lib) = STATE.with(|s| {
        let s = s.borrow();
        (s.model.clone(), s.library.clone())
    });
    let model = model.ok_or_else(|| crate::Error::Usage("the model is not loaded".into()))?;
    let mut figures = Vec::new();
    for &n in prefill {
        status(format!("Benchmark (GPU): prefill of {n} tokens…"));
        figures.push(bench::gpu_prefill(&model, gpu, n, 1, &now).await?);
    }
    // A software adapter (SwiftShader) takes seconds a pass: fewer steps there.
    let decode_tokens = if gpu.gpu().is_software() { decode_tokens.min(8) } else { decode_tokens };
    status(format!("Benchmark (GPU): decoding {decode_tokens} tokens…"));
    let decode = bench::gpu_decode(&model, gpu, decode_tokens, &now).await?;
    let predictor = Predictor::new(&model, &lib, tag)?;
    status(format!("Benchmark (GPU): <{tag}> over {molecules} molecules…"));
    let (count, failed, per_s) = bench::gpu_molecules(&predictor, gpu, molecules, &now).await?;
    Ok(json!({
        "adapter": gpu.gpu().describe(),
        "prefill": figures,
        "decode_tokens": decode_tokens,
        "decode_tokens_per_s": decode,
        "molecules": count,
        "molecules_failed": failed,
        "molecules_per_s": per_s,
    }))
}

#[cfg(not(feature = "gpu"))]
async fn gpu_figures(_molecules: usize, _tag: &str, _prefill: &[usize], _decode_tokens: usize) -> Result<Option<serde_json::Value>, String> {
    Ok(None)
}

fn measure(molecules: usize, tag: &str, kernels: bool, prefill: &[usize], decode_tokens: usize) -> Result<serde_json::Value, String> {
    let (model, lib) = STATE.with(|s| {
        let s = s.borrow();
        (s.model.clone(), s.library.clone())
    });
    let model = model.ok_or("the model is not loaded")?;
    let err = |e: crate::Error| e.to_string();
    let memory_loaded = wasm_memory_bytes();
    let kernel_figures = if kernels {
        status("Benchmark: matrix products…");
        bench::kernels(&model, &[1, 64], &now).map_err(err)?
    } else {
        vec![]
    };
    // The prompts' token ids and their text (wllama takes text only: its harness checks that its
    // tokenizer makes the same number of tokens of it).
    let mut prompt_tokens = serde_json::Map::new();
    let mut prompt_texts = serde_json::Map::new();
    let mut remember = |name: String, n: usize| -> Result<(), String> {
        let ids = bench::tokens(&model, n).map_err(err)?;
        prompt_texts.insert(name.clone(), json!(model.tokenizer.decode(&ids).map_err(err)?));
        prompt_tokens.insert(name, json!(ids));
        Ok(())
    };
    let mut prefill_figures = Vec::new();
    for &n in prefill {
        status(format!("Benchmark: prefill of {n} tokens…"));
        prefill_figures.push(bench::prefill(&model, n, &now).map_err(err)?);
        remember(format!("prefill_{n}"), n)?;
    }
    status(format!("Benchmark: decoding {decode_tokens} tokens…"));
    let decode_tokens_per_s = bench::decode(&model, decode_tokens, &now).map_err(err)?;
    remember("decode_16".into(), 16)?;
    // The molecules figure needs the function tag (the page ships tags/QED).
    let smiles = bench::bench_smiles(molecules);
    let (molecules_per_s, molecules_error) = match Predictor::new(&model, &lib, tag) {
        Ok(predictor) => {
            status(format!("Benchmark: <{tag}> over {} molecules…", smiles.len()));
            (Some(bench::molecules(&predictor, &smiles, &now).map_err(err)?), None)
        }
        Err(e) => (None, Some(format!("no <{tag}> tag loaded: {e}"))),
    };
    Ok(json!({
        "backend": "cpu",
        "backend_name": "CPU (WebAssembly, SIMD)",
        "threads": 1,
        "kernels": kernel_figures,
        "prefill": prefill_figures,
        "decode_tokens": decode_tokens,
        "decode_tokens_per_s": decode_tokens_per_s,
        "molecules": smiles.len(),
        "molecules_tag": tag,
        "molecules_per_s": molecules_per_s,
        "molecules_error": molecules_error,
        "wasm_memory_mb_after_load": memory_loaded / 1e6,
        "wasm_memory_mb": wasm_memory_bytes() / 1e6,
        "prompt_tokens": prompt_tokens,
        "prompt_texts": prompt_texts,
    }))
}
