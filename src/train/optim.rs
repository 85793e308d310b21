//! AdamW with linear warm-up and cosine decay, with its state exposed so that a run can be
//! checkpointed and resumed exactly.

use candle_core::{Tensor, Var};

use crate::error::Result;

/// Learning rate at `step` of `total`: linear warm-up over `warmup` steps, then cosine decay to
/// `min_ratio` × peak.
pub fn schedule(step: usize, total: usize, warmup: usize, peak: f64, min_ratio: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup.max(1) as f64;
    }
    let span = total.saturating_sub(warmup).max(1);
    let progress = ((step - warmup) as f64 / span as f64).min(1.0);
    let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
    peak * (min_ratio + (1.0 - min_ratio) * cosine)
}

pub struct AdamW {
    pub params: Vec<Var>,
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
    pub step: usize,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl AdamW {
    pub fn new(params: Vec<Var>, weight_decay: f64) -> Result<Self> {
        let m = params.iter().map(|p| p.zeros_like()).collect::<candle_core::Result<Vec<_>>>()?;
        let v = m.clone();
        Ok(Self { params, m, v, step: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay })
    }

    /// One update with learning rate `lr` from the gradients in `grads`.
    pub fn step(&mut self, grads: &candle_core::backprop::GradStore, lr: f64) -> Result<()> {
        let grads: Vec<Option<Tensor>> = self.params.iter().map(|p| grads.get(p.as_tensor()).cloned()).collect();
        let lrs = vec![lr; self.params.len()];
        self.update(&grads, &lrs)
    }

    /// One update with one gradient and one learning rate per parameter, in order (a parameter
    /// at rate 0 keeps its value and its moments).
    pub fn step_each(&mut self, grads: &[Tensor], lrs: &[f64]) -> Result<()> {
        let grads: Vec<Option<Tensor>> = grads.iter().zip(lrs).map(|(g, &lr)| (lr != 0.0).then(|| g.clone())).collect();
        self.update(&grads, lrs)
    }

    fn update(&mut self, grads: &[Option<Tensor>], lrs: &[f64]) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let c1 = 1.0 - self.beta1.powi(t);
        let c2 = 1.0 - self.beta2.powi(t);
        for i in 0..self.params.len() {
            let p = &self.params[i];
            let lr = lrs[i];
            let Some(g) = &grads[i] else { continue };
            self.m[i] = ((&self.m[i] * self.beta1)? + (g * (1.0 - self.beta1))?)?;
            self.v[i] = ((&self.v[i] * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let m_hat = (&self.m[i] / c1)?;
            let v_hat = (&self.v[i] / c2)?;
            let update = (m_hat / (v_hat.sqrt()? + self.eps)?)?;
            let decayed = (p.as_tensor() * (1.0 - lr * self.weight_decay))?;
            p.set(&(decayed - (update * lr)?)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn schedule_warms_up_then_decays() {
        assert!((schedule(0, 100, 10, 1.0, 0.0) - 0.1).abs() < 1e-12);
        assert!((schedule(9, 100, 10, 1.0, 0.0) - 1.0).abs() < 1e-12);
        assert!((schedule(10, 100, 10, 1.0, 0.0) - 1.0).abs() < 1e-12);
        assert!(schedule(55, 100, 10, 1.0, 0.0) < 0.51 && schedule(55, 100, 10, 1.0, 0.0) > 0.49);
        assert!((schedule(100, 100, 10, 1.0, 0.1) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn minimises_a_quadratic() {
        let x = Var::from_vec(vec![3f32, -2.0], 2, &Device::Cpu).unwrap();
        let mut opt = AdamW::new(vec![x.clone()], 0.0).unwrap();
        for _ in 0..500 {
            let loss = x.as_tensor().sqr().unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            opt.step(&grads, 0.05).unwrap();
        }
        let v: Vec<f32> = x.as_tensor().to_vec1().unwrap();
        assert!(v.iter().all(|a| a.abs() < 0.05), "{v:?}");
    }
}
