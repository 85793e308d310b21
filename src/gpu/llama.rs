//! The Llama forward pass on the GPU: embeddings `[n, d]` in (from `Llama::embed`, tags
//! already spliced in), final-norm hidden states `[n, d]` out — what the CPU path's
//! `Llama::forward` returns for one sequence without a cache.
//!
//! - **Weights** are uploaded once, as the file's raw GGUF blocks (Q4_1 or Q8_0) in u32 words;
//!   the matmul kernels dequantise them as they read them. Norm weights and the RoPE tables
//!   (the CPU path's own) are f32.
//! - **Activations** live in a [`Workspace`] per pass shape (rows, rows per sequence): every
//!   buffer, parameter uniform and bind group of the pass is created the first time that shape
//!   is seen and reused. The few uniforms that depend on where the pass starts (positions for
//!   RoPE and attention, the cache rows written) are rewritten before a pass that starts
//!   elsewhere, so decoding token after token reuses one workspace.
//! - **KV cache**: each layer's keys and values for every position run so far, in two buffers
//!   per layer that grow (by copying) when a pass needs more rows. A pass at `past` cached
//!   positions writes its own keys and values into rows `past…` (the projections write straight
//!   into those rows) and attends over rows `0…past + n`: a prompt prefix shared by many inputs
//!   runs once, then each input's suffix runs after it.
//! - **One encoder, one submit**: the embeddings are written to the residual buffer, then all
//!   dispatches of the 30 layers and the final norm are recorded into one compute pass, followed
//!   by the copy to the read-back buffer.
//! - **Logits** (generation): the output head (the tied Q8_0 token embedding) runs on the pass's
//!   last row in the same pass, and only the vocabulary's logits are read back.

use std::collections::HashMap;

use super::kernels::{matmul_kernel, shape, Kernel, Params, Quant, ATTENTION_HEAD_DIM};
use super::Gpu;
use crate::error::{Error, Result};
use crate::model::gguf::{Config, GgufFile};
use crate::model::llama::rope_tables;
#[cfg(not(target_arch = "wasm32"))]
use crate::model::Llama;
use crate::model::{Generation, Model, Sampling, Segment};

use candle_core::quantized::GgmlDType;
use candle_core::{Device, Tensor};

/// A weight matrix `[n, k]` (y = x · Wᵀ) as raw GGUF blocks on the GPU.
struct QMatrix {
    buffer: wgpu::Buffer,
    quant: Quant,
    n: usize,
    k: usize,
}

struct Layer {
    attn_norm: wgpu::Buffer,
    wq: QMatrix,
    wk: QMatrix,
    wv: QMatrix,
    wo: QMatrix,
    ffn_norm: wgpu::Buffer,
    w_gate: QMatrix,
    w_up: QMatrix,
    w_down: QMatrix,
}

/// One recorded dispatch: kernel, bind group, workgroups.
struct Step {
    kernel: fn(&super::Kernels) -> &Kernel,
    group: wgpu::BindGroup,
    wg: (u32, u32, u32),
}

/// Buffers and bind groups for passes of one shape (rows, rows per sequence).
struct Workspace {
    h: wgpu::Buffer,
    staging: wgpu::Buffer,
    out: wgpu::Buffer,
    steps: Vec<Step>,
    /// The output head on the last row, made the first time a pass of this shape asks for logits.
    logits: Option<Logits>,
    /// The uniforms that depend on the cached positions a pass starts after ([`at_past`]).
    at_past: [wgpu::Buffer; 4],
    /// The `past` those uniforms now hold.
    past: Option<usize>,
}

