//! The "no tag" ablation: the same prompt with every tag removed, and a ridge-regression head on
//! the final-norm hidden state at the prompt's last position, fitted in closed form (the best
//! linear read-out of the frozen model for that prompt). What a tag adds is measured against it.

use super::Example;
use crate::error::{Error, Result};
use crate::metrics::{regression_metrics, RegressionMetrics};
use crate::model::{KvCache, Llama, Mode, Model, Segment};
use crate::predict::render_input;
use crate::tags::{InputType, Piece, Readout, Template};
use candle_core::{IndexOp, Tensor};

/// Ablation result: test metrics and the ridge strength chosen on validation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProbeReport {
    pub test: RegressionMetrics,
    pub lambda: f64,
    pub train_examples: usize,
}

/// Hidden states `[n, d]` (f64 rows) at the last position of each item's tag-free prompt,
/// followed with [`Readout::LastAndInputMeans`] by the mean state over each input's tokens —
/// the same read-out a tag's head gets.
/// A tag-free prompt: tokens before its last input, the rest, each input's (start, length), target.
type SplitPrompt = (Vec<u32>, Vec<u32>, Vec<(usize, usize)>, f64);

/// Also returns the index in `items` of each row (invalid inputs are left out).
fn features(model: &Model, template: &Template, kinds: &[InputType], readout: Readout, items: &[Example], batch: usize) -> Result<(Vec<Vec<f64>>, Vec<f64>, Vec<usize>)> {
    let tok = &model.tokenizer;
    // Each prompt as (tokens before its last input, the rest, input spans, target). Prompts that
    // agree before their last input (one protein, many molecules) share that prefix's pass.
    let mut prompts: Vec<SplitPrompt> = Vec::new();
    let mut kept = Vec::new();
    let last_input = template.pieces.iter().rposition(|p| matches!(p, Piece::Input { .. })).unwrap_or(0);
    'items: for (index, e) in items.iter().enumerate() {
        let (mut prefix, mut suffix, mut spans) = (Vec::new(), Vec::new(), Vec::new());
        let mut slot = 0;
        for (k, piece) in template.pieces.iter().enumerate() {
            let ids = match piece {
                Piece::Text(t) => tok.encode(t)?,
                Piece::Tag(_) => continue,
                Piece::Input { lead, .. } => {
                    let Ok(text) = render_input(kinds[slot], &e.inputs[slot]) else { continue 'items };
                    slot += 1;
                    let ids = tok.encode(&format!("{lead}{text}"))?;
                    spans.push((prefix.len() + suffix.len(), ids.len()));
                    ids
                }
            };
            if k < last_input { prefix.extend(ids) } else { suffix.extend(ids) }
        }
        prompts.push((prefix, suffix, spans, e.target));
        kept.push(index);
    }
    let groups = crate::predict::groups_in_order(prompts.iter().map(|p| p.0.as_slice()));
    let mut rows: Vec<Vec<f64>> = vec![Vec::new(); prompts.len()];
    for (prefix, mut members) in groups {
        // Similar lengths together: a chunk is padded to its longest prompt (proteins run from
        // tens to a thousand residues).
        members.sort_by_key(|&j| prompts[j].1.len());
        let mut cache = KvCache::new();
        let prefix_hidden = if prefix.is_empty() {
            None
        } else {
            let x = model.llama.embed(&[Segment::Tokens(prefix.to_vec())])?.unsqueeze(0)?;
            Some(model.llama.forward(&x, &mut cache, Mode::Infer)?.squeeze(0)?)
        };
        let plen = prefix.len();
        for chunk in members.chunks(batch.max(1)) {
            let segs: Vec<Vec<Segment>> = chunk.iter().map(|&j| vec![Segment::Tokens(prompts[j].1.clone())]).collect();
            let (x, lens) = model.llama.embed_batch(&segs)?;
            let h = model.llama.forward(&x, &mut cache.clone(), Mode::Infer)?;
            let last: Vec<usize> = lens.iter().map(|l| l - 1).collect();
            let mut f = Llama::gather_positions(&h, &last)?;
            if readout == Readout::LastAndInputMeans {
                let mut parts = vec![f];
                for k in 0..prompts[chunk[0]].2.len() {
                    let means = chunk
                        .iter()
                        .enumerate()
                        .map(|(i, &j)| {
                            let (at, len) = prompts[j].2[k];
                            match &prefix_hidden {
                                Some(ph) if at < plen => ph.narrow(0, at, len)?.mean_keepdim(0),
                                _ => h.i(i)?.narrow(0, at - plen, len)?.mean_keepdim(0),
                            }
                        })
                        .collect::<candle_core::Result<Vec<_>>>()?;
                    parts.push(Tensor::cat(&means, 0)?);
                }
                f = Tensor::cat(&parts, 1)?;
            }
            let f: Vec<Vec<f32>> = f.to_vec2()?;
            for (&j, r) in chunk.iter().zip(f) {
                rows[j] = r.into_iter().map(f64::from).collect();
            }
        }
    }
    let targets = prompts.iter().map(|p| p.3).collect();
    Ok((rows, targets, kept))
}

