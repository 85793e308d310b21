//! The base language model: GGUF loading ([`gguf`]), the tokenizer rebuilt from its metadata
//! ([`tokenizer`]) and the forward pass that accepts spliced-in tag vectors ([`llama`]).

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub mod amx;
pub mod attention;
pub mod compact;
pub mod frozen;
pub mod fused;
pub mod gguf;
pub mod int8;
pub mod llama;
pub mod tokenizer;

pub use gguf::{Config, GgufFile, ModelIdentity, DEFAULT_MODEL_PATH, DEFAULT_MODEL_SHA256};
pub use llama::{KvCache, Llama, Mode, Segment};
pub use tokenizer::{TextTokenizer, TokenStream};

use candle_core::{DType, IndexOp, Tensor};

use crate::error::Result;
use crate::rng::SplitMix64;

/// A loaded model: weights, tokenizer and the identity that tag files are checked against.
pub struct Model {
    pub llama: Llama,
    pub tokenizer: TextTokenizer,
    pub identity: ModelIdentity,
}

/// How to pick the next token.
#[derive(Debug, Clone, Copy)]
pub struct Sampling {
    /// 0 means greedy.
    pub temperature: f64,
    pub top_p: f64,
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Self { temperature: 0.0, top_p: 0.95, seed: 42 }
    }
}

/// How the weight matrices are held in memory.
///
/// The file stores them as Q4_1. [`Weights::F32`] expands them once to f32 (the values are
/// exactly the quantised ones): ~540 MB, but prefill runs through a fast f32 GEMM, and the result
/// does not depend on how inputs are batched — the quantised kernels re-quantise activations to
/// 8 bits, which turns last-bit differences between batch shapes into visible (~2%) differences in
/// the hidden state. Training uses F32 too, so F32 predictions are exactly what a tag was trained
/// for. [`Weights::Quantized`] keeps ~100 MB and suits memory-tight places and decoding.
/// [`Weights::Int8`] keeps the file's blocks too (~70 MB) and runs integer products
/// ([`int8`]): each input row is quantised to 8 bits per block of 32 *on its own*, so results do
/// not depend on batching either; they differ from F32 by the activation rounding. Inference
/// only (training needs F32). [`Weights::Int16`] is Int8 with each input value quantised to 16
/// bits (two 8-bit parts, twice the integer products): batch-invariant as well, and within
/// ~1e-4 of F32 where 8 bits differ by percents. [`Weights::Amx`] holds the F32 values split
/// into two bf16 parts and multiplies them on the CPU's AMX tiles ([`amx`]; x86-64 Linux with
/// AMX, e.g. Xeon Sapphire Rapids): within ~1e-5 of F32, batch-invariant, same memory as F32.
/// Inference only. [`Weights::Compact`] keeps the file's blocks (~100 MB) and expands them to
/// f32 one panel at a time inside each product ([`compact`]): the same bits as F32 at a fifth of
/// its memory, for the cost of the expansion (small beside a product of many rows). Inference
/// only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    F32,
    Compact,
    Quantized,
    Int8,
    Int16,
    Amx,
}

impl Weights {
    /// The default for predictions: [`Weights::Amx`] where the CPU has AMX (within ~1e-5 of
    /// F32, ~2× its speed), else [`Weights::Compact`] (F32's very results at a fifth of its
    /// memory, as fast: `tagllm bench` on the AMD VM, 2 threads, QED 13.4–14.2 against 13.6
    /// molecules/s, 246–254 against 715 MB).
    pub fn best_f32() -> Self {
        if amx_available() {
            Weights::Amx
        } else {
            Weights::Compact
        }
    }

    /// What text generation uses by default: [`Weights::Int16`] where the CPU runs the integer
    /// kernels with SIMD (AVX-512 VNNI or AVX2), else [`Weights::best_f32`]. A decoding step is a
    /// one-row product that reads every weight once, so its speed is the speed of reading the
    /// weights: the file's blocks are ~0.6 bytes a weight, f32 (or AMX's two bf16 parts) 4. Text
    /// needs no f32-exact values; predictions do (their heads were trained on f32), so they keep
    /// [`Weights::best_f32`].
    pub fn for_generation() -> Self {
        if int8::KernelPath::best() == int8::KernelPath::Scalar {
            Self::best_f32()
        } else {
            Weights::Int16
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Weights::F32 => "f32",
            Weights::Compact => "compact",
            Weights::Quantized => "quantized",
            Weights::Int8 => "int8",
            Weights::Int16 => "int16",
            Weights::Amx => "amx",
        }
    }
}

/// Calls `f` with the values of an f32 CPU tensor, in place when it is contiguous.
pub(crate) fn with_f32_slice<R>(t: &candle_core::Tensor, f: impl FnOnce(&[f32]) -> R) -> candle_core::Result<R> {
    let t = t.to_dtype(candle_core::DType::F32)?.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    Ok(f(cpu_f32(&storage, layout)?))
}

/// The values of a contiguous f32 CPU tensor, from its storage and layout.
pub(crate) fn cpu_f32<'a>(storage: &'a candle_core::Storage, layout: &candle_core::Layout) -> candle_core::Result<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (candle_core::Storage::Cpu(cpu), Some((start, end))) => Ok(&cpu.as_slice::<f32>()?[start..end]),
        _ => candle_core::bail!("a contiguous f32 CPU tensor was expected"),
    }
}

/// Whether [`Weights::Amx`] can run here.
pub fn amx_available() -> bool {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    return amx::available();
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    false
}

