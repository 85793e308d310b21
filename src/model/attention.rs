//! Causal grouped-query attention for inference on the CPU, in one pass over plain slices.
//!
//! candle's formulation (the training path in [`super::llama`]) copies a shared prefix's keys
//! and values once per batch row, concatenates them with the new ones, transposes queries, keys
//! and values, builds a full `[s, t]` score matrix per head, adds a mask and runs a separate
//! softmax. Here each query reads the keys where they are — a prefix shared by the whole batch
//! stays one copy — applies the rotary embedding on the fly, skips the positions it may not
//! see, and writes its output straight into the `[b, s, heads · head_dim]` layout the output
//! projection takes. Each query's result depends on its own row only, whatever the batch.

/// Head counts and width of a layer's attention.
#[derive(Debug, Clone, Copy)]
pub struct Heads {
    pub n_head: usize,
    pub n_kv: usize,
    pub head_dim: usize,
}

/// Earlier keys and values of one layer, each `[rows, n_kv, t, head_dim]`: `rows` is 1 for a
/// block shared by the whole batch, else the batch size.
#[derive(Debug, Clone, Copy)]
pub struct Past<'a> {
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub rows: usize,
    pub t: usize,
}

/// The attention output `[b, s, n_head · head_dim]` and this call's keys (rotated) and values,
/// `[b, n_kv, s, head_dim]` each, for the cache.
pub struct Output {
    pub y: Vec<f32>,
    pub k: Vec<f32>,
    pub v: Vec<f32>,
}

/// One call's inputs: `q` is `[b, s, n_head · head_dim]`, `k` and `v` are `[b, s, n_kv ·
/// head_dim]`, all before the rotary embedding; row `r`'s first position is `starts[r]`;
/// `cos`/`sin` are the `[context, head_dim / 2]` rotary tables; `visible[(r · s + i) · t + j]`
/// says whether query `i` of row `r` may see key `j` of the `t = Σ past.t + s` keys (the past
/// ones first, in order, then this call's).
pub struct Call<'a> {
    pub heads: Heads,
    pub b: usize,
    pub s: usize,
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub starts: &'a [usize],
    pub cos: &'a [f32],
    pub sin: &'a [f32],
    pub past: &'a [Past<'a>],
    pub visible: &'a [bool],
}

/// Below this many query–key products (summed over heads) one thread does the whole call.
#[cfg(not(target_arch = "wasm32"))]
const PARALLEL_MIN_PRODUCTS: usize = 1 << 21;

impl Call<'_> {
    fn keys(&self) -> usize {
        self.past.iter().map(|p| p.t).sum::<usize>() + self.s
    }

    /// Checks that every slice has the length its shape asks for.
    fn check(&self) -> Result<(), String> {
        let Heads { n_head, n_kv, head_dim: hd } = self.heads;
        let (b, s, t) = (self.b, self.s, self.keys());
        let bad = |what: &str, got: usize, want: usize| Err(format!("attention: {what} holds {got} values, not {want}"));
        if n_kv == 0 || n_head % n_kv != 0 || hd % 2 != 0 {
            return Err(format!("attention: {n_head} query heads over {n_kv} key heads of width {hd}"));
        }
        if self.q.len() != b * s * n_head * hd {
            return bad("q", self.q.len(), b * s * n_head * hd);
        }
        if self.k.len() != b * s * n_kv * hd || self.v.len() != self.k.len() {
            return bad("k/v", self.k.len().min(self.v.len()), b * s * n_kv * hd);
        }
        if self.starts.len() != b {
            return bad("starts", self.starts.len(), b);
        }
        if self.visible.len() != b * s * t {
            return bad("visible", self.visible.len(), b * s * t);
        }
        let last = self.starts.iter().max().copied().unwrap_or(0) + s;
        if self.cos.len() < last * hd / 2 || self.sin.len() != self.cos.len() {
            return Err(format!("attention: rotary tables end before position {last}"));
        }
        for p in self.past {
            if (p.rows != 1 && p.rows != b) || p.k.len() != p.rows * n_kv * p.t * hd || p.v.len() != p.k.len() {
                return Err(format!("attention: cached block of {} rows × {} keys does not fit a batch of {b}", p.rows, p.t));
            }
        }
        Ok(())
    }
}

/// Runs one layer's attention (see [`Call`]).
pub fn attention(call: &Call) -> Result<Output, String> {
    call.check()?;
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512 F.
        return Ok(unsafe { attention_avx512(call) });
    }
    Ok(attention_any(call))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn attention_avx512(call: &Call) -> Output {
    attention_any(call)
}

