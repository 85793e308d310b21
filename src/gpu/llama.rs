//! The Llama forward pass on the GPU: embeddings `[n, d]` in (from `Llama::embed`, tags
//! already spliced in), final-norm hidden states `[n, d]` out — what the CPU path's
//! `Llama::forward` returns for one sequence without a cache.
//!
//! - **Weights** are uploaded once, as the file's raw GGUF blocks (Q4_1 or Q8_0) in u32 words;
//!   the matmul kernels dequantise them as they read them. Norm weights and the RoPE tables
//!   (the CPU path's own) are f32.
//! - **Activations** live in a [`Workspace`] per sequence length: every buffer, parameter
//!   uniform and bind group of the pass is created the first time a length is seen and reused.
//! - **One encoder, one submit**: the embeddings are written to the residual buffer, then all
//!   dispatches of the 30 layers and the final norm are recorded into one compute pass, followed
//!   by the copy to the read-back buffer.

use std::collections::HashMap;

use super::kernels::{shape, Kernel, Quant, ATTENTION_HEAD_DIM};
use super::Gpu;
use crate::error::{Error, Result};
use crate::model::gguf::{Config, GgufFile};
use crate::model::llama::rope_tables;
#[cfg(not(target_arch = "wasm32"))]
use crate::model::{Llama, Segment};

use candle_core::quantized::GgmlDType;
use candle_core::Device;
#[cfg(not(target_arch = "wasm32"))]
use candle_core::Tensor;

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

/// Buffers and bind groups for sequences of one length.
struct Workspace {
    h: wgpu::Buffer,
    staging: wgpu::Buffer,
    out: wgpu::Buffer,
    steps: Vec<Step>,
}

/// Workspaces kept at once (each distinct sequence length has one).
const MAX_WORKSPACES: usize = 8;

