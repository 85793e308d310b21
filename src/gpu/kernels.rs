//! The compute kernels: one WGSL file each, compiled once per device. Every kernel takes a
//! uniform of eight 32-bit words at binding 0 (`Params`), then its storage buffers in binding order.
//!
//! Each `*_dispatch` function records one kernel into a compute pass; the `run_*` functions on
//! [`Gpu`] run one kernel on host data (upload, one submit, read back) for tests.

use super::Gpu;
use crate::error::{Error, Result};

/// GGUF block formats the matmul kernels dequantise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quant {
    /// 32 weights in 20 bytes: f16 scale, f16 minimum, 4-bit codes.
    Q4_1,
    /// 32 weights in 34 bytes: f16 scale, signed 8-bit codes.
    Q8_0,
}

impl Quant {
    /// Bytes of one 32-weight block.
    pub fn block_bytes(self) -> usize {
        match self {
            Quant::Q4_1 => 20,
            Quant::Q8_0 => 34,
        }
    }
}

/// A compiled kernel: its pipeline and the layout of its bind group.
pub struct Kernel {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

impl Kernel {
    fn new(device: &wgpu::Device, name: &str, source: &str) -> Self {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(name),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        let layout = pipeline.get_bind_group_layout(0);
        Self { pipeline, layout }
    }

    /// A bind group of `buffers` at bindings 0, 1, … (the parameters first).
    pub fn bind(&self, device: &wgpu::Device, buffers: &[&wgpu::Buffer]) -> wgpu::BindGroup {
        let whole: Vec<wgpu::BufferBinding> = buffers.iter().map(|b| b.as_entire_buffer_binding()).collect();
        self.bind_ranges(device, &whole)
    }

    /// [`Self::bind`] with buffer ranges (e.g. the rows of a KV cache a pass writes).
    pub fn bind_ranges(&self, device: &wgpu::Device, bindings: &[wgpu::BufferBinding<'_>]) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry> = bindings
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: wgpu::BindingResource::Buffer(b.clone()) })
            .collect();
        device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &self.layout, entries: &entries })
    }

    /// Records one dispatch.
    pub fn dispatch(&self, pass: &mut wgpu::ComputePass<'_>, group: &wgpu::BindGroup, wg: (u32, u32, u32)) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, group, &[]);
        pass.dispatch_workgroups(wg.0, wg.1, wg.2);
    }
}

/// Every kernel of the forward pass.
pub struct Kernels {
    pub matmul_q4_1: Kernel,
    pub matmul_q8_0: Kernel,
    /// One row of x (decoding): [`shape::matmul_at`] picks these for `m = 1`.
    pub matvec_q4_1: Kernel,
    pub matvec_q8_0: Kernel,
    pub rmsnorm: Kernel,
    pub rope: Kernel,
    pub attention: Kernel,
    pub silu_mul: Kernel,
    pub add: Kernel,
}

/// Rows of x per matmul workgroup (two vec4 accumulators in the shaders) and columns (the
/// workgroup size).
const MATMUL_ROWS: usize = 8;
const MATMUL_COLS: usize = 64;
/// Output columns per matrix–vector workgroup (8 invocations each).
const MATVEC_COLS: usize = 8;
/// The attention kernel's head size (one invocation per dimension).
pub const ATTENTION_HEAD_DIM: usize = 64;
const MAX_GROUPS: usize = 65_535;

/// The matrix products' parameters and bindings, part of each product pipeline's source.
const PRODUCT: &str = include_str!("shaders/product.wgsl");

