//! f32 matrix products on Intel AMX tiles (Sapphire Rapids and later), for [`Weights::Amx`].
//!
//! AMX multiplies bf16 values (8-bit significands) into f32 sums, 16 × 16 outputs over 32 k
//! values per instruction — on this project's Xeon ~5× the f32 FMA rate of AVX-512. To keep f32
//! accuracy, every value `v` (weight or input) is split in two bf16 parts, `hi = bf16(v)` and
//! `lo = bf16(v − hi)`, which together hold 16 significant bits, and
//!
//! ```text
//!   Σ a·w ≈ Σ a_hi·w_hi + a_hi·w_lo + a_lo·w_hi
//! ```
//!
//! The dropped `a_lo·w_lo` and the splits' remainders are ~2⁻¹⁶ of each product, so outputs stay
//! within ~1e-5 (relative to `Σ|a·w|`) of the f32 product: three tile products where f32 needs
//! one, still ~2× the f32 GEMM here. Each output sums its terms in a fixed order that does not
//! depend on the other rows, so results are batch-invariant, like the f32 path's.
//!
//! Layout. Weights `[n, k]` are packed once into B tiles: for column tile `c` (16 outputs) and
//! k block `b` (32 values), the hi tile then the lo tile, 16 rows × 64 bytes each, row `r` holding
//! for every column the pair `(w[2r], w[2r + 1])` of the block (AMX's pair-interleaved operand).
//! Inputs are split into two row-major bf16 matrices per call; their tiles are read in place
//! (16 rows at the row stride). The kernel keeps 2 × 2 output tiles (32 rows × 32 columns) in
//! tmm0–3 and loads operands into tmm4–7; the last rows (fewer than 32) run with tiles configured
//! to just those rows, on one or two row tiles, so a decoding step multiplies one row, not 32.
//! `n` and `k` must be multiples of 32 (every SmolLM2 matrix is).
//!
//! [`Weights::Amx`]: super::Weights::Amx

use std::arch::asm;
use std::sync::OnceLock;

/// Output rows (and input rows) per tile.
const ROWS: usize = 16;
/// k values per tile product.
const KB: usize = 32;
/// bf16 values in one tile (16 rows × 64 bytes).
const TILE: usize = ROWS * KB;
/// Output rows / columns per kernel call (2 × 2 tiles).
const BLOCK: usize = 2 * ROWS;
/// Below this many multiply-adds a product runs on the calling thread only.
const PARALLEL_MIN_MACS: usize = 1 << 20;

/// Whether this CPU has AMX (tiles and bf16) and the kernel lets this process use it.
pub fn available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        #[allow(unused_unsafe)]
        let leaf7 = unsafe { std::arch::x86_64::__cpuid_count(7, 0) };
        let bf16 = leaf7.edx & (1 << 22) != 0;
        let tile = leaf7.edx & (1 << 24) != 0;
        bf16 && tile && request_tile_data()
    })
}

/// Linux keeps AMX's 8 KB of tile state off until a process asks:
/// `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`. Returns whether it was granted.
fn request_tile_data() -> bool {
    const SYS_ARCH_PRCTL: i64 = 158;
    const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
    const XFEATURE_XTILEDATA: i64 = 18;
    let ret: i64;
    // SAFETY: a plain system call; it only changes which CPU state this process may use.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") SYS_ARCH_PRCTL => ret,
            in("rdi") ARCH_REQ_XCOMP_PERM,
            in("rsi") XFEATURE_XTILEDATA,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret == 0
}

/// `v` rounded to the nearest bf16 (ties to even), as bits. Finite inputs only matter here.
#[inline]
fn bf16_bits(v: f32) -> u16 {
    let b = v.to_bits();
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

#[inline]
fn split(v: f32) -> (u16, u16) {
    let hi = bf16_bits(v);
    (hi, bf16_bits(v - f32::from_bits((hi as u32) << 16)))
}

/// [`split`] over a whole input, vectorised 16 values at a time.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn split_all(x: &[f32], hi: &mut [u16], lo: &mut [u16]) {
    for ((v, h), l) in x.iter().zip(hi).zip(lo) {
        (*h, *l) = split(*v);
    }
}

/// A weight matrix `[n, k]` packed for the AMX kernel.
pub struct AmxLinear {
    n: usize,
    k: usize,
    /// B tiles: `[n / 16][k / 32][hi, lo][16 × 32]`.
    w: Vec<u16>,
}

impl std::fmt::Debug for AmxLinear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AmxLinear([{}, {}])", self.n, self.k)
    }
}