/// The words of the uniforms that depend on where a pass of `n` rows (sequences of `seq`)
/// starts, after `past` cached positions, shared by every layer: RoPE of q, the K/V projections
/// (their output row in the cache), RoPE of k (from that row), attention. The workgroup counts
/// do not depend on `past`.
fn at_past(c: &Config, n: usize, seq: usize, past: usize) -> [Params; 4] {
    let (heads, kv_heads, hd) = (c.n_head, c.n_kv_head, c.head_dim);
    // Every layer's k and v matrices are [kv_heads · hd, hidden] (checked on upload).
    [
        shape::rope(n, heads, hd, past, seq, 0).0,
        shape::matmul_at(n, kv_heads * hd, c.hidden, 0, past).0,
        shape::rope(n, kv_heads, hd, past, seq, past).0,
        shape::attention(n, heads, kv_heads, past, seq).0,
    ]
}

/// The logits of a pass's last row: the head's dispatch, its output and read-back buffers.
struct Logits {
    step: Step,
    out: wgpu::Buffer,
    staging: wgpu::Buffer,
}

/// Workspaces kept at once (each distinct shape has one).
const MAX_WORKSPACES: usize = 16;

/// Every layer's keys and values, `capacity` positions each (`[capacity, kv_heads · 64]`).
struct KvCache {
    k: Vec<wgpu::Buffer>,
    v: Vec<wgpu::Buffer>,
    capacity: usize,
}

/// The model on the GPU.
pub struct GpuLlama {
    pub config: Config,
    gpu: Gpu,
    layers: Vec<Layer>,
    norm: wgpu::Buffer,
    /// The output head `[vocab, d]` (the token embedding where, as in SmolLM2, it is tied).
    head: QMatrix,
    cos: wgpu::Buffer,
    sin: wgpu::Buffer,
    workspaces: HashMap<(usize, usize), Workspace>,
    cache: KvCache,
    /// Positions whose keys and values the cache holds.
    cached: usize,
    /// Counts passes from position 0: a prefix's rows are still in the cache while this is
    /// unchanged (later passes at `past ≥` the prefix's length leave them alone).
    epoch: u64,
}

/// The raw bytes of a tensor and its block format.
fn raw_tensor<'a>(file: &'a GgufFile, name: &str) -> Result<(&'a [u8], GgmlDType, Vec<usize>)> {
    let info = file
        .content
        .tensor_infos
        .get(name)
        .ok_or_else(|| Error::model(format!("tensor `{name}` is missing")))?;
    let dims = info.shape.dims().to_vec();
    let elems: usize = dims.iter().product();
    let size = elems / info.ggml_dtype.block_size() * info.ggml_dtype.type_size();
    let start = (file.content.tensor_data_offset + info.offset) as usize;
    let bytes = file
        .bytes
        .get(start..start + size)
        .ok_or_else(|| Error::model(format!("tensor `{name}` lies outside the file")))?;
    Ok((bytes, info.ggml_dtype, dims))
}

