//! Predictions on the GPU backend (`--features gpu`): the same prompts, read-out and head as on
//! the CPU; only the forward pass runs in [`GpuLlama`]. As on the CPU, items that share
//! everything before their last input (template text, domain tags, a protein) share one prefix
//! pass: its keys and values stay in the GPU's KV cache and each item's suffix runs after it
//! (`GpuLlama::forward_at`). The prefix is remembered across calls while the cache still holds it,
//! so a caller feeding small sub-batches (the page) runs it once.

use candle_core::{Device, Tensor};

use super::{groups_in_order, Key, Prefix, Predictor};
use crate::error::Result;
use crate::gpu::GpuLlama;
use crate::model::KvCache;

impl Predictor<'_> {
    /// Predicts `items` with the forward pass on `gpu`: one result per item, in order; a bad item
    /// gets its error. `Err` when the GPU itself fails (device lost, out of memory): the caller
    /// may run the same items on the CPU ([`Self::predict`]).
    pub async fn predict_gpu(&self, gpu: &mut GpuLlama, items: &[Vec<String>]) -> Result<Vec<std::result::Result<f64, String>>> {
        let mut results = vec![Err(String::new()); items.len()];
        let mut prompts = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match self.prompt(item) {
                Ok(keys) => prompts.push((i, keys)),
                Err(e) => results[i] = Err(e),
            }
        }
        let split = self.input_keys.last().copied().unwrap_or(0);
        for (prefix_keys, members) in groups_in_order(prompts.iter().map(|(_, keys)| &keys[..split])) {
            let prefix = self.gpu_prefix(gpu, prefix_keys).await?;
            let past = self.len_of(prefix_keys);
            for j in members {
                let (i, keys) = &prompts[j];
                let suffix = &keys[split..];
                let (hidden, n) = self.gpu_states(gpu, suffix, past).await?;
                let input = self.head_input(&prefix, &[suffix], &hidden.unsqueeze(0)?, &[n])?;
                results[*i] = Ok(self.values(&input)?[0]);
            }
        }
        Ok(results)
    }

    /// Final-norm states `[n, d]` of `keys` run after `past` cached positions, and `n`.
    async fn gpu_states(&self, gpu: &mut GpuLlama, keys: &[Key], past: usize) -> Result<(Tensor, usize)> {
        let x = self.model.llama.embed(&self.segments(keys))?;
        let (n, d) = x.dims2()?;
        let hidden = gpu.forward_at(&x.flatten_all()?.to_vec1::<f32>()?, past).await?;
        Ok((Tensor::from_vec(hidden, (n, d), &Device::Cpu)?, n))
    }

    /// The shared prefix `keys` on the GPU: run at position 0, unless the cache still holds it
    /// from this predictor's last call.
    async fn gpu_prefix(&self, gpu: &mut GpuLlama, keys: &[Key]) -> Result<Prefix> {
        if let Some((epoch, p)) = self.gpu_prefix.borrow().as_ref() {
            if *epoch == gpu.epoch() && p.keys == keys {
                return Ok(p.clone());
            }
        }
        let hidden = if keys.is_empty() { None } else { Some(self.gpu_states(gpu, keys, 0).await?.0) };
        let prefix = Prefix { keys: keys.to_vec(), cache: KvCache::new(), hidden };
        *self.gpu_prefix.borrow_mut() = Some((gpu.epoch(), prefix.clone()));
        Ok(prefix)
    }

    /// [`Self::predict_gpu`], blocking (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn predict_gpu_blocking(&self, gpu: &mut GpuLlama, items: &[Vec<String>]) -> Result<Vec<std::result::Result<f64, String>>> {
        crate::gpu::block_on(self.predict_gpu(gpu, items))
    }
}