impl Kernels {
    /// Compiles every kernel; `subgroups`: the device has subgroup operations, at least 8
    /// invocations a subgroup (the matrix–vector kernels then add their partial sums by shuffles).
    pub fn new(device: &wgpu::Device, subgroups: bool) -> Self {
        let matvec = |name: &str, format: &str| {
            let source = if subgroups {
                // No `enable subgroups;`: naga (native wgpu, the only one offering them) takes the
                // builtins with the device feature and refuses the directive.
                [format, include_str!("shaders/column_sum_subgroup.wgsl"), PRODUCT, include_str!("shaders/matvec.wgsl")].concat()
            } else {
                [format, include_str!("shaders/column_sum.wgsl"), PRODUCT, include_str!("shaders/matvec.wgsl")].concat()
            };
            Kernel::new(device, name, &source)
        };
        Self {
            matmul_q4_1: Kernel::new(device, "matmul_q4_1", &[include_str!("shaders/matmul_q4_1.wgsl"), PRODUCT, include_str!("shaders/matmul.wgsl")].concat()),
            matmul_q8_0: Kernel::new(device, "matmul_q8_0", &[include_str!("shaders/matmul_q8_0.wgsl"), PRODUCT, include_str!("shaders/matmul.wgsl")].concat()),
            matvec_q4_1: matvec("matvec_q4_1", include_str!("shaders/matvec_q4_1.wgsl")),
            matvec_q8_0: matvec("matvec_q8_0", include_str!("shaders/matvec_q8_0.wgsl")),
            rmsnorm: Kernel::new(device, "rmsnorm", include_str!("shaders/rmsnorm.wgsl")),
            rope: Kernel::new(device, "rope", include_str!("shaders/rope.wgsl")),
            attention: Kernel::new(device, "attention", include_str!("shaders/attention.wgsl")),
            silu_mul: Kernel::new(device, "silu_mul", include_str!("shaders/silu_mul.wgsl")),
            add: Kernel::new(device, "add", include_str!("shaders/add.wgsl")),
        }
    }

    /// The product kernel for `quant` weights and `m` rows of x (the matrix–vector one for one).
    pub fn matmul(&self, quant: Quant, m: usize) -> &Kernel {
        matmul_kernel(quant, m)(self)
    }
}

/// [`Kernels::matmul`] as a selector (what a recorded pass stores).
pub fn matmul_kernel(quant: Quant, m: usize) -> fn(&Kernels) -> &Kernel {
    match (quant, m == 1) {
        (Quant::Q4_1, false) => |k| &k.matmul_q4_1,
        (Quant::Q8_0, false) => |k| &k.matmul_q8_0,
        (Quant::Q4_1, true) => |k| &k.matvec_q4_1,
        (Quant::Q8_0, true) => |k| &k.matvec_q8_0,
    }
}

/// A kernel's uniform parameters: eight 32-bit words (each shader reads the first of them).
pub type Params = [u32; 8];

/// Parameters and workgroup counts of each kernel, shared by the model and the one-shot runs.
pub mod shape {
    use super::*;

    /// `y[m, n] = x[m, k] · Wᵀ`.
    pub fn matmul(m: usize, n: usize, k: usize) -> (Params, (u32, u32, u32)) {
        matmul_at(m, n, k, 0, 0)
    }
    /// [`matmul`] with row r of the product from row `x_row0 + r` of x, into row `y_row0 + r` of y.
    /// The workgroups are those of the kernel [`matmul_kernel`] picks for `m`.
    pub fn matmul_at(m: usize, n: usize, k: usize, x_row0: usize, y_row0: usize) -> (Params, (u32, u32, u32)) {
        let p = [m as u32, n as u32, k as u32, y_row0 as u32, x_row0 as u32, 0, 0, 0];
        if m == 1 {
            let groups = n.div_ceil(MATVEC_COLS);
            let x = groups.min(MAX_GROUPS);
            return (p, (x as u32, groups.div_ceil(x.max(1)) as u32, 1));
        }
        (p, (n.div_ceil(MATMUL_COLS) as u32, m.div_ceil(MATMUL_ROWS) as u32, 1))
    }
    pub fn rmsnorm(rows: usize, d: usize, eps: f32) -> (Params, (u32, u32, u32)) {
        ([rows as u32, d as u32, eps.to_bits(), 0, 0, 0, 0, 0], (rows as u32, 1, 1))
    }
    /// `tokens` rows from row `row0` of x: sequences of `seq` rows each, row t of a sequence at
    /// position `pos0 + t`.
    pub fn rope(tokens: usize, heads: usize, head_dim: usize, pos0: usize, seq: usize, row0: usize) -> (Params, (u32, u32, u32)) {
        let n = tokens * heads * head_dim / 2;
        ([tokens as u32, heads as u32, head_dim as u32, pos0 as u32, seq.max(1) as u32, row0 as u32, 0, 0], (n.div_ceil(64) as u32, 1, 1))
    }
    /// `tokens` query rows (sequences of `seq` rows each) after `past` cached positions shared by
    /// every sequence; k and v hold those `past` rows, then each sequence's `seq` rows in order.
    pub fn attention(tokens: usize, heads: usize, kv_heads: usize, past: usize, seq: usize) -> (Params, (u32, u32, u32)) {
        ([tokens as u32, heads as u32, kv_heads as u32, past as u32, seq.max(1) as u32, 0, 0, 0], (heads as u32, tokens as u32, 1))
    }
    /// Elementwise kernels (silu·mul, add): 256 per workgroup, spread over y past 65,535.
    pub fn elementwise(len: usize) -> (Params, (u32, u32, u32)) {
        let groups = len.div_ceil(256);
        let x = groups.min(MAX_GROUPS);
        ([len as u32, 0, 0, 0, 0, 0, 0, 0], (x as u32, groups.div_ceil(x.max(1)) as u32, 1))
    }
}

