//! Predictions on the GPU backend (`--features gpu`): the same prompts, read-out and head as on
//! the CPU; only the forward pass runs in [`GpuLlama`]. Each prompt runs whole (no prefix reuse
//! or batching on the GPU yet), so the result does not depend on how items are grouped.

use candle_core::{Device, Tensor};

use super::{Prefix, Predictor};
use crate::error::Result;
use crate::gpu::GpuLlama;

impl Predictor<'_> {
    /// Predicts `items` with the forward pass on `gpu`: one result per item, in order; a bad item
    /// gets its error. `Err` when the GPU itself fails (device lost, out of memory): the caller
    /// may run the same items on the CPU ([`Self::predict`]).
    pub async fn predict_gpu(&self, gpu: &mut GpuLlama, items: &[Vec<String>]) -> Result<Vec<std::result::Result<f64, String>>> {
        let mut results = Vec::with_capacity(items.len());
        for item in items {
            let keys = match self.prompt(item) {
                Ok(keys) => keys,
                Err(e) => {
                    results.push(Err(e));
                    continue;
                }
            };
            let x = self.model.llama.embed(&self.segments(&keys))?;
            let (n, d) = x.dims2()?;
            let hidden = gpu.forward(&x.flatten_all()?.to_vec1::<f32>()?).await?;
            let hidden = Tensor::from_vec(hidden, (1, n, d), &Device::Cpu)?;
            let input = self.head_input(&Prefix::empty(), &[&keys], &hidden, &[n])?;
            results.push(Ok(self.values(&input)?[0]));
        }
        Ok(results)
    }

    /// [`Self::predict_gpu`], blocking (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn predict_gpu_blocking(&self, gpu: &mut GpuLlama, items: &[Vec<String>]) -> Result<Vec<std::result::Result<f64, String>>> {
        crate::gpu::block_on(self.predict_gpu(gpu, items))
    }
}