#[inline(always)]
fn attention_any(call: &Call) -> Output {
    let Heads { n_head, n_kv, head_dim: hd } = call.heads;
    let (b, s) = (call.b, call.s);
    let half = hd / 2;
    // This call's keys, rotated, and values, moved to the cache's `[b, n_kv, s, hd]` layout.
    let mut k_new = vec![0f32; b * n_kv * s * hd];
    let mut v_new = vec![0f32; b * n_kv * s * hd];
    for r in 0..b {
        for i in 0..s {
            let pos = call.starts[r] + i;
            let (cos, sin) = (&call.cos[pos * half..][..half], &call.sin[pos * half..][..half]);
            for g in 0..n_kv {
                let src = ((r * s + i) * n_kv + g) * hd;
                let dst = ((r * n_kv + g) * s + i) * hd;
                rotate(&call.k[src..src + hd], cos, sin, 1.0, &mut k_new[dst..dst + hd]);
                v_new[dst..dst + hd].copy_from_slice(&call.v[src..src + hd]);
            }
        }
    }
    let this = Past { k: &k_new, v: &v_new, rows: b, t: s };
    let blocks: Vec<&Past> = call.past.iter().chain(std::iter::once(&this)).collect();
    let mut y = vec![0f32; b * s * n_head * hd];
    let out = Rows(y.as_mut_ptr());
    let t = call.keys();
    // SAFETY: task (r, h) writes head h of row r's queries, `y[r, i, h·hd ..][..hd]`: tasks
    // write disjoint parts of `y`, which outlives them.
    let head = |scratch: &mut Scratch, task: usize| unsafe { one_head(call, &blocks, task / n_head, task % n_head, scratch, &out) };
    let scratch = || Scratch { q: vec![0f32; s * hd], scores: vec![0f32; s * t] };
    #[cfg(not(target_arch = "wasm32"))]
    if b * s * t * n_head >= PARALLEL_MIN_PRODUCTS {
        use rayon::prelude::*;
        (0..b * n_head).into_par_iter().for_each_init(scratch, head);
        return Output { y, k: k_new, v: v_new };
    }
    let mut one = scratch();
    (0..b * n_head).for_each(|task| head(&mut one, task));
    Output { y, k: k_new, v: v_new }
}

/// One thread's working space for [`one_head`]: the rotated queries `[s, hd]` and the scores
/// `[s, t]`.
struct Scratch {
    q: Vec<f32>,
    scores: Vec<f32>,
}

/// The attention output's start, shared by the tasks that each write their own heads of it.
struct Rows(*mut f32);

// SAFETY: the tasks sharing it write disjoint elements (see `attention_any`).
unsafe impl Sync for Rows {}

/// Head `h` of row `r`: its `s` queries' outputs go to `y[r, i, h·hd ..][..hd]`. Scores and
/// weighted values are small matrix products over each cached block in place (a shared block's
/// keys serve every row).
///
/// # Safety
/// `y` must point to `[b, s, n_head · hd]` values that no other thread touches at these places.
#[inline(always)]
unsafe fn one_head(call: &Call, blocks: &[&Past], r: usize, h: usize, scratch: &mut Scratch, y: &Rows) {
    let Heads { n_head, n_kv, head_dim: hd } = call.heads;
    let (s, t) = (call.s, call.keys());
    let half = hd / 2;
    let g = h / (n_head / n_kv);
    let scale = 1.0 / (hd as f32).sqrt();
    let Scratch { q, scores } = scratch;
    for (i, qi) in q.chunks_exact_mut(hd).enumerate() {
        let pos = call.starts[r] + i;
        let src = ((r * s + i) * n_head + h) * hd;
        rotate(&call.q[src..src + hd], &call.cos[pos * half..][..half], &call.sin[pos * half..][..half], scale, qi);
    }
    // scores[i, j] = q_i · k_j, block by block.
    let mut j0 = 0;
    for block in blocks {
        let keys = &block.k[(block_row(block, r) * n_kv + g) * block.t * hd..][..block.t * hd];
        // SAFETY: the slices hold m·k, k·n and m·t values with the strides given (checked shapes).
        unsafe { product(s, block.t, hd, scores[j0..].as_mut_ptr(), t, false, q.as_ptr(), hd, 1, keys.as_ptr(), 1, hd) };
        j0 += block.t;
    }
    // Softmax over the visible keys of each query; the others weigh 0.
    for (i, row) in scores.chunks_exact_mut(t).enumerate() {
        let visible = &call.visible[(r * s + i) * t..][..t];
        let max = row.iter().zip(visible).filter(|(_, &v)| v).fold(f32::NEG_INFINITY, |m, (&x, _)| m.max(x));
        let mut sum = 0f32;
        for (x, &v) in row.iter_mut().zip(visible) {
            *x = if v { super::fused::exp(*x - max) } else { 0.0 };
            sum += *x;
        }
        for x in row.iter_mut() {
            *x /= sum;
        }
    }
    // y[r, :, h] = Σ_blocks p[:, block] · v_block, straight into the projection's layout.
    let dst = unsafe { y.0.add((r * s * n_head + h) * hd) };
    let mut j0 = 0;
    for (n, block) in blocks.iter().enumerate() {
        let values = &block.v[(block_row(block, r) * n_kv + g) * block.t * hd..][..block.t * hd];
        // SAFETY: as above; `dst`'s s rows of hd lie n_head · hd apart inside `y`.
        unsafe { product(s, hd, block.t, dst, n_head * hd, n > 0, scores[j0..].as_ptr(), t, 1, values.as_ptr(), hd, 1) };
        j0 += block.t;
    }
}