impl GpuLlama {
    /// Uploads the weights of a checked GGUF file.
    pub fn new(gpu: Gpu, file: &GgufFile) -> Result<Self> {
        let config = file.config.clone();
        if config.head_dim != ATTENTION_HEAD_DIM {
            return Err(Error::Gpu(format!(
                "the attention kernel needs head size {ATTENTION_HEAD_DIM}, the model has {}",
                config.head_dim
            )));
        }
        let matrix = |name: &str| -> Result<QMatrix> {
            let (bytes, dtype, dims) = raw_tensor(file, name)?;
            let quant = match dtype {
                GgmlDType::Q4_1 => Quant::Q4_1,
                GgmlDType::Q8_0 => Quant::Q8_0,
                other => {
                    return Err(Error::Gpu(format!("tensor `{name}` is {other:?}; the GPU path reads Q4_1 and Q8_0")))
                }
            };
            let &[n, k] = dims.as_slice() else {
                return Err(Error::model(format!("tensor `{name}` has shape {dims:?}, expected a matrix")));
            };
            super::kernels::check_matmul(quant, bytes, n, k)?;
            Ok(QMatrix { buffer: gpu.upload(name, bytes, wgpu::BufferUsages::empty()), quant, n, k })
        };
        let vector = |name: &str| -> Result<wgpu::Buffer> {
            let t = file
                .content
                .tensor(&mut std::io::Cursor::new(&file.bytes), name, &Device::Cpu)
                .map_err(|e| Error::model(format!("tensor `{name}`: {e}")))?
                .dequantize(&Device::Cpu)?;
            if t.dims() != [config.hidden] {
                return Err(Error::model(format!("tensor `{name}` has shape {:?}, expected [{}]", t.dims(), config.hidden)));
            }
            Ok(gpu.upload_f32(name, &t.to_vec1::<f32>()?))
        };
        let mut layers = Vec::with_capacity(config.n_layer);
        for i in 0..config.n_layer {
            let p = format!("blk.{i}");
            let layer = Layer {
                attn_norm: vector(&format!("{p}.attn_norm.weight"))?,
                wq: matrix(&format!("{p}.attn_q.weight"))?,
                wk: matrix(&format!("{p}.attn_k.weight"))?,
                wv: matrix(&format!("{p}.attn_v.weight"))?,
                wo: matrix(&format!("{p}.attn_output.weight"))?,
                ffn_norm: vector(&format!("{p}.ffn_norm.weight"))?,
                w_gate: matrix(&format!("{p}.ffn_gate.weight"))?,
                w_up: matrix(&format!("{p}.ffn_up.weight"))?,
                w_down: matrix(&format!("{p}.ffn_down.weight"))?,
            };
            let (d, q, kv, f) = (config.hidden, config.n_head * config.head_dim, config.n_kv_head * config.head_dim, config.ffn);
            let fits = [
                (&layer.wq, q, d),
                (&layer.wk, kv, d),
                (&layer.wv, kv, d),
                (&layer.wo, d, q),
                (&layer.w_gate, f, d),
                (&layer.w_up, f, d),
                (&layer.w_down, d, f),
            ]
            .iter()
            .all(|(m, n, k)| m.n == *n && m.k == *k);
            if !fits {
                return Err(Error::model(format!("block {i} has matrices of unexpected shapes")));
            }
            layers.push(layer);
        }
        let norm = vector("output_norm.weight")?;
        let head_name = if file.content.tensor_infos.contains_key("output.weight") { "output.weight" } else { "token_embd.weight" };
        let head = matrix(head_name)?;
        if head.k != config.hidden {
            return Err(Error::model(format!("the output head `{head_name}` is [{}, {}], not [vocabulary, {}]", head.n, head.k, config.hidden)));
        }
        let (cos, sin) = rope_tables(&config, &Device::Cpu)?;
        let cos = gpu.upload_f32("rope cos", &cos.flatten_all()?.to_vec1::<f32>()?);
        let sin = gpu.upload_f32("rope sin", &sin.flatten_all()?.to_vec1::<f32>()?);
        let cache = KvCache { k: vec![], v: vec![], capacity: 0 };
        Ok(Self { config, gpu, layers, norm, head, cos, sin, workspaces: HashMap::new(), cache, cached: 0, epoch: 0 })
    }