/// Solves `a x = b` (a symmetric positive definite, n × n, row-major) by Cholesky.
pub(crate) fn solve_spd(a: &[f64], b: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            if i == j {
                let d = a[i * n + i] - s;
                if d <= 0.0 {
                    return None;
                }
                l[i * n + i] = d.sqrt();
            } else {
                l[i * n + j] = (a[i * n + j] - s) / l[j * n + j];
            }
        }
    }
    let mut y = vec![0.0; n];
    for i in 0..n {
        y[i] = (b[i] - (0..i).map(|k| l[i * n + k] * y[k]).sum::<f64>()) / l[i * n + i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        x[i] = (y[i] - (i + 1..n).map(|k| l[k * n + i] * x[k]).sum::<f64>()) / l[i * n + i];
    }
    Some(x)
}

/// The head fitting of a function tag's ridge start, shared with the fair ablation: every fourth
/// row (`i % 4 == 3`) is held out to choose the penalty (per input block, [`fit_ridge`]), then the
/// head is fitted on every row with that penalty grown by the rows it now covers. Returns the
/// fit on every row and the penalty for `rows` rows.
pub fn fit_ridge_holdout(x: &[Vec<f64>], y: &[f64], block: Option<usize>) -> Result<Ridge> {
    let held = |i: usize| i % 4 == 3;
    let split = |keep: bool| -> (Vec<Vec<f64>>, Vec<f64>) { (0..x.len()).filter(|&i| held(i) != keep).map(|i| (x[i].clone(), y[i])).unzip() };
    let ((xf, yf), (xh, yh)) = (split(true), split(false));
    let chosen = fit_ridge(&xf, &yf, &xh, &yh, block)?;
    // The penalty was chosen for the fit's rows; it grows with the rows it is applied to.
    let lambda = chosen.lambda * x.len() as f64 / xf.len().max(1) as f64;
    Ok(ridge_with(x, y, lambda, &chosen.penalty).unwrap_or(chosen))
}

/// Fits the ablation on `train` and reports on `test`, with each valid test row's prediction
/// (row index, value). The ridge strength is chosen on `valid`,
/// or, when `valid` is empty, exactly as a function tag's ridge start chooses it
/// ([`fit_ridge_holdout`]: the same head fitting, for a fair comparison).
pub fn no_tag_probe(
    model: &Model,
    template: &Template,
    kinds: &[InputType],
    readout: Readout,
    train: &[Example],
    valid: &[Example],
    test: &[Example],
) -> Result<(ProbeReport, Vec<(usize, f64)>)> {
    let batch = 16;
    let (xt, yt, _) = features(model, template, kinds, readout, train, batch)?;
    let (xs, ys, kept) = features(model, template, kinds, readout, test, batch)?;
    if xt.is_empty() {
        return Err(Error::Usage("no valid training example for the probe".into()));
    }
    let block = Some(model.llama.config.hidden);
    let fit = if valid.is_empty() {
        fit_ridge_holdout(&xt, &yt, block)?
    } else {
        let (xv, yv, _) = features(model, template, kinds, readout, valid, batch)?;
        fit_ridge(&xt, &yt, &xv, &yv, block)?
    };
    let pred = fit.predict(&xs);
    let report = ProbeReport { test: regression_metrics(&pred, &ys), lambda: fit.lambda, train_examples: xt.len() };
    Ok((report, kept.into_iter().zip(pred).collect()))
}