/// The model on the GPU.
pub struct GpuLlama {
    pub config: Config,
    gpu: Gpu,
    layers: Vec<Layer>,
    norm: wgpu::Buffer,
    cos: wgpu::Buffer,
    sin: wgpu::Buffer,
    workspaces: HashMap<usize, Workspace>,
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
        let (cos, sin) = rope_tables(&config, &Device::Cpu)?;
        let cos = gpu.upload_f32("rope cos", &cos.flatten_all()?.to_vec1::<f32>()?);
        let sin = gpu.upload_f32("rope sin", &sin.flatten_all()?.to_vec1::<f32>()?);
        Ok(Self { config, gpu, layers, norm, cos, sin, workspaces: HashMap::new() })
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Final-norm hidden states `[n, d]` (row-major) of one sequence of embeddings `x` `[n, d]`
    /// at positions 0…n-1.
    pub async fn forward(&mut self, x: &[f32]) -> Result<Vec<f32>> {
        let d = self.config.hidden;
        let n = x.len() / d;
        if n == 0 || x.len() != n * d {
            return Err(Error::Usage(format!("{} input values are not rows of width {d}", x.len())));
        }
        if n > self.config.context_length {
            return Err(Error::Usage(format!(
                "input of {n} positions exceeds the model's context of {}",
                self.config.context_length
            )));
        }
        if !self.workspaces.contains_key(&n) {
            if self.workspaces.len() >= MAX_WORKSPACES {
                self.workspaces.clear();
            }
            let ws = self.workspace(n);
            self.workspaces.insert(n, ws);
        }
        let ws = &self.workspaces[&n];
        let gpu = &self.gpu;
        gpu.queue.write_buffer(&ws.h, 0, bytemuck::cast_slice(x));
        let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("forward") });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("forward"), timestamp_writes: None });
            for step in &ws.steps {
                (step.kernel)(&gpu.kernels).dispatch(&mut pass, &step.group, step.wg);
            }
        }
        enc.copy_buffer_to_buffer(&ws.out, 0, &ws.staging, 0, (n * d * 4) as u64);
        gpu.queue.submit([enc.finish()]);
        gpu.read_staging(&ws.staging, n * d).await
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

    /// Allocates the buffers of an `n`-token pass and records its dispatches' bind groups.
    fn workspace(&self, n: usize) -> Workspace {
        let c = &self.config;
        let gpu = &self.gpu;
        let (d, f) = (c.hidden, c.ffn);
        let (qd, kvd) = (c.n_head * c.head_dim, c.n_kv_head * c.head_dim);
        let h = gpu.storage("h", n * d);
        let xn = gpu.storage("normed", n * d);
        let q = gpu.storage("q", n * qd);
        let k = gpu.storage("k", n * kvd);
        let v = gpu.storage("v", n * kvd);
        let att = gpu.storage("attention", n * qd);
        let o = gpu.storage("projected", n * d);
        let gate = gpu.storage("gate", n * f);
        let up = gpu.storage("up", n * f);
        let act = gpu.storage("act", n * f);
        let out = gpu.storage("out", n * d);
        let staging = gpu.staging(n * d);

        let mut uniforms: HashMap<[u32; 4], wgpu::Buffer> = HashMap::new();
        let mut steps = Vec::new();
        let mut step = |kernel: fn(&super::Kernels) -> &Kernel, (p, wg): ([u32; 4], (u32, u32, u32)), bufs: &[&wgpu::Buffer]| {
            let params = uniforms.entry(p).or_insert_with(|| gpu.params(p));
            let mut all = vec![&*params];
            all.extend_from_slice(bufs);
            let group = kernel(&gpu.kernels).bind(&gpu.device, &all);
            steps.push(Step { kernel, group, wg });
        };
        let eps = c.rms_eps as f32;
        for l in &self.layers {
            step(|k| &k.rmsnorm, shape::rmsnorm(n, d, eps), &[&h, &l.attn_norm, &xn]);
            for (w, dst) in [(&l.wq, &q), (&l.wk, &k), (&l.wv, &v)] {
                step(matmul_kernel(w.quant), shape::matmul(n, w.n, w.k), &[&w.buffer, &xn, dst]);
            }
            step(|k| &k.rope, shape::rope(n, c.n_head, c.head_dim, 0), &[&q, &self.cos, &self.sin]);
            step(|k| &k.rope, shape::rope(n, c.n_kv_head, c.head_dim, 0), &[&k, &self.cos, &self.sin]);
            step(|k| &k.attention, shape::attention(n, c.n_head, c.n_kv_head), &[&q, &k, &v, &att]);
            step(matmul_kernel(l.wo.quant), shape::matmul(n, l.wo.n, l.wo.k), &[&l.wo.buffer, &att, &o]);
            step(|k| &k.add, shape::elementwise(n * d), &[&h, &o]);
            step(|k| &k.rmsnorm, shape::rmsnorm(n, d, eps), &[&h, &l.ffn_norm, &xn]);
            step(matmul_kernel(l.w_gate.quant), shape::matmul(n, f, d), &[&l.w_gate.buffer, &xn, &gate]);
            step(matmul_kernel(l.w_up.quant), shape::matmul(n, f, d), &[&l.w_up.buffer, &xn, &up]);
            step(|k| &k.silu_mul, shape::elementwise(n * f), &[&gate, &up, &act]);
            step(matmul_kernel(l.w_down.quant), shape::matmul(n, d, f), &[&l.w_down.buffer, &act, &o]);
            step(|k| &k.add, shape::elementwise(n * d), &[&h, &o]);
        }
        step(|k| &k.rmsnorm, shape::rmsnorm(n, d, eps), &[&h, &self.norm, &out]);
        Workspace { h, staging, out, steps }
    }
}

fn matmul_kernel(quant: Quant) -> fn(&super::Kernels) -> &Kernel {
    match quant {
        Quant::Q4_1 => |k| &k.matmul_q4_1,
        Quant::Q8_0 => |k| &k.matmul_q8_0,
    }
}
