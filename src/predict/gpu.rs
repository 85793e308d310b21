//! Predictions on the GPU backend (`--features gpu`): the same prompts, read-out and head as on
//! the CPU; only the forward pass runs in [`GpuLlama`]. As on the CPU, items that share
//! everything before their last input (template text, domain tags, a protein) share one prefix
//! pass: its keys and values stay in the GPU's KV cache and the items' suffixes run after it,
//! `batch_size` of them per pass, similar lengths together (`GpuLlama::forward_batch_at`). The
//! prefix is remembered across calls while the cache still holds it, so a caller feeding small
//! sub-batches (the page) runs it once.

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
        for (prefix_keys, mut members) in groups_in_order(prompts.iter().map(|(_, keys)| &keys[..split])) {
            let prefix = self.gpu_prefix(gpu, prefix_keys).await?;
            let past = self.len_of(prefix_keys);
            // Similar lengths together waste the least padding.
            members.sort_by_key(|&j| self.len_of(&prompts[j].1[split..]));
            for chunk in members.chunks(self.batch_size.max(1)) {
                let suffixes: Vec<&[Key]> = chunk.iter().map(|&j| &prompts[j].1[split..]).collect();
                let states = self.gpu_states(gpu, &suffixes, past).await?;
                for ((&j, suffix), hidden) in chunk.iter().zip(&suffixes).zip(states) {
                    let n = hidden.dim(0)?;
                    let input = self.head_input(&prefix, &[suffix], &hidden.unsqueeze(0)?, &[n])?;
                    results[prompts[j].0] = Ok(self.values(&input)?[0]);
                }
            }
        }
        Ok(results)
    }

    /// Final-norm states `[n_b, d]` of each of `rows` (keys), run in one pass after `past` cached
    /// positions.
    async fn gpu_states(&self, gpu: &mut GpuLlama, rows: &[&[Key]], past: usize) -> Result<Vec<Tensor>> {
        let d = self.model.llama.config.hidden;
        let xs = rows
            .iter()
            .map(|keys| Ok(self.model.llama.embed(&self.segments(keys))?.flatten_all()?.to_vec1::<f32>()?))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&[f32]> = xs.iter().map(Vec::as_slice).collect();
        let states = gpu.forward_batch_at(&refs, past).await?;
        states
            .into_iter()
            .map(|h| {
                let n = h.len() / d;
                Ok(Tensor::from_vec(h, (n, d), &Device::Cpu)?)
            })
            .collect()
    }

    /// The shared prefix `keys` on the GPU: run at position 0, unless the cache still holds it
    /// from this predictor's last call.
    async fn gpu_prefix(&self, gpu: &mut GpuLlama, keys: &[Key]) -> Result<Prefix> {
        if let Some((epoch, p)) = super::lock(&self.gpu_prefix).as_ref() {
            if *epoch == gpu.epoch() && p.keys == keys {
                return Ok(p.clone());
            }
        }
        let hidden = if keys.is_empty() { None } else { self.gpu_states(gpu, &[keys], 0).await?.pop() };
        let prefix = Prefix { keys: keys.to_vec(), cache: KvCache::new(), hidden };
        *super::lock(&self.gpu_prefix) = Some((gpu.epoch(), prefix.clone()));
        Ok(prefix)
    }

    /// [`Self::predict_gpu`], blocking (native only).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn predict_gpu_blocking(&self, gpu: &mut GpuLlama, items: &[Vec<String>]) -> Result<Vec<std::result::Result<f64, String>>> {
        crate::gpu::block_on(self.predict_gpu(gpu, items))
    }
}