/// A linear read-out `y = mean_y + (x − mean_x) · w`, fitted with the per-feature penalty
/// `lambda × penalty[i]` (`penalty`: the multiplier of each feature's input block).
pub struct Ridge {
    pub mean_x: Vec<f64>,
    pub mean_y: f64,
    pub w: Vec<f64>,
    pub lambda: f64,
    pub penalty: Vec<f64>,
}

impl Ridge {
    pub fn predict(&self, x: &[Vec<f64>]) -> Vec<f64> {
        x.iter()
            .map(|r| self.mean_y + r.iter().zip(&self.mean_x).zip(&self.w).map(|((a, m), w)| (a - m) * w).sum::<f64>())
            .collect()
    }
    /// The same map as weights and bias on the raw features.
    pub fn weights_and_bias(&self) -> (Vec<f64>, f64) {
        let shift: f64 = self.mean_x.iter().zip(&self.w).map(|(m, w)| m * w).sum();
        (self.w.clone(), self.mean_y - shift)
    }
    /// Each feature's penalty, `lambda × penalty[i]`.
    pub fn penalties(&self) -> Vec<f64> {
        self.penalty.iter().map(|m| m * self.lambda).collect()
    }
}

/// The centred normal equations of rows `x` with targets `y`: means, `XᵀX` (full), `Xᵀy`.
struct Normal {
    mean_x: Vec<f64>,
    mean_y: f64,
    gram: Vec<f64>,
    xty: Vec<f64>,
}

impl Normal {
    fn of(x: &[Vec<f64>], y: &[f64]) -> Self {
        let d = x[0].len();
        let n = x.len() as f64;
        let mean_x: Vec<f64> = (0..d).map(|j| x.iter().map(|r| r[j]).sum::<f64>() / n).collect();
        let mean_y = y.iter().sum::<f64>() / n;
        let mut gram = vec![0.0; d * d];
        let mut xty = vec![0.0; d];
        for (r, t) in x.iter().zip(y) {
            let c: Vec<f64> = r.iter().zip(&mean_x).map(|(a, m)| a - m).collect();
            for i in 0..d {
                xty[i] += c[i] * (t - mean_y);
                for j in 0..=i {
                    gram[i * d + j] += c[i] * c[j];
                }
            }
        }
        for i in 0..d {
            for j in 0..i {
                gram[j * d + i] = gram[i * d + j];
            }
        }
        Self { mean_x, mean_y, gram, xty }
    }

    fn solve(&self, lambda: f64, penalty: &[f64]) -> Option<Ridge> {
        let d = self.xty.len();
        let mut a = self.gram.clone();
        for i in 0..d {
            a[i * d + i] += lambda * penalty[i];
        }
        let w = solve_spd(&a, &self.xty, d)?;
        Some(Ridge { mean_x: self.mean_x.clone(), mean_y: self.mean_y, w, lambda, penalty: penalty.to_vec() })
    }
}

/// Ridge with a given penalty on every row of `x`.
fn ridge_with(x: &[Vec<f64>], y: &[f64], lambda: f64, penalty: &[f64]) -> Option<Ridge> {
    if x.is_empty() {
        return None;
    }
    Normal::of(x, y).solve(lambda, penalty)
}