impl AmxLinear {
    /// Packs row-major f32 weights `w` (`[n, k]`). `None` unless `n` and `k` are multiples of 32.
    pub fn new(w: &[f32], n: usize, k: usize) -> Option<Self> {
        if n == 0 || k == 0 || !n.is_multiple_of(BLOCK) || !k.is_multiple_of(KB) || w.len() != n * k {
            return None;
        }
        let kbs = k / KB;
        let mut packed = vec![0u16; n * k * 2];
        for c in 0..n {
            let (tile_col, col) = (c / ROWS, c % ROWS);
            for (i, &v) in w[c * k..(c + 1) * k].iter().enumerate() {
                let (b, r, e) = (i / KB, (i % KB) / 2, i % 2);
                let base = (tile_col * kbs + b) * 2 * TILE + r * KB + col * 2 + e;
                let (hi, lo) = split(v);
                packed[base] = hi;
                packed[base + TILE] = lo;
            }
        }
        Some(Self { n, k, w: packed })
    }

    pub fn n(&self) -> usize {
        self.n
    }

    pub fn k(&self) -> usize {
        self.k
    }

    pub fn size_in_bytes(&self) -> usize {
        self.w.len() * 2
    }

    /// The weight the kernel multiplies by at output `c`, input `i` (`hi + lo`).
    pub fn weight(&self, c: usize, i: usize) -> f32 {
        let kbs = self.k / KB;
        let base = ((c / ROWS) * kbs + i / KB) * 2 * TILE + ((i % KB) / 2) * KB + (c % ROWS) * 2 + i % 2;
        f32::from_bits((self.w[base] as u32) << 16) + f32::from_bits((self.w[base + TILE] as u32) << 16)
    }

    /// `x · wᵀ` for row-major `x` (`[m, k]`): `[m, n]`. Needs [`available`].
    pub fn matmul(&self, x: &[f32], m: usize) -> Vec<f32> {
        assert!(available(), "AMX products on a CPU without AMX");
        assert_eq!(x.len(), m * self.k, "input of {} values for {m} rows of {}", x.len(), self.k);
        let (n, k) = (self.n, self.k);
        if m == 0 {
            return Vec::new();
        }
        let mut scratch = Scratch::take(m * k);
        let (hi, lo) = (&mut scratch.hi[..m * k], &mut scratch.lo[..m * k]);
        // SAFETY: AMX CPUs have AVX-512 F and BW.
        unsafe { split_all(x, hi, lo) };
        // Every value is written by a tile store before it is read: no need to zero it first.
        let mut out: Vec<f32> = Vec::with_capacity(m * n);
        let job = Job { lin: self, hi: hi.as_ptr(), lo: lo.as_ptr(), rows: m, out: out.as_mut_ptr() };
        let pairs = n / BLOCK;
        let threads = rayon::current_num_threads().min(pairs);
        if threads > 1 && m * n * k >= PARALLEL_MIN_MACS {
            use rayon::prelude::*;
            (0..threads).into_par_iter().for_each(|t| {
                let job = &job;
                // SAFETY: threads write disjoint column ranges of `out`; inputs outlive the call.
                unsafe { job.columns(pairs * t / threads..pairs * (t + 1) / threads) }
            });
        } else {
            // SAFETY: as above, on one thread.
            unsafe { job.columns(0..pairs) }
        }
        // SAFETY: `columns` stored all `m` rows of every column pair.
        unsafe { out.set_len(m * n) };
        scratch.give_back();
        out
    }

    /// [`Self::matmul`] on a tensor `[.., k]` → `[.., n]`.
    pub fn forward(&self, x: &candle_core::Tensor) -> candle_core::Result<candle_core::Tensor> {
        let dims = x.dims().to_vec();
        match dims.last() {
            Some(&k) if k == self.k => {}
            _ => candle_core::bail!("input of shape {dims:?} for a [{}, {}] weight", self.n, self.k),
        }
        let out = super::with_f32_slice(x, |xs| self.matmul(xs, xs.len() / self.k))?;
        let mut shape = dims;
        *shape.last_mut().unwrap_or(&mut 0) = self.n;
        candle_core::Tensor::from_vec(out, shape, x.device())
    }
}

/// A thread's buffers for the bf16 parts of inputs, kept between products (fresh ones cost page
/// faults and zeroing: 9% of a prediction's time).
#[derive(Default)]
struct Scratch {
    hi: Vec<u16>,
    lo: Vec<u16>,
}

thread_local! {
    static SCRATCH: std::cell::Cell<Scratch> = std::cell::Cell::new(Scratch::default());
}

