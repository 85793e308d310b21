//! The WebGPU backend (`--features gpu`): the Llama forward pass as WGSL compute shaders run
//! through wgpu — natively on Vulkan (Mesa's lavapipe where there is no GPU), in the browser on
//! WebGPU.
//!
//! ```text
//! Llama::embed (CPU: token rows + spliced tags) ──upload──▶ h [n, d]
//!   30 × (rmsnorm → Q/K/V matmul (Q4_1 dequantised in the shader) → rope → attention
//!         → output matmul → add → rmsnorm → gate/up matmul → silu·mul → down matmul → add)
//!   final rmsnorm ──read back──▶ hidden states [n, d]
//! ```
//!
//! - [`Gpu`]: adapter, device, queue and the compiled kernels (one shader file each, in
//!   `src/gpu/shaders/`).
//! - [`kernels`]: each kernel recorded into a compute pass, and one-shot runs of each on host
//!   data (what the parity tests compare against CPU references).
//! - [`GpuLlama`]: the model's raw GGUF block bytes uploaded once as u32 words, buffers per
//!   sequence length allocated once and reused, the whole forward pass recorded into one command
//!   encoder and submitted once.
//!
//! It keeps a KV cache (a shared prompt prefix runs once), runs many inputs per pass
//! ([`GpuLlama::forward_batch_at`]) and generates text ([`GpuLlama::generate`]: one pass per token
//! on the cache), all in f32 with no optional WebGPU feature required. Where the device has
//! subgroups (natively), the matrix–vector kernels reduce by subgroup shuffles; `shader-f16` is
//! not used, so that predictions stay within 1e-4 of the CPU path's (ARCHITECTURE.md).

pub mod kernels;
pub mod llama;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

pub use kernels::Kernels;
pub use llama::GpuLlama;

use crate::error::{Error, Result};

/// A device and queue with the compiled kernels.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub kernels: Kernels,
    /// The optional features the kernels use: subgroup operations (wgpu offers them natively on
    /// Vulkan, Metal and DX12; its browser backend does not yet).
    pub subgroups: bool,
    /// The first error the device reported outside any call (validation, out of memory) or why
    /// it was lost; once set, every later read fails with it (wgpu's default would panic).
    fault: Arc<Mutex<Option<String>>>,
}

impl Gpu {
    /// Requests an adapter (high performance preferred) and a device with the adapter's limits
    /// and the optional features the kernels can use where it has them.
    pub async fn new() -> Result<Self> {
        Self::with_features(true).await
    }