    /// Changes whenever a pass starts again from position 0 (see [`Self::forward_at`]).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Grows the KV cache to hold `rows` positions, keeping the first `keep`.
    fn reserve(&mut self, rows: usize, keep: usize) {
        if rows <= self.cache.capacity {
            return;
        }
        let capacity = rows.next_power_of_two().max(128).min(self.config.context_length.max(rows));
        let row = self.config.n_kv_head * self.config.head_dim;
        let gpu = &self.gpu;
        let fresh = |name: &str| -> Vec<wgpu::Buffer> { (0..self.config.n_layer).map(|_| gpu.storage(name, capacity * row)).collect() };
        let (k, v) = (fresh("k cache"), fresh("v cache"));
        if keep > 0 {
            let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("grow kv cache") });
            for (old, new) in self.cache.k.iter().zip(&k).chain(self.cache.v.iter().zip(&v)) {
                enc.copy_buffer_to_buffer(old, 0, new, 0, (keep * row * 4) as u64);
            }
            gpu.queue.submit([enc.finish()]);
        }
        self.cache = KvCache { k, v, capacity };
        // Every workspace binds the old cache.
        self.workspaces.clear();
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Milliseconds per matrix product of layer 0's q, k, gate and down matrices (the model's four
    /// shapes) at `m` rows: `reps` dispatches recorded into one pass, after a warm-up, timed from
    /// the submit to a read-back of one value (so the work is done). `(name, m, k, n, ms, weight
    /// bytes)`.
    pub async fn time_matmuls(&self, m: usize, reps: usize, now: &dyn Fn() -> f64) -> Result<Vec<(String, usize, usize, usize, f64, usize)>> {
        let gpu = &self.gpu;
        let l = self.layers.first().ok_or_else(|| Error::model("the model has no layers"))?;
        let mut out = Vec::new();
        for (name, w) in [("attn q/o", &l.wq), ("attn k/v", &l.wk), ("mlp gate/up", &l.w_gate), ("mlp down", &l.w_down)] {
            let x = gpu.storage("bench x", m * w.k);
            let y = gpu.storage("bench y", m * w.n);
            let (p, wg) = shape::matmul(m, w.n, w.k);
            let params = gpu.params(p);
            let kernel = gpu.kernels.matmul(w.quant, m);
            let group = kernel.bind(&gpu.device, &[&params, &w.buffer, &x, &y]);
            let mut ms = 0.0;
            for (round, count) in [(0, 1), (1, reps.max(1))] {
                let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("bench") });
                {
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
                    for _ in 0..count {
                        kernel.dispatch(&mut pass, &group, wg);
                    }
                }
                let t = now();
                gpu.queue.submit([enc.finish()]);
                gpu.read(&y, 1).await?;
                if round == 1 {
                    ms = (now() - t) / count as f64;
                }
            }
            out.push((format!("{name} ({m} rows, {:?})", w.quant), m, w.k, w.n, ms, w.n * w.k / 32 * w.quant.block_bytes()));
        }
        Ok(out)
    }

    /// Final-norm hidden states `[n, d]` (row-major) of one sequence of embeddings `x` `[n, d]`
    /// at positions 0…n-1.
    pub async fn forward(&mut self, x: &[f32]) -> Result<Vec<f32>> {
        self.forward_at(x, 0).await
    }

    /// [`Self::forward`] for embeddings `x` at positions `past…past + n - 1`, continuing the
    /// sequence whose first `past` positions are in the KV cache (those of earlier passes: a pass
    /// at 0, then any at `past` ≤ what has been run). Afterwards the cache holds `past + n`
    /// positions; rows before `past` are never touched, so a prefix run once at 0 serves every
    /// later pass at its length.
    pub async fn forward_at(&mut self, x: &[f32], past: usize) -> Result<Vec<f32>> {
        Ok(self.forward_batch_at(&[x], past).await?.remove(0))
    }

    /// Several sequences in one pass, each continuing the same `past` cached positions (one
    /// prompt prefix, many inputs): `xs[b]` is `[n_b, d]`, the result `b` its states `[n_b, d]`.
    /// The sequences are right-padded to the longest (zero rows, which no real row attends to) and
    /// run as `b · S` rows; each writes its keys and values to its own cache rows after the shared
    /// ones. With more than one sequence the cache keeps only the `past` shared positions.
    pub async fn forward_batch_at(&mut self, xs: &[&[f32]], past: usize) -> Result<Vec<Vec<f32>>> {
        let d = self.config.hidden;
        let (out, seq) = self.pass(xs, past, false).await?;
        Ok(xs.iter().enumerate().map(|(b, x)| out[b * seq * d..][..x.len()].to_vec()).collect())
    }

    /// The logits `[vocab]` of the last of embeddings `x` at positions `past…past + n - 1` (a
    /// pass like [`Self::forward_at`]'s, whose final-norm states stay on the GPU).
    pub async fn logits_at(&mut self, x: &[f32], past: usize) -> Result<Vec<f32>> {
        Ok(self.pass(&[x], past, true).await?.0)
    }

    /// One pass of [`Self::forward_batch_at`]: the final-norm states of all `b · seq` rows, or
    /// with `logits` (one sequence) the last row's logits; and `seq`.
    async fn pass(&mut self, xs: &[&[f32]], past: usize, logits: bool) -> Result<(Vec<f32>, usize)> {
        let d = self.config.hidden;
        let mut lens = Vec::with_capacity(xs.len());
        for x in xs {
            let n = x.len() / d;
            if n == 0 || x.len() != n * d {
                return Err(Error::Usage(format!("{} input values are not rows of width {d}", x.len())));
            }
            lens.push(n);
        }
        let seq = lens.iter().copied().max().ok_or_else(|| Error::Usage("no sequences to run".into()))?;
        let rows = seq * xs.len();
        if logits && xs.len() != 1 {
            return Err(Error::Usage("logits are read for one sequence at a time".into()));
        }
        if past + seq > self.config.context_length {
            return Err(Error::Usage(format!(
                "input of {} positions exceeds the model's context of {}",
                past + seq,
                self.config.context_length
            )));
        }
        if past > self.cached {
            return Err(Error::Usage(format!("a pass after {past} positions, but the cache holds {}", self.cached)));
        }
        self.reserve(past + rows, past);
        let key = (rows, seq);
        if !self.workspaces.contains_key(&key) {
            if self.workspaces.len() >= MAX_WORKSPACES {
                self.workspaces.clear();
            }
            let ws = self.workspace(rows, seq);
            self.workspaces.insert(key, ws);
        }
        if logits && self.workspaces[&key].logits.is_none() {
            let head = self.logits(&self.workspaces[&key].out, rows);
            self.workspaces.get_mut(&key).expect("made above").logits = Some(head);
        }
        if past == 0 {
            self.epoch = next_epoch();
        }
        // Rows after the shared ones are this pass's own from now on.
        self.cached = if xs.len() == 1 { past + seq } else { past };
        let mut input = vec![0f32; rows * d];
        for (b, x) in xs.iter().enumerate() {
            input[b * seq * d..][..x.len()].copy_from_slice(x);
        }
        let gpu = &self.gpu;
        let ws = self.workspaces.get_mut(&key).expect("the workspace was made above");
        if ws.past != Some(past) {
            for (buffer, words) in ws.at_past.iter().zip(at_past(&self.config, rows, seq, past)) {
                gpu.queue.write_buffer(buffer, 0, bytemuck::cast_slice(&words));
            }
            ws.past = Some(past);
        }
        gpu.queue.write_buffer(&ws.h, 0, bytemuck::cast_slice(&input));
        let head = if logits { ws.logits.as_ref() } else { None };
        let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("forward") });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("forward"), timestamp_writes: None });
            for step in ws.steps.iter().chain(head.map(|h| &h.step)) {
                (step.kernel)(&gpu.kernels).dispatch(&mut pass, &step.group, step.wg);
            }
        }
        let (result, staging, len) = match head {
            Some(h) => (&h.out, &h.staging, self.head.n),
            None => (&ws.out, &ws.staging, rows * d),
        };
        enc.copy_buffer_to_buffer(result, 0, staging, 0, (len * 4) as u64);
        gpu.queue.submit([enc.finish()]);
        Ok((gpu.read_staging(staging, len).await?, seq))
    }

    /// The output head on the last of `rows` final-norm rows in `out`.
    fn logits(&self, out: &wgpu::Buffer, rows: usize) -> Logits {
        let (gpu, head) = (&self.gpu, &self.head);
        let logits = gpu.storage("logits", head.n);
        let (p, wg) = shape::matmul_at(1, head.n, head.k, rows - 1, 0);
        let kernel = matmul_kernel(head.quant, 1);
        let group = bind(gpu, kernel, &gpu.params(p), &[&head.buffer, out, &logits]);
        Logits { step: Step { kernel, group, wg }, staging: gpu.staging(head.n), out: logits }
    }

    /// Generates like [`Model::generate`], with the forward passes here: the prompt in one pass,
    /// then one pass per token continuing the KV cache, each reading back its last position's
    /// logits ([`Self::logits_at`]); `model` embeds the tokens, splices the tags and samples.
    pub async fn generate(
        &mut self,
        model: &Model,
        segments: &[Segment],
        max_tokens: usize,
        sampling: Sampling,
        mut on_text: impl FnMut(&str) -> bool,
    ) -> Result<Vec<u32>> {
        let x = model.llama.embed(segments)?;
        let n = x.dim(0)?;
        let mut logits = self.logits_at(&x.flatten_all()?.to_vec1::<f32>()?, 0).await?;
        let mut generation = Generation::new(model, n, max_tokens, sampling);
        while let Some(next) = generation.next(&Tensor::from_vec(logits, self.head.n, &Device::Cpu)?, &mut on_text)? {
            let x = model.llama.embed_tokens(&[next])?.flatten_all()?.to_vec1::<f32>()?;
            logits = self.logits_at(&x, generation.positions - 1).await?;
        }
        Ok(generation.tokens)
    }

    /// [`Self::forward`], blocking (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn forward_blocking(&mut self, x: &[f32]) -> Result<Vec<f32>> {
        super::block_on(self.forward(x))
    }

    /// Embeds `segments` on the CPU with `cpu` (token rows, tags spliced in) and runs them here:
    /// hidden states `[n, d]` (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn hidden_states(&mut self, cpu: &Llama, segments: &[Segment]) -> Result<Tensor> {
        let x = cpu.embed(segments)?;
        let (n, d) = x.dims2()?;
        let out = self.forward_blocking(&x.flatten_all()?.to_vec1::<f32>()?)?;
        Ok(Tensor::from_vec(out, (n, d), &Device::Cpu)?)
    }

    /// Allocates the buffers of an `n`-row pass (sequences of `seq` rows) and records its
    /// dispatches' bind groups; where the pass starts is set before each pass (`at_past`).
    fn workspace(&self, n: usize, seq: usize) -> Workspace {
        let c = &self.config;
        let gpu = &self.gpu;
        let (d, f) = (c.hidden, c.ffn);
        let qd = c.n_head * c.head_dim;
        let h = gpu.storage("h", n * d);
        let xn = gpu.storage("normed", n * d);
        let q = gpu.storage("q", n * qd);
        let att = gpu.storage("attention", n * qd);
        let o = gpu.storage("projected", n * d);
        let gate = gpu.storage("gate", n * f);
        let up = gpu.storage("up", n * f);
        let act = gpu.storage("act", n * f);
        let out = gpu.storage("out", n * d);
        let staging = gpu.staging(n * d);

        // The uniforms that depend on `past` (rewritten before a pass that starts elsewhere).
        let (heads, kv_heads, hd) = (c.n_head, c.n_kv_head, c.head_dim);
        let at_past = at_past(c, n, seq, 0).map(|p| gpu.params(p));
        let [rope_q, kv_matmul, rope_k, attention] = &at_past;

        let mut r = Recorder { gpu, uniforms: HashMap::new(), steps: Vec::new() };
        let eps = c.rms_eps as f32;
        for (i, l) in self.layers.iter().enumerate() {
            let (kc, vc) = (&self.cache.k[i], &self.cache.v[i]);
            r.step(|k| &k.rmsnorm, shape::rmsnorm(n, d, eps), &[&h, &l.attn_norm, &xn]);
            r.step(matmul_kernel(l.wq.quant, n), shape::matmul(n, l.wq.n, l.wq.k), &[&l.wq.buffer, &xn, &q]);
            r.step_with(|k| &k.rope, rope_q, shape::rope(n, heads, hd, 0, seq, 0).1, &[&q, &self.cos, &self.sin]);
            for (w, cache) in [(&l.wk, kc), (&l.wv, vc)] {
                r.step_with(matmul_kernel(w.quant, n), kv_matmul, shape::matmul(n, w.n, w.k).1, &[&w.buffer, &xn, cache]);
            }
            r.step_with(|k| &k.rope, rope_k, shape::rope(n, kv_heads, hd, 0, seq, 0).1, &[kc, &self.cos, &self.sin]);
            r.step_with(|k| &k.attention, attention, shape::attention(n, heads, kv_heads, 0, seq).1, &[&q, kc, vc, &att]);
            r.step(matmul_kernel(l.wo.quant, n), shape::matmul(n, l.wo.n, l.wo.k), &[&l.wo.buffer, &att, &o]);
            r.step(|k| &k.add, shape::elementwise(n * d), &[&h, &o]);
            r.step(|k| &k.rmsnorm, shape::rmsnorm(n, d, eps), &[&h, &l.ffn_norm, &xn]);
            r.step(matmul_kernel(l.w_gate.quant, n), shape::matmul(n, f, d), &[&l.w_gate.buffer, &xn, &gate]);
            r.step(matmul_kernel(l.w_up.quant, n), shape::matmul(n, f, d), &[&l.w_up.buffer, &xn, &up]);
            r.step(|k| &k.silu_mul, shape::elementwise(n * f), &[&gate, &up, &act]);
            r.step(matmul_kernel(l.w_down.quant, n), shape::matmul(n, d, f), &[&l.w_down.buffer, &act, &o]);
            r.step(|k| &k.add, shape::elementwise(n * d), &[&h, &o]);
        }
        r.step(|k| &k.rmsnorm, shape::rmsnorm(n, d, eps), &[&h, &self.norm, &out]);
        Workspace { h, staging, out, steps: r.steps, logits: None, at_past, past: None }
    }
}