impl Scratch {
    /// This thread's buffers, at least `len` long (a product that runs while another on this
    /// thread waits for its helpers finds them taken and gets new ones).
    fn take(len: usize) -> Self {
        let mut s = SCRATCH.with(|c| c.take());
        if s.hi.len() < len {
            s.hi.resize(len, 0);
            s.lo.resize(len, 0);
        }
        s
    }

    fn give_back(self) {
        SCRATCH.with(|c| c.set(self));
    }
}

/// One product's operands, shared by its threads.
struct Job<'a> {
    lin: &'a AmxLinear,
    hi: *const u16,
    lo: *const u16,
    rows: usize,
    out: *mut f32,
}

// SAFETY: the pointers are only read, or written at disjoint places, while `matmul` waits.
unsafe impl Sync for Job<'_> {}

/// A tile configuration (palette 1, every tile 64 bytes wide).
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    /// Output tiles tmm0–1 and their input tile tmm4 of `top` rows, tmm2–3 and tmm5 of `bottom`
    /// rows (1..=16 each), the weight tiles tmm6–7 of 16.
    fn new(top: usize, bottom: usize) -> Self {
        let mut c = [0u8; 64];
        c[0] = 1;
        for (t, rows) in [top, top, bottom, bottom, top, bottom, ROWS, ROWS].into_iter().enumerate() {
            c[16 + 2 * t] = 64;
            c[48 + t] = rows as u8;
        }
        Self(c)
    }

    /// # Safety
    /// AMX must be [`available`].
    unsafe fn load(&self) {
        asm!("ldtilecfg [{0}]", in(reg) self.0.as_ptr(), options(nostack, readonly));
    }
}