    /// [`Self::new`]; `optional`: false asks for no optional feature (the WebGPU core, as on an
    /// adapter without them: the tests run both variants of a kernel on one adapter).
    pub async fn with_features(optional: bool) -> Result<Self> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                force_fallback_adapter: false,
                compatible_surface: None,
                ..Default::default()
            })
            .await
            .map_err(|e| {
                Error::Gpu(if cfg!(target_arch = "wasm32") {
                    format!("this browser offers no WebGPU adapter ({e})")
                } else {
                    format!(
                        "no GPU adapter ({e}); install a Vulkan driver (e.g. apt-get install \
                         mesa-vulkan-drivers for the software one)"
                    )
                })
            })?;
        let info = adapter.get_info();
        // The matrix–vector kernels' shuffles need a column's 8 invocations in one subgroup.
        let subgroups = optional && adapter.features().contains(wgpu::Features::SUBGROUP) && info.subgroup_min_size >= 8;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("tagllm"),
                required_features: if subgroups { wgpu::Features::SUBGROUP } else { wgpu::Features::empty() },
                required_limits: adapter.limits(),
                experimental_features: wgpu::ExperimentalFeatures::default(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| Error::Gpu(format!("cannot open the GPU device {:?}: {e}", info.name)))?;
        let fault: Arc<Mutex<Option<String>>> = Arc::default();
        let record = |fault: &Arc<Mutex<Option<String>>>, what: String| {
            let mut f = fault.lock().unwrap_or_else(|e| e.into_inner());
            f.get_or_insert(what);
        };
        let f = fault.clone();
        device.on_uncaptured_error(Arc::new(move |e| record(&f, format!("GPU error: {e}"))));
        let f = fault.clone();
        device.set_device_lost_callback(move |reason, message| {
            let detail = if message.is_empty() { String::new() } else { format!(": {message}") };
            record(&f, format!("the GPU device was lost ({reason:?}){detail}"))
        });
        let kernels = Kernels::new(&device, subgroups);
        Ok(Self { device, queue, info, kernels, subgroups, fault })
    }

    /// The error the device reported, if any: the device is no longer usable.
    pub fn fault(&self) -> Option<String> {
        self.fault.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Destroys the device, as a driver reset or a lost GPU would (fault-injection for tests).
    pub fn lose_device(&self) {
        self.device.destroy();
    }

    /// [`Self::new`], blocking (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_blocking() -> Result<Self> {
        block_on(Self::new())
    }

    /// A one-line description of the adapter, e.g. `llvmpipe (LLVM 19.1.7, 256 bits); software,
    /// Vulkan, subgroups` (the optional features in use last; browsers may give no name).
    pub fn describe(&self) -> String {
        let name = if self.info.name.is_empty() { "unnamed adapter" } else { &self.info.name };
        let kind = match self.info.device_type {
            wgpu::DeviceType::Cpu => "software",
            wgpu::DeviceType::DiscreteGpu => "discrete GPU",
            wgpu::DeviceType::IntegratedGpu => "integrated GPU",
            wgpu::DeviceType::VirtualGpu => "virtual GPU",
            wgpu::DeviceType::Other => "GPU",
        };
        let backend = match self.info.backend {
            wgpu::Backend::BrowserWebGpu => "browser WebGPU".to_string(),
            other => format!("{other:?}"),
        };
        let features = if self.subgroups { ", subgroups" } else { "" };
        format!("{name}; {kind}, {backend}{features}")
    }

    /// A software adapter (lavapipe, SwiftShader: the browser's fallback adapter): correct, but
    /// slower than the CPU path.
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// A storage buffer holding `bytes` (padded with zeros to whole 4-byte words).
    pub fn upload(&self, label: &str, bytes: &[u8], extra: wgpu::BufferUsages) -> wgpu::Buffer {
        let size = (bytes.len().div_ceil(4) * 4).max(4) as u64;
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | extra,
            mapped_at_creation: true,
        });
        {
            let mut view = buffer.slice(..).get_mapped_range_mut().expect("buffer mapped at creation");
            let mut dst = view.slice(..bytes.len());
            dst.copy_from_slice(bytes);
        }
        buffer.unmap();
        buffer
    }

    /// A storage buffer of f32 values.
    pub fn upload_f32(&self, label: &str, values: &[f32]) -> wgpu::Buffer {
        self.upload(label, bytemuck::cast_slice(values), wgpu::BufferUsages::COPY_SRC)
    }

    /// An uninitialised (zeroed) f32 storage buffer of `len` values.
    pub fn storage(&self, label: &str, len: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (len.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        })
    }

    /// A uniform buffer of eight 32-bit words (every kernel's parameters).
    pub fn params(&self, words: kernels::Params) -> wgpu::Buffer {
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("params"),
            size: std::mem::size_of::<kernels::Params>() as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.queue.write_buffer(&buffer, 0, bytemuck::cast_slice(&words));
        buffer
    }

    /// A buffer to copy results into and map for reading.
    pub fn staging(&self, len: usize) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("staging"),
            size: (len.max(1) * 4) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Reads `len` f32 values from a mapped-readable `staging` buffer after the work that fills
    /// it has been submitted.
    pub async fn read_staging(&self, staging: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        let slot = Arc::new(Mutex::new(MapSlot::default()));
        let cb_slot = slot.clone();
        let bytes = (len.max(1) * 4) as u64;
        staging.map_async(wgpu::MapMode::Read, 0..bytes, move |r| {
            let mut s = cb_slot.lock().unwrap_or_else(|e| e.into_inner());
            s.result = Some(r.map_err(|e| e.to_string()));
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))?;
        if let Some(fault) = self.fault() {
            return Err(Error::Gpu(fault));
        }
        MapFuture(slot).await.map_err(|e| Error::Gpu(self.fault().unwrap_or(format!("cannot read results back: {e}"))))?;
        if let Some(fault) = self.fault() {
            return Err(Error::Gpu(fault));
        }
        let out = {
            let view = staging
                .get_mapped_range(0..bytes)
                .map_err(|e| Error::Gpu(format!("cannot read results back: {e}")))?;
            bytemuck::cast_slice::<u8, f32>(&view)[..len].to_vec()
        };
        staging.unmap();
        Ok(out)
    }

    /// Copies `len` f32 values of `buffer` to the CPU (one submit).
    pub async fn read(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        let staging = self.staging(len);
        let mut enc = self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("read") });
        enc.copy_buffer_to_buffer(buffer, 0, &staging, 0, (len.max(1) * 4) as u64);
        self.queue.submit([enc.finish()]);
        self.read_staging(&staging, len).await
    }
}

#[derive(Default)]
struct MapSlot {
    result: Option<std::result::Result<(), String>>,
    waker: Option<Waker>,
}

/// Resolves when a `map_async` callback has stored its result.
struct MapFuture(Arc<Mutex<MapSlot>>);

impl Future for MapFuture {
    type Output = std::result::Result<(), String>;
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match s.result.take() {
            Some(r) => Poll::Ready(r),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Runs a future to completion on this thread. Natively wgpu's futures are ready once the
/// device has been polled (which [`Gpu::read_staging`] does), so this spins only briefly.
#[cfg(not(target_arch = "wasm32"))]
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}