/// Records a pass's dispatches, sharing a uniform among those with the same words.
struct Recorder<'a> {
    gpu: &'a Gpu,
    uniforms: HashMap<Params, wgpu::Buffer>,
    steps: Vec<Step>,
}

impl Recorder<'_> {
    /// `kernel` with its own (shared) uniform of the words `p`.
    fn step(&mut self, kernel: fn(&super::Kernels) -> &Kernel, (p, wg): (Params, (u32, u32, u32)), bufs: &[&wgpu::Buffer]) {
        let gpu = self.gpu;
        let params = self.uniforms.entry(p).or_insert_with(|| gpu.params(p));
        let group = bind(gpu, kernel, params, bufs);
        self.steps.push(Step { kernel, group, wg });
    }

    /// `kernel` with the uniform `params` (one that is rewritten between passes).
    fn step_with(&mut self, kernel: fn(&super::Kernels) -> &Kernel, params: &wgpu::Buffer, wg: (u32, u32, u32), bufs: &[&wgpu::Buffer]) {
        let group = bind(self.gpu, kernel, params, bufs);
        self.steps.push(Step { kernel, group, wg });
    }
}

fn bind(gpu: &Gpu, kernel: fn(&super::Kernels) -> &Kernel, params: &wgpu::Buffer, bufs: &[&wgpu::Buffer]) -> wgpu::BindGroup {
    let mut all = vec![params];
    all.extend_from_slice(bufs);
    kernel(&gpu.kernels).bind(&gpu.device, &all)
}

/// Epochs unique across every [`GpuLlama`] of the process (a prefix remembered for one model
/// must never look valid for another).
fn next_epoch() -> u64 {
    static EPOCH: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    EPOCH.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}