/// Checks that the matmul inputs fit: `k` whole blocks, `n × k/32` blocks of bytes.
pub fn check_matmul(quant: Quant, w: &[u8], n: usize, k: usize) -> Result<()> {
    if !k.is_multiple_of(32) {
        return Err(Error::Gpu(format!("matmul width {k} is not a multiple of the block size 32")));
    }
    let need = n * k / 32 * quant.block_bytes();
    if w.len() != need {
        return Err(Error::Gpu(format!("{quant:?} weight of {} bytes, [{n}, {k}] needs {need}", w.len())));
    }
    Ok(())
}

impl Gpu {
    /// Runs `kernel` once: uploads `inputs` (bindings 1…), allocates `out_len` f32 values for the
    /// last binding (unless `in_place`, when the result is read from input 0), one submit.
    async fn run_once(
        &self,
        kernel: &Kernel,
        params: Params,
        wg: (u32, u32, u32),
        inputs: &[&[u8]],
        out_len: usize,
        in_place: bool,
    ) -> Result<Vec<f32>> {
        let params = self.params(params);
        let bufs: Vec<wgpu::Buffer> = inputs
            .iter()
            .enumerate()
            .map(|(i, b)| self.upload(&format!("input {i}"), b, wgpu::BufferUsages::COPY_SRC))
            .collect();
        let out = if in_place { None } else { Some(self.storage("output", out_len)) };
        let mut all: Vec<&wgpu::Buffer> = vec![&params];
        all.extend(bufs.iter());
        if let Some(o) = &out {
            all.push(o);
        }
        let group = kernel.bind(&self.device, &all);
        let result = out.as_ref().unwrap_or(&bufs[0]);
        let staging = self.staging(out_len);
        let mut enc = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("one kernel") });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
            kernel.dispatch(&mut pass, &group, wg);
        }
        enc.copy_buffer_to_buffer(result, 0, &staging, 0, (out_len * 4) as u64);
        self.queue.submit([enc.finish()]);
        self.read_staging(&staging, out_len).await
    }

    /// `x[m, k] · W[n, k]ᵀ` with `w` the raw GGUF blocks of W.
    pub async fn run_matmul(&self, quant: Quant, w: &[u8], x: &[f32], m: usize, n: usize, k: usize) -> Result<Vec<f32>> {
        check_matmul(quant, w, n, k)?;
        check_len("x", x.len(), m * k)?;
        let (p, wg) = shape::matmul(m, n, k);
        self.run_once(self.kernels.matmul(quant, m), p, wg, &[w, bytemuck::cast_slice(x)], m * n, false).await
    }

    /// RMSNorm of each row of `x` (`[rows, weight.len()]`).
    pub async fn run_rmsnorm(&self, x: &[f32], weight: &[f32], eps: f32) -> Result<Vec<f32>> {
        let d = weight.len();
        if d == 0 || !x.len().is_multiple_of(d) {
            return Err(Error::Gpu(format!("rmsnorm of {} values by a weight of {d}", x.len())));
        }
        let (p, wg) = shape::rmsnorm(x.len() / d, d, eps);
        let inputs: &[&[u8]] = &[bytemuck::cast_slice(x), bytemuck::cast_slice(weight)];
        self.run_once(&self.kernels.rmsnorm, p, wg, inputs, x.len(), false).await
    }

    /// Interleaved RoPE of `x` (`[tokens, heads, head_dim]`) at positions `pos0…`, with tables
    /// `cos`/`sin` of `[positions, head_dim / 2]`.
    pub async fn run_rope(&self, x: &[f32], heads: usize, head_dim: usize, pos0: usize, cos: &[f32], sin: &[f32]) -> Result<Vec<f32>> {
        let tokens = x.len() / (heads * head_dim);
        check_len("x", x.len(), tokens * heads * head_dim)?;
        if (pos0 + tokens) * head_dim / 2 > cos.len().min(sin.len()) {
            return Err(Error::Gpu("rope tables are shorter than the positions".into()));
        }
        let (p, wg) = shape::rope(tokens, heads, head_dim, pos0, tokens, 0);
        let inputs: &[&[u8]] = &[bytemuck::cast_slice(x), bytemuck::cast_slice(cos), bytemuck::cast_slice(sin)];
        self.run_once(&self.kernels.rope, p, wg, inputs, x.len(), true).await
    }

    /// Causal GQA: `q` `[t, heads, 64]`, sequences of `seq` rows after `past` shared positions;
    /// `k`/`v` `[past + t, kv_heads, 64]` (the shared rows, then each sequence's).
    #[allow(clippy::too_many_arguments)]
    pub async fn run_attention(&self, q: &[f32], k: &[f32], v: &[f32], heads: usize, kv_heads: usize, past: usize, seq: usize) -> Result<Vec<f32>> {
        let hd = ATTENTION_HEAD_DIM;
        if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
            return Err(Error::Gpu(format!("{heads} heads do not group over {kv_heads} kv heads")));
        }
        let t = q.len() / (heads * hd);
        check_len("q", q.len(), t * heads * hd)?;
        check_len("k", k.len(), (past + t) * kv_heads * hd)?;
        check_len("v", v.len(), (past + t) * kv_heads * hd)?;
        if seq == 0 || !t.is_multiple_of(seq) {
            return Err(Error::Gpu(format!("{t} query rows are not sequences of {seq}")));
        }
        let (p, wg) = shape::attention(t, heads, kv_heads, past, seq);
        let inputs: &[&[u8]] = &[bytemuck::cast_slice(q), bytemuck::cast_slice(k), bytemuck::cast_slice(v)];
        self.run_once(&self.kernels.attention, p, wg, inputs, q.len(), false).await
    }

    /// `silu(gate) * up`.
    pub async fn run_silu_mul(&self, gate: &[f32], up: &[f32]) -> Result<Vec<f32>> {
        check_len("up", up.len(), gate.len())?;
        let (p, wg) = shape::elementwise(gate.len());
        let inputs: &[&[u8]] = &[bytemuck::cast_slice(gate), bytemuck::cast_slice(up)];
        self.run_once(&self.kernels.silu_mul, p, wg, inputs, gate.len(), false).await
    }

    /// `h + y`.
    pub async fn run_add(&self, h: &[f32], y: &[f32]) -> Result<Vec<f32>> {
        check_len("y", y.len(), h.len())?;
        let (p, wg) = shape::elementwise(h.len());
        let inputs: &[&[u8]] = &[bytemuck::cast_slice(h), bytemuck::cast_slice(y)];
        self.run_once(&self.kernels.add, p, wg, inputs, h.len(), true).await
    }
}

fn check_len(name: &str, got: usize, want: usize) -> Result<()> {
    if got != want || want == 0 {
        return Err(Error::Gpu(format!("{name} has {got} values, expected {want} (non-zero)")));
    }
    Ok(())
}