/// `dst (+)= lhs · rhs` for row-major strided `m × k` and `k × n` operands into rows of `dst`
/// `dst_rs` apart (the `gemm` crate's kernels, one thread).
///
/// # Safety
/// Every element the shapes and strides address must lie inside the pointed-to buffers.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn product(m: usize, n: usize, k: usize, dst: *mut f32, dst_rs: usize, accumulate: bool, lhs: *const f32, lhs_rs: usize, lhs_cs: usize, rhs: *const f32, rhs_rs: usize, rhs_cs: usize) {
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        accumulate,
        lhs,
        lhs_cs as isize,
        lhs_rs as isize,
        rhs,
        rhs_cs as isize,
        rhs_rs as isize,
        1.0,
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::None,
    )
}

fn block_row(block: &Past, r: usize) -> usize {
    if block.rows == 1 {
        0
    } else {
        r
    }
}

/// Interleaved rotary embedding of one head's vector (pairs `(x₂ᵢ, x₂ᵢ₊₁)` turned by the
/// position's angle `i`), times `scale`.
#[inline(always)]
fn rotate(x: &[f32], cos: &[f32], sin: &[f32], scale: f32, out: &mut [f32]) {
    for (((pair, o), &c), &sn) in x.chunks_exact(2).zip(out.chunks_exact_mut(2)).zip(cos).zip(sin) {
        o[0] = (pair[0] * c - pair[1] * sn) * scale;
        o[1] = (pair[0] * sn + pair[1] * c) * scale;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    fn random(n: usize, rng: &mut SplitMix64) -> Vec<f32> {
        (0..n).map(|_| (rng.next_f64() * 2.0 - 1.0) as f32).collect()
    }

    /// The textbook formula in f64: rotate, score, mask, softmax, weigh.
    #[allow(clippy::too_many_arguments)]
    fn reference(heads: Heads, b: usize, s: usize, q: &[f32], k: &[f32], v: &[f32], past_k: &[f32], past_v: &[f32], t_old: usize, cos: &[f32], sin: &[f32], visible: &[bool]) -> Vec<f64> {
        let Heads { n_head, n_kv, head_dim: hd } = heads;
        let t = t_old + s;
        let rot = |x: &[f32], pos: usize| -> Vec<f64> {
            let mut o = vec![0f64; hd];
            for p in 0..hd / 2 {
                let (c, sn) = (cos[pos * hd / 2 + p] as f64, sin[pos * hd / 2 + p] as f64);
                o[2 * p] = x[2 * p] as f64 * c - x[2 * p + 1] as f64 * sn;
                o[2 * p + 1] = x[2 * p] as f64 * sn + x[2 * p + 1] as f64 * c;
            }
            o
        };
        let mut y = vec![0f64; b * s * n_head * hd];
        for r in 0..b {
            for i in 0..s {
                for h in 0..n_head {
                    let g = h / (n_head / n_kv);
                    let qv = rot(&q[((r * s + i) * n_head + h) * hd..][..hd], t_old + i);
                    let key = |j: usize| -> (Vec<f64>, Vec<f64>) {
                        if j < t_old {
                            let o = (g * t_old + j) * hd; // past shared by all rows
                            (past_k[o..o + hd].iter().map(|&x| x as f64).collect(), past_v[o..o + hd].iter().map(|&x| x as f64).collect())
                        } else {
                            let o = ((r * s + j - t_old) * n_kv + g) * hd;
                            (rot(&k[o..o + hd], j), v[o..o + hd].iter().map(|&x| x as f64).collect())
                        }
                    };
                    let vis: Vec<usize> = (0..t).filter(|&j| visible[(r * s + i) * t + j]).collect();
                    let sc: Vec<f64> = vis.iter().map(|&j| key(j).0.iter().zip(&qv).map(|(a, b)| a * b).sum::<f64>() / (hd as f64).sqrt()).collect();
                    let m = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = sc.iter().map(|x| (x - m).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for (&j, &w) in vis.iter().zip(&e) {
                        for (d, val) in key(j).1.iter().enumerate() {
                            y[((r * s + i) * n_head + h) * hd + d] += w / z * val;
                        }
                    }
                }
            }
        }
        y
    }

    #[test]
    fn matches_the_formula_with_a_shared_prefix_and_ragged_rows() {
        let heads = Heads { n_head: 6, n_kv: 2, head_dim: 20 };
        let (b, s, t_old) = (3, 5, 4);
        let mut rng = SplitMix64(7);
        let hd = heads.head_dim;
        let q = random(b * s * heads.n_head * hd, &mut rng);
        let k = random(b * s * heads.n_kv * hd, &mut rng);
        let v = random(b * s * heads.n_kv * hd, &mut rng);
        let pk = random(heads.n_kv * t_old * hd, &mut rng);
        let pv = random(heads.n_kv * t_old * hd, &mut rng);
        let angles: Vec<f32> = (0..40 * hd / 2).map(|x| x as f32 * 0.37).collect();
        let cos: Vec<f32> = angles.iter().map(|a| a.cos()).collect();
        let sin: Vec<f32> = angles.iter().map(|a| a.sin()).collect();
        let t = t_old + s;
        // Row 1 has 3 real positions (its padding sees only itself), row 2 cannot see key 1.
        let lens = [5, 3, 5];
        let mut visible = vec![false; b * s * t];
        for r in 0..b {
            for i in 0..s {
                for j in 0..t {
                    let ok = if j < t_old { !(r == 2 && j == 1) } else { let jj = j - t_old; (jj <= i && jj < lens[r]) || (i >= lens[r] && jj == i) };
                    visible[(r * s + i) * t + j] = ok;
                }
            }
        }
        let past = [Past { k: &pk, v: &pv, rows: 1, t: t_old }];
        let starts = vec![t_old; b];
        let call = Call { heads, b, s, q: &q, k: &k, v: &v, starts: &starts, cos: &cos, sin: &sin, past: &past, visible: &visible };
        let out = attention(&call).unwrap();
        let want = reference(heads, b, s, &q, &k, &v, &pk, &pv, t_old, &cos, &sin, &visible);
        for (a, w) in out.y.iter().zip(&want) {
            assert!((*a as f64 - w).abs() < 1e-5, "{a} vs {w}");
        }
        // The cache block holds the rotated keys in [b, n_kv, s, hd].
        let (r, i, g) = (2, 3, 1);
        let pos = t_old + i;
        let src = &k[((r * s + i) * heads.n_kv + g) * hd..][..hd];
        let got = &out.k[((r * heads.n_kv + g) * s + i) * hd..][..hd];
        let want0 = src[0] * cos[pos * hd / 2] - src[1] * sin[pos * hd / 2];
        assert!((got[0] - want0).abs() < 1e-6);
        assert_eq!(&out.v[((r * heads.n_kv + g) * s + i) * hd..][..hd], &v[((r * s + i) * heads.n_kv + g) * hd..][..hd]);
    }

    #[test]
    fn a_row_gets_the_same_bits_alone_or_in_a_batch() {
        let heads = Heads { n_head: 4, n_kv: 1, head_dim: 16 };
        let (b, s) = (4, 6);
        let mut rng = SplitMix64(3);
        let q = random(b * s * 4 * 16, &mut rng);
        let k = random(b * s * 16, &mut rng);
        let v = random(b * s * 16, &mut rng);
        let cos = random(16 * 8, &mut rng);
        let sin = random(16 * 8, &mut rng);
        let causal: Vec<bool> = (0..b * s * s).map(|x| (x % s) <= (x / s) % s).collect();
        let starts = vec![0; b];
        let all = attention(&Call { heads, b, s, q: &q, k: &k, v: &v, starts: &starts, cos: &cos, sin: &sin, past: &[], visible: &causal }).unwrap();
        let r = 2;
        let one = |x: &[f32], w: usize| x[r * s * w..(r + 1) * s * w].to_vec();
        let alone = attention(&Call { heads, b: 1, s, q: &one(&q, 64), k: &one(&k, 16), v: &one(&v, 16), starts: &[0], cos: &cos, sin: &sin, past: &[], visible: &causal[..s * s] }).unwrap();
        assert_eq!(alone.y, one(&all.y, 64));
    }

    #[test]
    fn refuses_slices_of_the_wrong_size() {
        let heads = Heads { n_head: 2, n_kv: 1, head_dim: 4 };
        let z = vec![0f32; 64];
        let err = attention(&Call { heads, b: 1, s: 2, q: &z[..15], k: &z[..8], v: &z[..8], starts: &[0], cos: &z, sin: &z, past: &[], visible: &[true; 4] }).err().unwrap();
        assert!(err.contains("q holds 15 values, not 16"), "{err}");
    }
}