impl Job<'_> {
    /// All rows of the output columns `pairs` (in units of 32 columns): blocks of 32 rows, then
    /// the rest with tiles of just those rows.
    ///
    /// # Safety
    /// AMX must be [`available`]; the pointers must hold `rows × k` inputs and `rows × n` outputs.
    unsafe fn columns(&self, pairs: std::ops::Range<usize>) {
        if pairs.is_empty() {
            return;
        }
        let full = self.rows / BLOCK * BLOCK;
        let rest = self.rows - full;
        let full_config = TileConfig::new(ROWS, ROWS);
        let rest_config = TileConfig::new(rest.min(ROWS), rest.saturating_sub(ROWS).max(1));
        for pair in pairs {
            if full > 0 {
                full_config.load();
                for row in (0..full).step_by(BLOCK) {
                    self.block(pair, row, true);
                }
            }
            if rest > 0 {
                rest_config.load();
                self.block(pair, full, rest > ROWS);
            }
        }
        asm!("tilerelease", options(nostack, nomem));
    }

    /// Output rows from `row` (two row tiles, or one where `two` is false) × the 32 columns of
    /// `pair`, with the tiles configured for them. Every output sums hi·hi, hi·lo, lo·hi per block
    /// of 32 k values, in that order, whatever the tiles' rows: a row's result is the same bits
    /// in any batch.
    unsafe fn block(&self, pair: usize, row: usize, two: bool) {
        let (n, k) = (self.lin.n, self.lin.k);
        let kbs = k / KB;
        let (sa, sb, sc) = (k * 2, KB * 2, n * 4);
        let w0 = self.lin.w.as_ptr().add(2 * pair * kbs * 2 * TILE);
        let w1 = w0.add(kbs * 2 * TILE);
        asm!("tilezero tmm0", "tilezero tmm1", "tilezero tmm2", "tilezero tmm3", options(nostack, nomem));
        for b in 0..kbs {
            let a_hi = self.hi.add(row * k + b * KB);
            let a_lo = self.lo.add(row * k + b * KB);
            let (b0, b1) = (w0.add(b * 2 * TILE), w1.add(b * 2 * TILE));
            if two {
                asm!(
                    // hi · hi
                    "tileloadd tmm4, [{ah0} + {sa}*1]",
                    "tileloadd tmm5, [{ah1} + {sa}*1]",
                    "tileloadd tmm6, [{bh0} + {sb}*1]",
                    "tileloadd tmm7, [{bh1} + {sb}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    // hi · lo
                    "tileloadd tmm6, [{bl0} + {sb}*1]",
                    "tileloadd tmm7, [{bl1} + {sb}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    // lo · hi
                    "tileloadd tmm4, [{al0} + {sa}*1]",
                    "tileloadd tmm5, [{al1} + {sa}*1]",
                    "tileloadd tmm6, [{bh0} + {sb}*1]",
                    "tileloadd tmm7, [{bh1} + {sb}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    ah0 = in(reg) a_hi,
                    ah1 = in(reg) a_hi.add(ROWS * k),
                    al0 = in(reg) a_lo,
                    al1 = in(reg) a_lo.add(ROWS * k),
                    bh0 = in(reg) b0,
                    bl0 = in(reg) b0.add(TILE),
                    bh1 = in(reg) b1,
                    bl1 = in(reg) b1.add(TILE),
                    sa = in(reg) sa,
                    sb = in(reg) sb,
                    options(nostack, readonly),
                );
            } else {
                asm!(
                    "tileloadd tmm4, [{ah0} + {sa}*1]",
                    "tileloadd tmm6, [{bh0} + {sb}*1]",
                    "tileloadd tmm7, [{bh1} + {sb}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tileloadd tmm6, [{bl0} + {sb}*1]",
                    "tileloadd tmm7, [{bl1} + {sb}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tileloadd tmm4, [{al0} + {sa}*1]",
                    "tileloadd tmm6, [{bh0} + {sb}*1]",
                    "tileloadd tmm7, [{bh1} + {sb}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    ah0 = in(reg) a_hi,
                    al0 = in(reg) a_lo,
                    bh0 = in(reg) b0,
                    bl0 = in(reg) b0.add(TILE),
                    bh1 = in(reg) b1,
                    bl1 = in(reg) b1.add(TILE),
                    sa = in(reg) sa,
                    sb = in(reg) sb,
                    options(nostack, readonly),
                );
            }
        }
        let c = self.out.add(row * n + pair * BLOCK);
        asm!(
            "tilestored [{c00} + {sc}*1], tmm0",
            "tilestored [{c01} + {sc}*1], tmm1",
            c00 = in(reg) c,
            c01 = in(reg) c.add(ROWS),
            sc = in(reg) sc,
            options(nostack),
        );
        if two {
            asm!(
                "tilestored [{c10} + {sc}*1], tmm2",
                "tilestored [{c11} + {sc}*1], tmm3",
                c10 = in(reg) c.add(ROWS * n),
                c11 = in(reg) c.add(ROWS * n + ROWS),
                sc = in(reg) sc,
                options(nostack),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 33) as f64 / (1u64 << 31) as f64 * 2.0 - 1.0) as f32
            })
            .collect()
    }

    #[test]
    fn splits_hold_sixteen_significant_bits() {
        for v in values(1000, 3) {
            let (hi, lo) = split(v);
            let back = f32::from_bits((hi as u32) << 16) + f32::from_bits((lo as u32) << 16);
            assert!((back - v).abs() <= v.abs() * 2f32.powi(-16), "{v} → {back}");
        }
    }

    #[test]
    fn is_within_1e5_of_the_f64_product() {
        if !available() {
            eprintln!("no AMX on this CPU: skipped");
            return;
        }
        for &(n, k, m) in &[(64, 96, 1), (192, 576, 37), (576, 1536, 70), (96, 64, 50), (32, 32, 16)] {
            let w = values(n * k, 1);
            let x = values(m * k, 2);
            let lin = AmxLinear::new(&w, n, k).unwrap();
            let y = lin.matmul(&x, m);
            for r in 0..m {
                for c in 0..n {
                    let (mut exact, mut size) = (0f64, 0f64);
                    for i in 0..k {
                        exact += x[r * k + i] as f64 * w[c * k + i] as f64;
                        size += (x[r * k + i] as f64 * w[c * k + i] as f64).abs();
                    }
                    let err = (y[r * n + c] as f64 - exact).abs() / size;
                    assert!(err < 1e-5, "[{n}, {k}] row {r} col {c}: {} vs {exact} (relative {err:.1e})", y[r * n + c]);
                }
            }
        }
    }

    #[test]
    fn a_row_gives_the_same_bits_alone_or_in_a_batch() {
        if !available() {
            return;
        }
        let (n, k) = (96, 64);
        let lin = AmxLinear::new(&values(n * k, 5), n, k).unwrap();
        let x = values(45 * k, 6);
        let batch = lin.matmul(&x, 45);
        for r in [0, 17, 32, 44] {
            assert_eq!(lin.matmul(&x[r * k..(r + 1) * k], 1), &batch[r * n..(r + 1) * n]);
        }
    }

    #[test]
    fn refuses_shapes_it_cannot_tile() {
        assert!(AmxLinear::new(&vec![0.0; 40 * 64], 40, 64).is_none());
        assert!(AmxLinear::new(&vec![0.0; 64 * 40], 64, 40).is_none());
    }
}
