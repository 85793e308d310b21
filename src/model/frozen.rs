//! A linear layer whose weight is frozen, for training through the model.
//!
//! `Tensor::matmul`'s backward computes the gradient of *both* operands. For a frozen weight that
//! is wasted work and a weight-sized buffer per layer — and through candle's batched matmul
//! (the weight broadcast over the batch) one weight-sized buffer *per batch row*: a batch of 8
//! took 12 GB. This op multiplies as a 2-D GEMM and hands back only the input's gradient.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Storage, Tensor};

struct FrozenLinear {
    /// `[out, in]`, f32.
    weight: Tensor,
}

fn cpu_storage(t: &Tensor) -> candle_core::Result<CpuStorage> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(s) => {
            let v = s.as_slice::<f32>()?;
            let n = layout.shape().elem_count();
            Ok(CpuStorage::F32(v[layout.start_offset()..layout.start_offset() + n].to_vec()))
        }
        _ => candle_core::bail!("frozen linear runs on the CPU"),
    }
}

impl CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let Some((start, end)) = l.contiguous_offsets() else {
            candle_core::bail!("frozen linear: input must be contiguous")
        };
        let dims = l.shape().dims();
        let k = dims[dims.len() - 1];
        let rows = l.shape().elem_count() / k.max(1);
        let x = Tensor::from_slice(&s.as_slice::<f32>()?[start..end], (rows, k), &candle_core::Device::Cpu)?;
        let y = x.matmul(&self.weight.t()?)?;
        let mut out_dims = dims.to_vec();
        *out_dims.last_mut().unwrap_or(&mut 0) = self.weight.dims()[0];
        Ok((cpu_storage(&y)?, Shape::from(out_dims)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let out = self.weight.dims()[0];
        let g = grad_res.reshape(((), out))?.matmul(&self.weight)?;
        Ok(Some(g.reshape(arg.shape())?))
    }
}

/// `x · weightᵀ` over the last dimension, with a gradient for `x` only.
pub fn frozen_linear(x: &Tensor, weight: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(FrozenLinear { weight: weight.clone() })
}