impl Model {
    /// Loads a model file from disk with f32 weights (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load(path: &std::path::Path) -> Result<Self> {
        Self::load_with(path, Weights::F32)
    }

    /// Loads a model file from disk with the weights held as `weights` (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load_with(path: &std::path::Path, weights: Weights) -> Result<Self> {
        Self::from_gguf(GgufFile::open(path)?, weights)
    }

    /// Loads a model from the bytes of a GGUF file.
    pub fn from_bytes(bytes: Vec<u8>, weights: Weights) -> Result<Self> {
        Self::from_gguf(GgufFile::from_bytes(bytes)?, weights)
    }

    pub fn from_gguf(file: GgufFile, weights: Weights) -> Result<Self> {
        let tokenizer = TextTokenizer::from_gguf(&file.content)?;
        let llama = Llama::from_gguf(&file, weights)?;
        Ok(Self { llama, tokenizer, identity: file.identity })
    }

    /// Generates up to `max_tokens` tokens after `segments`, calling `on_text` with each piece of
    /// text as soon as it is complete. Returns the generated token ids.
    pub fn generate(
        &self,
        segments: &[Segment],
        max_tokens: usize,
        sampling: Sampling,
        mut on_text: impl FnMut(&str) -> bool,
    ) -> Result<Vec<u32>> {
        let mut cache = KvCache::new();
        let x = self.llama.embed(segments)?.unsqueeze(0)?;
        let hidden = self.llama.forward(&x, &mut cache, Mode::Infer)?;
        let last = hidden.dim(1)? - 1;
        let mut logits = self.llama.logits(&hidden.i((0, last))?)?;
        let mut generation = Generation::new(self, last + 1, max_tokens, sampling);
        while let Some(next) = generation.next(&logits, &mut on_text)? {
            let x = self.llama.embed_tokens(&[next])?.unsqueeze(0)?;
            let hidden = self.llama.forward(&x, &mut cache, Mode::Infer)?;
            logits = self.llama.logits(&hidden.i((0, 0))?)?;
        }
        Ok(generation.tokens)
    }
}

/// Generation's token-by-token bookkeeping, apart from the forward passes: it picks each next
/// token from the logits, streams the text and says when to stop. [`Model::generate`] drives it
/// with the CPU forward pass, the GPU backend with its own (`GpuLlama::generate`), so both stop
/// and sample alike.
pub struct Generation<'a> {
    model: &'a Model,
    sampling: Sampling,
    rng: SplitMix64,
    stream: TokenStream<'a>,
    max_tokens: usize,
    /// Positions run or to run: the prompt's, then one per token [`Self::next`] returned.
    pub positions: usize,
    /// The tokens generated so far.
    pub tokens: Vec<u32>,
}

impl<'a> Generation<'a> {
    /// After a prompt of `prompt_positions` positions.
    pub fn new(model: &'a Model, prompt_positions: usize, max_tokens: usize, sampling: Sampling) -> Self {
        Self {
            model,
            sampling,
            rng: SplitMix64(sampling.seed),
            stream: TokenStream::new(&model.tokenizer),
            max_tokens,
            positions: prompt_positions,
            tokens: Vec::new(),
        }
    }

    /// Given the logits after the last position: the next token, whose text (once complete) has
    /// gone to `on_text`, to run at position `positions - 1`; `None` when generation ends (the
    /// end-of-sequence token, `max_tokens` reached, `on_text` returned false, or the context is
    /// full).
    pub fn next(&mut self, logits: &Tensor, on_text: &mut impl FnMut(&str) -> bool) -> Result<Option<u32>> {
        if self.tokens.len() >= self.max_tokens {
            return Ok(None);
        }
        let next = pick(logits, self.sampling, &mut self.rng)?;
        if self.model.tokenizer.is_eos(next) {
            return Ok(None);
        }
        self.tokens.push(next);
        if let Some(piece) = self.stream.push(next)? {
            if !on_text(&piece) {
                return Ok(None);
            }
        }
        if self.positions + 1 > self.model.llama.config.context_length {
            return Ok(None);
        }
        self.positions += 1;
        Ok(Some(next))
    }
}

fn pick(logits: &Tensor, sampling: Sampling, rng: &mut SplitMix64) -> Result<u32> {
    let logits: Vec<f32> = logits.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
    let argmax = || {
        logits
            .iter()
            .enumerate()
            .fold((0usize, f32::NEG_INFINITY), |best, (i, &v)| if v > best.1 { (i, v) } else { best })
            .0 as u32
    };
    if sampling.temperature <= 0.0 {
        return Ok(argmax());
    }
    let t = sampling.temperature as f32;
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut probs: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as u32, (((l - max) / t) as f64).exp()))
        .collect();
    probs.sort_by(|a, b| b.1.total_cmp(&a.1));
    let total: f64 = probs.iter().map(|p| p.1).sum();
    // Nucleus: keep the smallest set of tokens whose mass reaches top_p.
    let mut kept = 0.0;
    let mut cut = probs.len();
    for (i, p) in probs.iter().enumerate() {
        kept += p.1 / total;
        if kept >= sampling.top_p {
            cut = i + 1;
            break;
        }
    }
    let probs = &probs[..cut];
    let mass: f64 = probs.iter().map(|p| p.1).sum();
    let mut r = rng.next_f64() * mass;
    for p in probs {
        r -= p.1;
        if r <= 0.0 {
            return Ok(p.0);
        }
    }
    Ok(probs.last().map(|p| p.0).unwrap_or_else(argmax))
}