/// Ridge regression in closed form; the strength is chosen on `(xv, yv)` from a grid scaled to
/// the features (or on the training data itself when no validation rows are given). `block`:
/// the width of the read-out's blocks (the last state, then one mean state per input).
pub fn fit_ridge(xt: &[Vec<f64>], yt: &[f64], xv: &[Vec<f64>], yv: &[f64], block: Option<usize>) -> Result<Ridge> {
    if xt.is_empty() {
        return Err(Error::Usage("no rows to fit".into()));
    }
    let d = xt[0].len();
    let normal = Normal::of(xt, yt);
    let scale = (0..d).map(|i| normal.gram[i * d + i]).sum::<f64>() / d as f64;
    let (xv, yv) = if xv.is_empty() { (xt, yt) } else { (xv, yv) };
    // Penalty multipliers per block of `block` features: the last state, then each input's mean
    // state. With two inputs, the features that carry an input seen only a hundred times
    // (proteins) can need a stronger penalty than the rest, so each block gets its own
    // multiplier from {1, 10, 100} (the smallest 1: the strength grid does the rest); otherwise
    // one strength serves all.
    let blocks = block.filter(|&w| w > 0 && d.is_multiple_of(w) && d / w >= 3).map_or(1, |w| d / w);
    let width = if blocks > 1 { d / blocks } else { d };
    let mut combos: Vec<Vec<f64>> = vec![vec![1.0; blocks]];
    for b in 0..blocks {
        combos = combos
            .into_iter()
            .flat_map(|c| [1.0, 10.0, 100.0].map(|m| {
                let mut c = c.clone();
                c[b] = m;
                c
            }))
            .collect();
    }
    combos.retain(|c| c.contains(&1.0));
    let mut best: Option<(f64, Ridge)> = None;
    for mults in &combos {
        let penalty: Vec<f64> = (0..d).map(|i| mults[i / width]).collect();
        for exp in -4..=3 {
            let lambda = scale.max(1e-12) * 10f64.powi(exp);
            let Some(fit) = normal.solve(lambda, &penalty) else { continue };
            let mse = regression_metrics(&fit.predict(xv), yv).mse;
            if best.as_ref().is_none_or(|b| mse < b.0) {
                best = Some((mse, fit));
            }
        }
    }
    best.map(|b| b.1).ok_or_else(|| Error::Usage("ridge solve failed".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    /// Three blocks of 4 features: y follows block 0 and block 2; block 1 is noise that lets a
    /// small training set be fitted by heart. The per-block penalty shrinks block 1 more than a
    /// single strength can without also shrinking the signal, and predicts held-out rows better.
    #[test]
    fn a_noisy_input_block_gets_its_own_penalty() {
        let mut rng = SplitMix64(3);
        let mut u = || (rng.next_u64() as f64 / u64::MAX as f64) * 2.0 - 1.0;
        let mut rows = |n: usize| -> (Vec<Vec<f64>>, Vec<f64>) {
            (0..n)
                .map(|_| {
                    let x: Vec<f64> = (0..12).map(|j| if (4..8).contains(&j) { 5.0 * u() } else { u() }).collect();
                    let y = x[0] - x[1] + 0.5 * x[8] + x[10] + 0.3 * u();
                    (x, y)
                })
                .unzip()
        };
        let (xt, yt) = rows(14);
        let (xv, yv) = rows(40);
        let (xs, ys) = rows(400);
        let one = fit_ridge(&xt, &yt, &xv, &yv, None).unwrap();
        let blocks = fit_ridge(&xt, &yt, &xv, &yv, Some(4)).unwrap();
        let noise = |r: &Ridge| r.w[4..8].iter().map(|w| w.abs()).sum::<f64>();
        assert!(noise(&blocks) < noise(&one), "{} vs {}", noise(&blocks), noise(&one));
        let mse = |r: &Ridge| regression_metrics(&r.predict(&xs), &ys).mse;
        assert!(mse(&blocks) < mse(&one), "{} vs {}", mse(&blocks), mse(&one));
    }
}
