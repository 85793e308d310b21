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
        let x = Tensor::from_slice(&s.as_slice::<f32>()?[start..end], l.shape(), &candle_core::Device::Cpu)?;
        let y = matmul_rows(&x, &self.weight)?;
        Ok((cpu_storage(&y)?, y.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let out = self.weight.dims()[0];
        let g = grad_res.reshape(((), out))?.matmul(&self.weight)?;
        Ok(Some(g.reshape(arg.shape())?))
    }
}

/// `x · weightᵀ` over the last dimension of `x` `[.., k]` as one 2-D product of all its rows
/// (candle's batched matmul would multiply once per leading index, packing the weight each time).
pub(super) fn matmul_rows(x: &Tensor, weight: &Tensor) -> candle_core::Result<Tensor> {
    let dims = x.dims();
    let k = dims.last().copied().unwrap_or(0);
    let y = x.reshape(((), k))?.matmul(&weight.t()?)?;
    let mut out = dims.to_vec();
    *out.last_mut().unwrap_or(&mut 0) = weight.dims()[0];
    y.reshape(out)
}

/// `x · weightᵀ` over the last dimension, with a gradient for `x` only.
pub fn frozen_linear(x: &Tensor, weight: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1(FrozenLinear { weight: weight.clone() })
}
