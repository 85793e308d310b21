//! Integer matrix products over the file's own quantised weights ([`Weights::Int8`]).
//!
//! The weights stay as the GGUF file stores them — Q4_1 (per 32 values: f16 scale `d`, f16 min
//! `m`, 4-bit `q` in 0..15, so `w = d·q + m`) or Q8_0 (f16 `d`, 8-bit `q`, `w = d·q`) — repacked
//! for SIMD access. Each input row is quantised on its own, per block of 32 values, to int8
//! (`d_a = max|x| / 127`, `a = round(x / d_a)`), so one output block is
//!
//! ```text
//!   Σ w·x ≈ d·d_a·Σ q·a  (+ m·d_a·Σ a for Q4_1)
//! ```
//!
//! With 16-bit inputs ([`Weights::Int16`], [`QuantRows::new_wide`]) `a` has 16 bits
//! (`d_a = max|x| / 32384`), split as `a = 254·a_hi + a_lo` into two int8 parts: a block runs the
//! same 8-bit products twice and combines them as `254·Σ q·a_hi + Σ q·a_lo` — still exact, so
//! everything below holds; inputs are rounded ~255× more finely, for twice the products.
//!
//! `Σ q·a` is computed exactly in 32-bit integers (AVX-512 VNNI `vpdpbusd`, or AVX2
//! `vpmaddubsw`/`vpmaddwd`, or plain Rust). Every path then performs the same f32 operations in
//! the same order for one output (`acc = fma(S, d·d_a, acc)`, then `acc = fma(m, d_a·Σa, acc)`,
//! block after block), so all paths give identical bits, and a row's result never depends on the
//! other rows of the batch (each row is quantised alone): predictions stay batch-invariant.
//!
//! Layout. Output columns come in tiles of 32 (two groups of 16: one 512-bit vector of i32
//! accumulators each). For tile `t` and block `b`, the weights are `STEPS = 8` k-steps of 4
//! consecutive k values; a step holds, per group, 16 columns × 4 bytes (64 bytes), so a 32-bit
//! lane is one column's 4 products. Q8_0 stores `q ^ 0x80` (as u8, for `vpdpbusd`'s unsigned
//! operand; the `128·Σa` it adds is subtracted in integers); Q4_1 packs two steps per byte
//! (step `2p` in the low nibble, `2p + 1` in the high one: 0.5 bytes a weight, as in the file).
//! Scales stay f16 (exact when widened), 32 per tile and block, then 32 mins for Q4_1.
//!
//! [`Weights::Int8`]: super::Weights::Int8
//! [`Weights::Int16`]: super::Weights::Int16

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Tensor};
use half::f16;

/// Values per quantisation block (weights and activations).
pub const BLOCK: usize = 32;
/// Output columns per tile.
const TILE: usize = 32;
/// k-steps of 4 values per block.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const STEPS: usize = BLOCK / 4;
/// Input rows per micro-kernel call (register blocking).
const MAX_ROWS: usize = 4;
/// The largest 16-bit input magnitude: `254·127 + 126`, so that `a_hi` stays within int8.
const WIDE_MAX: i32 = 254 * 127 + 126;
/// Below this many multiply-adds a product runs on the calling thread only.
#[cfg(not(target_arch = "wasm32"))]
const PARALLEL_MIN_MACS: usize = 1 << 20;

/// The file's block format of a weight matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Q4_1,
    Q8_0,
}

impl Format {
    /// Repacked weight bytes per (tile, block).
    fn weight_bytes(self) -> usize {
        match self {
            Format::Q4_1 => TILE * BLOCK / 2,
            Format::Q8_0 => TILE * BLOCK,
        }
    }
    /// f16 scale words per (tile, block).
    fn scale_words(self) -> usize {
        match self {
            Format::Q4_1 => 2 * TILE,
            Format::Q8_0 => TILE,
        }
    }
    /// Bytes of one block in the GGUF file.
    pub(super) fn file_block_bytes(self) -> usize {
        match self {
            Format::Q4_1 => 20,
            Format::Q8_0 => 34,
        }
    }
}

/// Which implementation computes the integer products. All give identical results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelPath {
    /// AVX-512 (F, BW) with VNNI `vpdpbusd` on 512-bit vectors.
    Vnni512,
    /// AVX2 + FMA + F16C: `vpmaddubsw` / `vpmaddwd`.
    Avx2,
    /// Portable Rust (the wasm32 build's path).
    Scalar,
}

impl KernelPath {
    /// Whether this CPU can run the path.
    pub fn available(self) -> bool {
        match self {
            KernelPath::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            KernelPath::Vnni512 => {
                is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(target_arch = "x86_64")]
            KernelPath::Avx2 => {
                is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The fastest path this CPU has (detected once).
    pub fn best() -> Self {
        static BEST: std::sync::OnceLock<KernelPath> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| {
            [KernelPath::Vnni512, KernelPath::Avx2].into_iter().find(|p| p.available()).unwrap_or(KernelPath::Scalar)
        })
    }
}

/// Input rows quantised per block of 32 to int8, each row on its own.
#[derive(Debug, Clone)]
pub struct QuantRows {
    pub rows: usize,
    pub k: usize,
    /// `[rows, k]` int8 values (16-bit rows: the high parts `a_hi`).
    pub q: Vec<i8>,
    /// 16-bit rows only: `[rows, k]` low parts, `a = 254·a_hi + a_lo` (empty for 8-bit rows).
    pub lo: Vec<i8>,
    /// `[rows, k / 32]` scales `d_a = max|x| / 127` (16-bit rows: `max|x| / 32384`).
    pub scale: Vec<f32>,
    /// `[rows, k / 32]` integer block sums `Σ a`.
    pub sum: Vec<i32>,
    /// `[rows, k / 32]` `d_a · Σ a` (rounded to f32), for the Q4_1 min term.
    pub scaled_sum: Vec<f32>,
}

impl QuantRows {
    /// Quantises `x` (`[rows, k]`, row-major) to 8 bits per value, per block of 32, each row on
    /// its own: `d_a = max|x| / 127`; `k` must be a multiple of 32.
    pub fn new(x: &[f32], k: usize) -> Self {
        Self::build(x, k, false, false)
    }

    /// As [`Self::new`] with the portable code only (tests compare the two).
    pub fn new_portable(x: &[f32], k: usize) -> Self {
        Self::build(x, k, false, true)
    }

    /// Quantises `x` (`[rows, k]`) to 16 bits per value, per block of 32, each row on its own:
    /// `d_a = max|x| / 32384`, `a = round_ties_even(x · (1 / d_a))`, held as two int8 parts
    /// `a = 254·a_hi + a_lo` (`a_hi = ⌊(a + 127) / 254⌋`, `a_lo` in −127..126) so that the
    /// kernels' 8-bit products give `Σ q·a = 254·Σ q·a_hi + Σ q·a_lo` exactly. An input moves by
    /// at most `max|x| / 64768` (8-bit rows: `max|x| / 254`).
    pub fn new_wide(x: &[f32], k: usize) -> Self {
        Self::build(x, k, true, false)
    }

    /// As [`Self::new_wide`] with the portable code only (tests compare the two).
    pub fn new_wide_portable(x: &[f32], k: usize) -> Self {
        Self::build(x, k, true, true)
    }

    fn build(x: &[f32], k: usize, wide: bool, portable: bool) -> Self {
        assert!(k.is_multiple_of(BLOCK) && k > 0, "row width {k} is not a multiple of {BLOCK}");
        assert!(x.len().is_multiple_of(k), "{} values are not rows of {k}", x.len());
        let (rows, nb) = (x.len() / k, k / BLOCK);
        let mut r = Self {
            rows,
            k,
            q: vec![0; rows * k],
            lo: if wide { vec![0; rows * k] } else { Vec::new() },
            scale: vec![0.0; rows * nb],
            sum: vec![0; rows * nb],
            scaled_sum: vec![0.0; rows * nb],
        };
        #[cfg(target_arch = "x86_64")]
        let fast = !portable && KernelPath::Vnni512.available();
        #[cfg(not(target_arch = "x86_64"))]
        let fast = {
            let _ = portable;
            false
        };
        for i in 0..rows * nb {
            let at = i * BLOCK..(i + 1) * BLOCK;
            let xb = x[at.clone()].try_into().unwrap();
            let hi = (&mut r.q[at.clone()]).try_into().unwrap();
            let (d, s) = match (wide, fast) {
                (false, false) => quantize_block(xb, hi),
                (true, false) => quantize_block_wide(xb, hi, (&mut r.lo[at]).try_into().unwrap()),
                // SAFETY: AVX-512F is there (checked above).
                #[cfg(target_arch = "x86_64")]
                (false, true) => unsafe { x86::quantize_block(xb, hi) },
                #[cfg(target_arch = "x86_64")]
                (true, true) => unsafe { x86::quantize_block_wide(xb, hi, (&mut r.lo[at]).try_into().unwrap()) },
                #[cfg(not(target_arch = "x86_64"))]
                (_, true) => unreachable!(),
            };
            r.scale[i] = d;
            r.sum[i] = s;
            r.scaled_sum[i] = d * s as f32;
        }
        r
    }

    /// Whether the rows hold 16-bit values (two int8 parts).
    pub fn is_wide(&self) -> bool {
        !self.lo.is_empty()
    }

    /// The integer `a` of input `(row, col)`.
    pub fn int(&self, row: usize, col: usize) -> i32 {
        let i = row * self.k + col;
        if self.is_wide() {
            254 * self.q[i] as i32 + self.lo[i] as i32
        } else {
            self.q[i] as i32
        }
    }

    /// The value a quantised input stands for: `d_a · a`.
    pub fn value(&self, row: usize, col: usize) -> f32 {
        self.scale[row * (self.k / BLOCK) + col / BLOCK] * self.int(row, col) as f32
    }
}

/// One block: `d = max|x| / 127`, `a = round_ties_even(x · (1 / d))`; returns `(d, Σ a)`.
fn quantize_block(x: &[f32; BLOCK], q: &mut [i8; BLOCK]) -> (f32, i32) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
    let mut s = 0i32;
    for (v, o) in x.iter().zip(q.iter_mut()) {
        let a = (v * id).round_ties_even().clamp(-127.0, 127.0) as i8;
        *o = a;
        s += a as i32;
    }
    (d, s)
}

/// One block to 16 bits: `d = max|x| / 32384`, `a = round_ties_even(x · (1 / d))`,
/// `a_hi = ⌊(a + 127) / 254⌋`, `a_lo = a − 254·a_hi`; returns `(d, Σ a)`.
fn quantize_block_wide(x: &[f32; BLOCK], hi: &mut [i8; BLOCK], lo: &mut [i8; BLOCK]) -> (f32, i32) {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / WIDE_MAX as f32;
    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
    let mut s = 0i32;
    for ((v, h), l) in x.iter().zip(hi.iter_mut()).zip(lo.iter_mut()) {
        let a = (v * id).round_ties_even().clamp(-WIDE_MAX as f32, WIDE_MAX as f32) as i32;
        let ah = (a + 127).div_euclid(254);
        *h = ah as i8;
        *l = (a - 254 * ah) as i8;
        s += a;
    }
    (d, s)
}

/// A weight matrix `[n, k]` (applied as `x · Wᵀ`) held in its quantised form for integer
/// products.
#[derive(Clone)]
pub struct Int8Linear {
    format: Format,
    n: usize,
    k: usize,
    tiles: usize,
    /// Repacked weights, `[tiles, k / 32, weight_bytes]`.
    w: Vec<u8>,
    /// f16 scale (and min) bits, `[tiles, k / 32, scale_words]`.
    s: Vec<u16>,
    /// Inputs quantised to 16 bits ([`QuantRows::new_wide`]) rather than 8.
    wide: bool,
}

impl std::fmt::Debug for Int8Linear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Int8Linear({:?}, n {}, k {}, wide {})", self.format, self.n, self.k, self.wide)
    }
}

impl Int8Linear {
    /// From a Q4_1 or Q8_0 matrix of shape `(n, k)`.
    pub fn from_qtensor(t: &QTensor) -> candle_core::Result<Self> {
        let format = match t.dtype() {
            GgmlDType::Q4_1 => Format::Q4_1,
            GgmlDType::Q8_0 => Format::Q8_0,
            other => candle_core::bail!("integer products need Q4_1 or Q8_0 weights, not {other:?}"),
        };
        let (n, k) = t.shape().dims2()?;
        Self::from_blocks(format, n, k, &t.data()?)
    }

    /// From the raw GGUF blocks of an `(n, k)` matrix: row after row, `k / 32` blocks each.
    pub fn from_blocks(format: Format, n: usize, k: usize, bytes: &[u8]) -> candle_core::Result<Self> {
        if !k.is_multiple_of(BLOCK) || k == 0 || n == 0 {
            candle_core::bail!("cannot hold a [{n}, {k}] matrix in blocks of {BLOCK}");
        }
        let nb = k / BLOCK;
        let fb = format.file_block_bytes();
        if bytes.len() != n * nb * fb {
            candle_core::bail!("{} bytes for a [{n}, {k}] {format:?} matrix, expected {}", bytes.len(), n * nb * fb);
        }
        let tiles = n.div_ceil(TILE);
        let wb = format.weight_bytes();
        let sw = format.scale_words();
        // Padding columns: zero weights (Q8_0 stores q ^ 0x80) and zero scales.
        let pad = if format == Format::Q8_0 { 0x80 } else { 0 };
        let mut w = vec![pad; tiles * nb * wb];
        let mut s = vec![0u16; tiles * nb * sw];
        let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
        for c in 0..n {
            let (t, tc) = (c / TILE, c % TILE);
            let (g, gc) = (tc / 16, tc % 16);
            for b in 0..nb {
                let src = (c * nb + b) * fb;
                let wbase = (t * nb + b) * wb;
                let sbase = (t * nb + b) * sw;
                s[sbase + tc] = u16_at(src);
                match format {
                    Format::Q4_1 => {
                        s[sbase + TILE + tc] = u16_at(src + 2);
                        let qs = &bytes[src + 4..src + 20];
                        for e in 0..BLOCK {
                            let q = if e < 16 { qs[e] & 0x0F } else { qs[e - 16] >> 4 };
                            let (j, kk) = (e / 4, e % 4);
                            let o = wbase + (j / 2) * 128 + g * 64 + gc * 4 + kk;
                            w[o] |= if j % 2 == 0 { q } else { q << 4 };
                        }
                    }
                    Format::Q8_0 => {
                        let qs = &bytes[src + 2..src + 34];
                        for (e, &q) in qs.iter().enumerate() {
                            let (j, kk) = (e / 4, e % 4);
                            w[wbase + j * 128 + g * 64 + gc * 4 + kk] = q ^ 0x80;
                        }
                    }
                }
            }
        }
        Ok(Self { format, n, k, tiles, w, s, wide: false })
    }

    pub fn format(&self) -> Format {
        self.format
    }
    /// The same weights, with [`Self::forward`] quantising inputs to 16 bits per value instead
    /// of 8 (twice the integer products; inputs rounded ~256× more finely).
    pub fn with_wide_inputs(mut self, wide: bool) -> Self {
        self.wide = wide;
        self
    }
    /// Whether [`Self::forward`] quantises inputs to 16 bits.
    pub fn wide_inputs(&self) -> bool {
        self.wide
    }
    /// Output width.
    pub fn n(&self) -> usize {
        self.n
    }
    /// Input width.
    pub fn k(&self) -> usize {
        self.k
    }
    /// Bytes held (weights and scales).
    pub fn size_in_bytes(&self) -> usize {
        self.w.len() + 2 * self.s.len()
    }

    /// The integer `q` of weight `(c, i)` (Q4_1: 0..15; Q8_0: −128..127).
    fn q_at(&self, c: usize, i: usize) -> i32 {
        let nb = self.k / BLOCK;
        let (t, tc) = (c / TILE, c % TILE);
        let (g, gc) = (tc / 16, tc % 16);
        let (b, e) = (i / BLOCK, i % BLOCK);
        let (j, kk) = (e / 4, e % 4);
        let base = (t * nb + b) * self.format.weight_bytes();
        match self.format {
            Format::Q4_1 => {
                let byte = self.w[base + (j / 2) * 128 + g * 64 + gc * 4 + kk];
                (if j % 2 == 0 { byte & 0x0F } else { byte >> 4 }) as i32
            }
            Format::Q8_0 => (self.w[base + j * 128 + g * 64 + gc * 4 + kk] ^ 0x80) as i8 as i32,
        }
    }

    /// `(d, m)` of the block holding weight `(c, i)` (`m` is 0 for Q8_0).
    fn dm_at(&self, c: usize, i: usize) -> (f32, f32) {
        let nb = self.k / BLOCK;
        let (t, tc) = (c / TILE, c % TILE);
        let base = (t * nb + i / BLOCK) * self.format.scale_words();
        let d = f16::from_bits(self.s[base + tc]).to_f32();
        let m = match self.format {
            Format::Q4_1 => f16::from_bits(self.s[base + TILE + tc]).to_f32(),
            Format::Q8_0 => 0.0,
        };
        (d, m)
    }

    /// Weight `(c, i)` exactly (`d·q + m` in f64), for references.
    pub fn weight(&self, c: usize, i: usize) -> f64 {
        let (d, m) = self.dm_at(c, i);
        d as f64 * self.q_at(c, i) as f64 + m as f64
    }

    /// The per-block integer and f32 parts of weight `(c, i)`: `(q, d, m)`.
    pub fn parts(&self, c: usize, i: usize) -> (i32, f32, f32) {
        let (d, m) = self.dm_at(c, i);
        (self.q_at(c, i), d, m)
    }

    /// `x · Wᵀ` for `x` of shape `[.., k]` (f32); returns `[.., n]`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_with(x, KernelPath::best())
    }

    /// [`Self::forward`] on a chosen path (tests compare them); falls back to the scalar path
    /// where the CPU lacks the one asked for.
    pub fn forward_with(&self, x: &Tensor, path: KernelPath) -> candle_core::Result<Tensor> {
        let dims = x.dims().to_vec();
        match dims.last() {
            Some(&k) if k == self.k => {}
            _ => candle_core::bail!("input of shape {dims:?} for a [{}, {}] weight", self.n, self.k),
        }
        let xs: Vec<f32> = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let rows = if self.wide { QuantRows::new_wide(&xs, self.k) } else { QuantRows::new(&xs, self.k) };
        let out = self.matmul(&rows, path);
        let mut shape = dims;
        *shape.last_mut().unwrap() = self.n;
        Tensor::from_vec(out, shape, x.device())
    }

    /// `[rows, n]` products of quantised rows.
    pub fn matmul(&self, x: &QuantRows, path: KernelPath) -> Vec<f32> {
        assert_eq!(x.k, self.k, "input width");
        let path = if path.available() { path } else { KernelPath::Scalar };
        let mut out = vec![0f32; x.rows * self.n];
        if x.rows == 0 {
            return out;
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let threads = rayon::current_num_threads().min(self.tiles);
            if threads > 1 && x.rows * self.n * self.k >= PARALLEL_MIN_MACS {
                Helped::run(self, x, path, &mut out, threads);
                return out;
            }
        }
        // SAFETY: `out` holds `rows × n` values.
        unsafe { self.run_tiles(x, 0..self.tiles, path, out.as_mut_ptr()) };
        out
    }

    /// Computes the columns of `tiles` for every row into `out` (`[rows, n]`).
    ///
    /// # Safety
    /// `out` must be valid for `rows × n` writes, and no one else may touch these columns.
    unsafe fn run_tiles(&self, x: &QuantRows, tiles: std::ops::Range<usize>, path: KernelPath, out: *mut f32) {
        let nb = self.k / BLOCK;
        for t in tiles {
            let w = &self.w[t * nb * self.format.weight_bytes()..(t + 1) * nb * self.format.weight_bytes()];
            let s = &self.s[t * nb * self.format.scale_words()..(t + 1) * nb * self.format.scale_words()];
            let cols = TILE.min(self.n - t * TILE);
            let mut r0 = 0;
            while r0 < x.rows {
                let nr = MAX_ROWS.min(x.rows - r0);
                let mut tile = [[0f32; TILE]; MAX_ROWS];
                let rows = Rows { x, r0, nb };
                match path {
                    #[cfg(target_arch = "x86_64")]
                    KernelPath::Vnni512 => x86::vnni(self.format, nr, w, s, &rows, &mut tile),
                    #[cfg(target_arch = "x86_64")]
                    KernelPath::Avx2 => x86::avx2(self.format, nr, w, s, &rows, &mut tile),
                    _ => scalar(self.format, nr, w, s, &rows, &mut tile),
                }
                for (r, row) in tile.iter().enumerate().take(nr) {
                    std::ptr::copy_nonoverlapping(row.as_ptr(), out.add((r0 + r) * self.n + t * TILE), cols);
                }
                r0 += nr;
            }
        }
    }
}

/// One product shared between the calling thread and helpers on rayon's pool: chunks of tiles
/// are claimed from a counter. The caller starts at once and never waits for a helper that has
/// not started (on a busy machine it may not be scheduled for milliseconds): it only waits for
/// chunks a helper has claimed. A helper that starts after the last claim touches nothing.
#[cfg(not(target_arch = "wasm32"))]
struct Helped {
    next: std::sync::atomic::AtomicUsize,
    done: std::sync::atomic::AtomicUsize,
    chunks: usize,
    chunk: usize,
    lin: *const Int8Linear,
    x: *const QuantRows,
    out: *mut f32,
    path: KernelPath,
}

// SAFETY: the pointers are dereferenced only for a claimed chunk, and `run` returns only after
// every claimed chunk is done; chunks write disjoint columns of `out`.
#[cfg(not(target_arch = "wasm32"))]
unsafe impl Send for Helped {}
#[cfg(not(target_arch = "wasm32"))]
unsafe impl Sync for Helped {}

#[cfg(not(target_arch = "wasm32"))]
impl Helped {
    fn run(lin: &Int8Linear, x: &QuantRows, path: KernelPath, out: &mut [f32], threads: usize) {
        use std::sync::atomic::Ordering;
        let chunk = (lin.tiles / (threads * 4)).max(1);
        let chunks = lin.tiles.div_ceil(chunk);
        let job = std::sync::Arc::new(Helped {
            next: 0.into(),
            done: 0.into(),
            chunks,
            chunk,
            lin,
            x,
            out: out.as_mut_ptr(),
            path,
        });
        for _ in 1..threads {
            let job = job.clone();
            rayon::spawn(move || job.work());
        }
        job.work();
        let mut spins = 0u32;
        while job.done.load(Ordering::Acquire) < chunks {
            if spins < 2000 {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
    }

    fn work(&self) {
        use std::sync::atomic::Ordering;
        loop {
            let c = self.next.fetch_add(1, Ordering::Relaxed);
            if c >= self.chunks {
                return;
            }
            // SAFETY: see the Send/Sync note: the caller is still waiting for this chunk.
            unsafe {
                let lin = &*self.lin;
                let tiles = c * self.chunk..((c + 1) * self.chunk).min(lin.tiles);
                lin.run_tiles(&*self.x, tiles, self.path, self.out);
            }
            self.done.fetch_add(1, Ordering::Release);
        }
    }
}

/// The quantised input rows a micro-kernel call reads: rows `r0..r0 + nr`.
struct Rows<'a> {
    x: &'a QuantRows,
    r0: usize,
    nb: usize,
}

impl Rows<'_> {
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    fn q(&self, r: usize) -> &[i8] {
        let k = self.x.k;
        &self.x.q[(self.r0 + r) * k..(self.r0 + r + 1) * k]
    }
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    fn lo(&self, r: usize) -> &[i8] {
        let k = self.x.k;
        &self.x.lo[(self.r0 + r) * k..(self.r0 + r + 1) * k]
    }
    fn at(&self, v: &[f32], r: usize, b: usize) -> f32 {
        v[(self.r0 + r) * self.nb + b]
    }
    fn scale(&self, r: usize, b: usize) -> f32 {
        self.at(&self.x.scale, r, b)
    }
    fn scaled_sum(&self, r: usize, b: usize) -> f32 {
        self.at(&self.x.scaled_sum, r, b)
    }
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    fn sum(&self, r: usize, b: usize) -> i32 {
        self.x.sum[(self.r0 + r) * self.nb + b]
    }
}

/// The portable path: the same integers and the same f32 operations, one output at a time.
fn scalar(format: Format, nr: usize, w: &[u8], s: &[u16], rows: &Rows, out: &mut [[f32; TILE]; MAX_ROWS]) {
    let wb = format.weight_bytes();
    let sw = format.scale_words();
    let mut wq = [0i32; BLOCK];
    for c in 0..TILE {
        let (g, gc) = (c / 16, c % 16);
        let mut acc = [0f32; MAX_ROWS];
        for b in 0..rows.nb {
            let base = b * wb;
            for (e, q) in wq.iter_mut().enumerate() {
                let (j, kk) = (e / 4, e % 4);
                *q = match format {
                    Format::Q4_1 => {
                        let byte = w[base + (j / 2) * 128 + g * 64 + gc * 4 + kk];
                        (if j % 2 == 0 { byte & 0x0F } else { byte >> 4 }) as i32
                    }
                    Format::Q8_0 => (w[base + j * 128 + g * 64 + gc * 4 + kk] ^ 0x80) as i8 as i32,
                };
            }
            let d = f16::from_bits(s[b * sw + c]).to_f32();
            for (r, acc) in acc.iter_mut().enumerate().take(nr) {
                let dot: i32 = (0..BLOCK).map(|e| wq[e] * rows.x.int(rows.r0 + r, b * BLOCK + e)).sum();
                *acc = (dot as f32).mul_add(d * rows.scale(r, b), *acc);
                if format == Format::Q4_1 {
                    let m = f16::from_bits(s[b * sw + TILE + c]).to_f32();
                    *acc = m.mul_add(rows.scaled_sum(r, b), *acc);
                }
            }
        }
        for r in 0..nr {
            out[r][c] = acc[r];
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(clippy::needless_range_loop)] // register blocks indexed by row and half, as in the layout notes
mod x86 {
    use super::{Format, Rows, BLOCK, MAX_ROWS, STEPS, TILE};
    use std::arch::x86_64::*;

    /// Dispatches to the micro-kernel for `nr` rows.
    pub(super) fn vnni(format: Format, nr: usize, w: &[u8], s: &[u16], rows: &Rows, out: &mut [[f32; TILE]; MAX_ROWS]) {
        debug_assert!(w.len() >= rows.nb * format.weight_bytes() && s.len() >= rows.nb * format.scale_words());
        // SAFETY: the caller checked the CPU features (KernelPath::available); slices are long
        // enough for `nb` blocks (asserted above), rows hold `nb` blocks.
        unsafe {
            match (format, nr, rows.x.is_wide()) {
                (Format::Q4_1, 1, false) => vnni_tile::<1, true, false>(w, s, rows, out),
                (Format::Q4_1, 2, false) => vnni_tile::<2, true, false>(w, s, rows, out),
                (Format::Q4_1, 3, false) => vnni_tile::<3, true, false>(w, s, rows, out),
                (Format::Q4_1, _, false) => vnni_tile::<4, true, false>(w, s, rows, out),
                (Format::Q8_0, 1, false) => vnni_tile::<1, false, false>(w, s, rows, out),
                (Format::Q8_0, 2, false) => vnni_tile::<2, false, false>(w, s, rows, out),
                (Format::Q8_0, 3, false) => vnni_tile::<3, false, false>(w, s, rows, out),
                (Format::Q8_0, _, false) => vnni_tile::<4, false, false>(w, s, rows, out),
                (Format::Q4_1, 1, true) => vnni_tile::<1, true, true>(w, s, rows, out),
                (Format::Q4_1, 2, true) => vnni_tile::<2, true, true>(w, s, rows, out),
                (Format::Q4_1, 3, true) => vnni_tile::<3, true, true>(w, s, rows, out),
                (Format::Q4_1, _, true) => vnni_tile::<4, true, true>(w, s, rows, out),
                (Format::Q8_0, 1, true) => vnni_tile::<1, false, true>(w, s, rows, out),
                (Format::Q8_0, 2, true) => vnni_tile::<2, false, true>(w, s, rows, out),
                (Format::Q8_0, 3, true) => vnni_tile::<3, false, true>(w, s, rows, out),
                (Format::Q8_0, _, true) => vnni_tile::<4, false, true>(w, s, rows, out),
            }
        }
    }

    /// [`super::quantize_block`] with AVX-512: the same operations (the maximum is exact in any
    /// order; conversion rounds to nearest, ties to even, as `round_ties_even`).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn quantize_block(x: &[f32; BLOCK], q: &mut [i8; BLOCK]) -> (f32, i32) {
        let x0 = _mm512_loadu_ps(x.as_ptr());
        let x1 = _mm512_loadu_ps(x.as_ptr().add(16));
        let amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
        let d = amax / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        let idv = _mm512_set1_ps(id);
        let (lo, hi) = (_mm512_set1_epi32(-127), _mm512_set1_epi32(127));
        let q0 = _mm512_min_epi32(_mm512_max_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(x0, idv)), lo), hi);
        let q1 = _mm512_min_epi32(_mm512_max_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(x1, idv)), lo), hi);
        _mm_storeu_si128(q.as_mut_ptr() as *mut __m128i, _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128(q.as_mut_ptr().add(16) as *mut __m128i, _mm512_cvtepi32_epi8(q1));
        (d, _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1)))
    }

    /// [`super::quantize_block_wide`] with AVX-512: the same integers. `⌊n / 254⌋` for
    /// `n = a + 127 + 254·128` (255..65023) is `⌊(n + 0.5) · fl(1/254)⌋` exactly: the fraction
    /// stays at least 0.5/254 away from an integer, far beyond the product's rounding.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn quantize_block_wide(x: &[f32; BLOCK], hi: &mut [i8; BLOCK], lo: &mut [i8; BLOCK]) -> (f32, i32) {
        let x0 = _mm512_loadu_ps(x.as_ptr());
        let x1 = _mm512_loadu_ps(x.as_ptr().add(16));
        let amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
        let d = amax / super::WIDE_MAX as f32;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        let idv = _mm512_set1_ps(id);
        let (min, max) = (_mm512_set1_epi32(-super::WIDE_MAX), _mm512_set1_epi32(super::WIDE_MAX));
        let offset = _mm512_set1_epi32(127 + 254 * 128);
        let (half, inv) = (_mm512_set1_ps(0.5), _mm512_set1_ps(1.0 / 254.0));
        let mut sum = _mm512_setzero_si512();
        for (h, xv) in [x0, x1].into_iter().enumerate() {
            let a = _mm512_min_epi32(_mm512_max_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(xv, idv)), min), max);
            let n = _mm512_cvtepi32_ps(_mm512_add_epi32(a, offset));
            let ah = _mm512_sub_epi32(_mm512_cvttps_epi32(_mm512_mul_ps(_mm512_add_ps(n, half), inv)), _mm512_set1_epi32(128));
            let al = _mm512_sub_epi32(a, _mm512_mullo_epi32(ah, _mm512_set1_epi32(254)));
            _mm_storeu_si128(hi.as_mut_ptr().add(h * 16) as *mut __m128i, _mm512_cvtepi32_epi8(ah));
            _mm_storeu_si128(lo.as_mut_ptr().add(h * 16) as *mut __m128i, _mm512_cvtepi32_epi8(al));
            sum = _mm512_add_epi32(sum, a);
        }
        (d, _mm512_reduce_add_epi32(sum))
    }

    /// Four activation bytes as one i32 lane, broadcast.
    #[inline(always)]
    unsafe fn bcast4(p: *const i8) -> i32 {
        (p as *const i32).read_unaligned()
    }

    /// One block's integer products into `iacc` (`[[__m512i; 2]; NR]`): the weights at `wp`
    /// against each row's 32 values from `a[r] + off`. A macro, not a function: the
    /// accumulators must stay in registers (a call would pass them through memory).
    macro_rules! vnni_block {
        ($nr:expr, $q4:expr, $wp:expr, $a:expr, $off:expr, $iacc:expr) => {{
            let (wp, a, off, iacc) = ($wp, $a, $off, $iacc);
            if $q4 {
                let nib = _mm512_set1_epi8(0x0F);
                for p in 0..STEPS / 2 {
                    let v0 = _mm512_loadu_si512(wp.add(p * 128) as *const _);
                    let v1 = _mm512_loadu_si512(wp.add(p * 128 + 64) as *const _);
                    let lo0 = _mm512_and_si512(v0, nib);
                    let lo1 = _mm512_and_si512(v1, nib);
                    let hi0 = _mm512_and_si512(_mm512_srli_epi16::<4>(v0), nib);
                    let hi1 = _mm512_and_si512(_mm512_srli_epi16::<4>(v1), nib);
                    for r in 0..$nr {
                        let ap = a[r].add(off + p * 8);
                        let x0 = _mm512_set1_epi32(bcast4(ap));
                        let x1 = _mm512_set1_epi32(bcast4(ap.add(4)));
                        iacc[r][0] = _mm512_dpbusd_epi32(iacc[r][0], lo0, x0);
                        iacc[r][1] = _mm512_dpbusd_epi32(iacc[r][1], lo1, x0);
                        iacc[r][0] = _mm512_dpbusd_epi32(iacc[r][0], hi0, x1);
                        iacc[r][1] = _mm512_dpbusd_epi32(iacc[r][1], hi1, x1);
                    }
                }
            } else {
                for j in 0..STEPS {
                    let v0 = _mm512_loadu_si512(wp.add(j * 128) as *const _);
                    let v1 = _mm512_loadu_si512(wp.add(j * 128 + 64) as *const _);
                    for r in 0..$nr {
                        let x = _mm512_set1_epi32(bcast4(a[r].add(off + j * 4)));
                        iacc[r][0] = _mm512_dpbusd_epi32(iacc[r][0], v0, x);
                        iacc[r][1] = _mm512_dpbusd_epi32(iacc[r][1], v1, x);
                    }
                }
            }
        }};
    }

    /// 32 columns × NR rows: per k-step, two 512-bit weight vectors (16 columns × 4 values
    /// each) against each row's 4 values broadcast, accumulated by `vpdpbusd`. With `W` (16-bit
    /// rows) a block runs twice, high parts then low parts: `Σ q·a = 254·Σ q·a_hi + Σ q·a_lo`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn vnni_tile<const NR: usize, const Q4: bool, const W: bool>(
        w: &[u8],
        s: &[u16],
        rows: &Rows,
        out: &mut [[f32; TILE]; MAX_ROWS],
    ) {
        let format = if Q4 { Format::Q4_1 } else { Format::Q8_0 };
        let (wb, sw) = (format.weight_bytes(), format.scale_words());
        let mut facc = [[_mm512_setzero_ps(); 2]; NR];
        let hi: [*const i8; NR] = std::array::from_fn(|r| rows.q(r).as_ptr());
        let lo: [*const i8; NR] = std::array::from_fn(|r| if W { rows.lo(r).as_ptr() } else { hi[r] });
        for b in 0..rows.nb {
            let wp = w.as_ptr().add(b * wb);
            let mut iacc = [[_mm512_setzero_si512(); 2]; NR];
            vnni_block!(NR, Q4, wp, &hi, b * BLOCK, &mut iacc);
            if W {
                let f = _mm512_set1_epi32(254);
                for acc in iacc.iter_mut() {
                    acc[0] = _mm512_mullo_epi32(acc[0], f);
                    acc[1] = _mm512_mullo_epi32(acc[1], f);
                }
                vnni_block!(NR, Q4, wp, &lo, b * BLOCK, &mut iacc);
            }
            let sp = s.as_ptr().add(b * sw);
            let d0 = _mm512_cvtph_ps(_mm256_loadu_si256(sp as *const __m256i));
            let d1 = _mm512_cvtph_ps(_mm256_loadu_si256(sp.add(16) as *const __m256i));
            let (m0, m1) = if Q4 {
                (
                    _mm512_cvtph_ps(_mm256_loadu_si256(sp.add(TILE) as *const __m256i)),
                    _mm512_cvtph_ps(_mm256_loadu_si256(sp.add(TILE + 16) as *const __m256i)),
                )
            } else {
                (_mm512_setzero_ps(), _mm512_setzero_ps())
            };
            for r in 0..NR {
                let da = _mm512_set1_ps(rows.scale(r, b));
                let (mut i0, mut i1) = (iacc[r][0], iacc[r][1]);
                if !Q4 {
                    // The weights went in as q + 128: take 128·Σa back off, exactly.
                    let c = _mm512_set1_epi32(rows.sum(r, b) << 7);
                    i0 = _mm512_sub_epi32(i0, c);
                    i1 = _mm512_sub_epi32(i1, c);
                }
                facc[r][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i0), _mm512_mul_ps(d0, da), facc[r][0]);
                facc[r][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i1), _mm512_mul_ps(d1, da), facc[r][1]);
                if Q4 {
                    let sa = _mm512_set1_ps(rows.scaled_sum(r, b));
                    facc[r][0] = _mm512_fmadd_ps(m0, sa, facc[r][0]);
                    facc[r][1] = _mm512_fmadd_ps(m1, sa, facc[r][1]);
                }
            }
        }
        for r in 0..NR {
            _mm512_storeu_ps(out[r].as_mut_ptr(), facc[r][0]);
            _mm512_storeu_ps(out[r].as_mut_ptr().add(16), facc[r][1]);
        }
    }

    pub(super) fn avx2(format: Format, nr: usize, w: &[u8], s: &[u16], rows: &Rows, out: &mut [[f32; TILE]; MAX_ROWS]) {
        debug_assert!(w.len() >= rows.nb * format.weight_bytes() && s.len() >= rows.nb * format.scale_words());
        // SAFETY: as for `vnni`. Two rows at a time (16 ymm registers), each column group alone.
        unsafe {
            let mut r = 0;
            let mut spare = [0f32; TILE];
            while r < nr {
                let sub = Rows { x: rows.x, r0: rows.r0 + r, nb: rows.nb };
                let (o0, o1) = out.split_at_mut(r + 1);
                for g in 0..2 {
                    let o = [&mut o0[r], if nr - r > 1 { &mut o1[0] } else { &mut spare }];
                    match (format, nr - r, rows.x.is_wide()) {
                        (Format::Q4_1, 1, false) => avx2_group::<1, true, false>(w, s, &sub, g, o),
                        (Format::Q4_1, _, false) => avx2_group::<2, true, false>(w, s, &sub, g, o),
                        (Format::Q8_0, 1, false) => avx2_group::<1, false, false>(w, s, &sub, g, o),
                        (Format::Q8_0, _, false) => avx2_group::<2, false, false>(w, s, &sub, g, o),
                        (Format::Q4_1, 1, true) => avx2_group::<1, true, true>(w, s, &sub, g, o),
                        (Format::Q4_1, _, true) => avx2_group::<2, true, true>(w, s, &sub, g, o),
                        (Format::Q8_0, 1, true) => avx2_group::<1, false, true>(w, s, &sub, g, o),
                        (Format::Q8_0, _, true) => avx2_group::<2, false, true>(w, s, &sub, g, o),
                    }
                }
                r += 2;
            }
        }
    }

    /// 16 columns (group `g` of the tile) × NR ≤ 2 rows with 256-bit vectors; `W` as for
    /// `vnni_tile`.
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn avx2_group<const NR: usize, const Q4: bool, const W: bool>(
        w: &[u8],
        s: &[u16],
        rows: &Rows,
        g: usize,
        out: [&mut [f32; TILE]; 2],
    ) {
        let format = if Q4 { Format::Q4_1 } else { Format::Q8_0 };
        let (wb, sw) = (format.weight_bytes(), format.scale_words());
        let nib = _mm256_set1_epi8(0x0F);
        let flip = _mm256_set1_epi8(-128);
        let ones = _mm256_set1_epi16(1);
        let mut facc = [[_mm256_setzero_ps(); 2]; NR];
        let parts: [[*const i8; NR]; 2] =
            [std::array::from_fn(|r| rows.q(r).as_ptr()), std::array::from_fn(|r| if W { rows.lo(r).as_ptr() } else { rows.q(r).as_ptr() })];
        for b in 0..rows.nb {
            let wp = w.as_ptr().add(b * wb + g * 64);
            let mut iacc = [[_mm256_setzero_si256(); 2]; NR];
            for (part, a) in parts.iter().enumerate().take(if W { 2 } else { 1 }) {
                if part == 1 {
                    let f = _mm256_set1_epi32(254);
                    for acc in iacc.iter_mut() {
                        acc[0] = _mm256_mullo_epi32(acc[0], f);
                        acc[1] = _mm256_mullo_epi32(acc[1], f);
                    }
                }
                if Q4 {
                    for p in 0..STEPS / 2 {
                        for h in 0..2 {
                            let v = _mm256_loadu_si256(wp.add(p * 128 + h * 32) as *const __m256i);
                            let lo = _mm256_and_si256(v, nib);
                            let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), nib);
                            for r in 0..NR {
                                let ap = a[r].add(b * BLOCK + p * 8);
                                let x0 = _mm256_set1_epi32(bcast4(ap));
                                let x1 = _mm256_set1_epi32(bcast4(ap.add(4)));
                                let p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, x0), ones);
                                let p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, x1), ones);
                                iacc[r][h] = _mm256_add_epi32(iacc[r][h], _mm256_add_epi32(p0, p1));
                            }
                        }
                    }
                } else {
                    for j in 0..STEPS {
                        for h in 0..2 {
                            let v = _mm256_loadu_si256(wp.add(j * 128 + h * 32) as *const __m256i);
                            let q = _mm256_xor_si256(v, flip); // back to signed q
                            let aq = _mm256_abs_epi8(q);
                            for r in 0..NR {
                                let x = _mm256_set1_epi32(bcast4(a[r].add(b * BLOCK + j * 4)));
                                // |q| · (x with q's sign) = q · x; pairs stay within i16.
                                let p = _mm256_madd_epi16(_mm256_maddubs_epi16(aq, _mm256_sign_epi8(x, q)), ones);
                                iacc[r][h] = _mm256_add_epi32(iacc[r][h], p);
                            }
                        }
                    }
                }
            }
            let sp = s.as_ptr().add(b * sw + g * 16);
            for h in 0..2 {
                let d = _mm256_cvtph_ps(_mm_loadu_si128(sp.add(h * 8) as *const __m128i));
                let m = if Q4 { _mm256_cvtph_ps(_mm_loadu_si128(sp.add(TILE + h * 8) as *const __m128i)) } else { d };
                for r in 0..NR {
                    let da = _mm256_set1_ps(rows.scale(r, b));
                    facc[r][h] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(iacc[r][h]), _mm256_mul_ps(d, da), facc[r][h]);
                    if Q4 {
                        facc[r][h] = _mm256_fmadd_ps(m, _mm256_set1_ps(rows.scaled_sum(r, b)), facc[r][h]);
                    }
                }
            }
        }
        let [o0, o1] = out;
        for h in 0..2 {
            _mm256_storeu_ps(o0.as_mut_ptr().add(g * 16 + h * 8), facc[0][h]);
            if NR > 1 {
                _mm256_storeu_ps(o1.as_mut_ptr().add(g * 16 + h * 8), facc[NR - 1][h]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random numbers in [0, 1).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> f64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
        fn normal(&mut self) -> f32 {
            let (u, v) = (self.next().max(1e-12), self.next());
            ((-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()) as f32
        }
    }

    /// Random GGUF blocks of an `[n, k]` matrix, scales like the model's.
    fn random_blocks(format: Format, n: usize, k: usize, seed: u64) -> Vec<u8> {
        let mut rng = Lcg(seed);
        let mut out = Vec::new();
        for _ in 0..n * k / BLOCK {
            let d = f16::from_f32((0.002 + 0.01 * rng.next()) as f32);
            out.extend(d.to_bits().to_le_bytes());
            match format {
                Format::Q4_1 => {
                    let m = f16::from_f32(-(0.02 + 0.08 * rng.next()) as f32);
                    out.extend(m.to_bits().to_le_bytes());
                    out.extend((0..16).map(|_| (rng.next() * 256.0) as u8));
                }
                Format::Q8_0 => out.extend((0..32).map(|_| (rng.next() * 256.0) as u8)),
            }
        }
        out
    }

    fn random_x(rows: usize, k: usize, seed: u64) -> Vec<f32> {
        let mut rng = Lcg(seed);
        (0..rows * k).map(|i| rng.normal() * if i % 97 == 0 { 8.0 } else { 1.0 }).collect()
    }

    /// The rows quantised both ways: 8 and 16 bits.
    fn quantised(x: &[f32], k: usize) -> [QuantRows; 2] {
        [QuantRows::new(x, k), QuantRows::new_wide(x, k)]
    }

    const PATHS: [KernelPath; 3] = [KernelPath::Vnni512, KernelPath::Avx2, KernelPath::Scalar];
    const SHAPES: [(usize, usize); 4] = [(576, 576), (192, 576), (40, 96), (576, 1536)];

    #[test]
    fn matches_the_f64_product_of_the_dequantised_weights_and_quantised_rows() {
        for format in [Format::Q4_1, Format::Q8_0] {
            for (n, k) in SHAPES {
                let lin = Int8Linear::from_blocks(format, n, k, &random_blocks(format, n, k, 7)).unwrap();
                let rows = 5;
                for x in quantised(&random_x(rows, k, 3), k) {
                let nb = k / BLOCK;
                for path in PATHS.into_iter().filter(|p| p.available()) {
                    let y = lin.matmul(&x, path);
                    for r in 0..rows {
                        for c in 0..n {
                            let (mut exact, mut size) = (0f64, 0f64);
                            for b in 0..nb {
                                let da = x.scale[r * nb + b] as f64;
                                let mut dot = 0f64;
                                for i in b * BLOCK..(b + 1) * BLOCK {
                                    let a = x.int(r, i) as f64;
                                    dot += lin.weight(c, i) * a;
                                    let (q, d, m) = lin.parts(c, i);
                                    size += (d as f64 * q as f64 * a).abs() * da + (m as f64 * a).abs() * da;
                                }
                                exact += dot * da;
                            }
                            // 2 roundings per block (the fma of each term) + d·d_a + d_a·Σa.
                            let bound = (2 * nb + 4) as f64 * f32::EPSILON as f64 / 2.0 * size;
                            let got = y[r * n + c] as f64;
                            assert!(
                                (got - exact).abs() <= bound,
                                "{format:?} {path:?} [{n},{k}] r{r} c{c}: {got} vs {exact} (bound {bound})"
                            );
                        }
                    }
                }
                }
            }
        }
    }

    #[test]
    fn is_close_to_the_f32_product() {
        for format in [Format::Q4_1, Format::Q8_0] {
            for (n, k) in SHAPES {
                let lin = Int8Linear::from_blocks(format, n, k, &random_blocks(format, n, k, 11)).unwrap();
                let rows = 4;
                let xs = random_x(rows, k, 5);
                for x in quantised(&xs, k) {
                let steps = if x.is_wide() { 2.0 * WIDE_MAX as f64 } else { 254.0 };
                let y = lin.matmul(&x, KernelPath::best());
                let nb = k / BLOCK;
                let (mut err2, mut ref2) = (0f64, 0f64);
                for r in 0..rows {
                    for c in 0..n {
                        let mut exact = 0f64;
                        let mut bound = 0f64;
                        for b in 0..nb {
                            let xb = &xs[r * k + b * BLOCK..r * k + (b + 1) * BLOCK];
                            let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs())) as f64;
                            let mut wsum = 0f64;
                            for (i, &xv) in xb.iter().enumerate() {
                                let wv = lin.weight(c, b * BLOCK + i);
                                exact += wv * xv as f64;
                                wsum += wv.abs();
                            }
                            // Each input moves by at most half a step, d_a / 2 = max|x| / 254
                            // (16 bits: max|x| / 64768).
                            bound += amax / steps * wsum * (1.0 + 1e-5);
                        }
                        let got = y[r * n + c] as f64;
                        assert!((got - exact).abs() <= bound + 1e-6, "{format:?} [{n},{k}] {got} vs {exact} (bound {bound})");
                        err2 += (got - exact).powi(2);
                        ref2 += exact * exact;
                    }
                }
                let rel = (err2 / ref2).sqrt();
                let limit = if x.is_wide() { 1e-4 } else { 0.01 };
                assert!(rel < limit, "{format:?} [{n},{k}] wide {} relative error {rel}", x.is_wide());
                }
            }
        }
    }

    #[test]
    fn a_row_gives_the_same_bits_alone_or_in_a_batch_of_37() {
        for format in [Format::Q4_1, Format::Q8_0] {
            let (n, k) = (576, 1536);
            let lin = Int8Linear::from_blocks(format, n, k, &random_blocks(format, n, k, 13)).unwrap();
            let xs = random_x(37, k, 17);
            for (path, wide) in PATHS.into_iter().filter(|p| p.available()).flat_map(|p| [(p, false), (p, true)]) {
                let quant = |x: &[f32]| if wide { QuantRows::new_wide(x, k) } else { QuantRows::new(x, k) };
                let batch = lin.matmul(&quant(&xs), path);
                for r in 0..37 {
                    let alone = lin.matmul(&quant(&xs[r * k..(r + 1) * k]), path);
                    assert!(
                        alone.iter().zip(&batch[r * n..(r + 1) * n]).all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{format:?} {path:?} wide {wide} row {r}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_path_gives_the_same_bits() {
        let available: Vec<_> = PATHS.into_iter().filter(|p| p.available()).collect();
        eprintln!("kernel paths on this CPU: {available:?}");
        for format in [Format::Q4_1, Format::Q8_0] {
            for (n, k) in SHAPES {
                let lin = Int8Linear::from_blocks(format, n, k, &random_blocks(format, n, k, 19)).unwrap();
                for (rows, x) in [1, 2, 3, 7].into_iter().flat_map(|rows| quantised(&random_x(rows, k, 23 + rows as u64), k).map(|x| (rows, x))) {
                    let reference = lin.matmul(&x, KernelPath::Scalar);
                    for &path in &available {
                        let y = lin.matmul(&x, path);
                        assert!(
                            y.iter().zip(&reference).all(|(a, b)| a.to_bits() == b.to_bits()),
                            "{format:?} {path:?} [{n},{k}] {rows} rows (wide {}) differs from scalar",
                            x.is_wide()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn row_quantisation_is_the_same_on_every_path() {
        let mut xs = random_x(9, 1536, 37);
        xs[5] = 0.0;
        xs[100..132].iter_mut().for_each(|v| *v = 0.0); // an all-zero block
        xs[200] = 1e-30;
        // A block with scale exactly 1: x·(1/d) lands on .5 ties, which round to even.
        xs[320] = 127.0;
        for (i, v) in xs[321..352].iter_mut().enumerate() {
            *v = i as f32 - 15.5;
        }
        let a = QuantRows::new(&xs, 1536);
        let b = QuantRows::new_portable(&xs, 1536);
        assert_eq!(a.q, b.q);
        assert_eq!(a.scale[10], 1.0);
        assert_eq!(&a.q[321..325], &[-16, -14, -14, -12]);
        assert_eq!(a.sum, b.sum);
        assert!(a.scale.iter().zip(&b.scale).all(|(x, y)| x.to_bits() == y.to_bits()));
        assert!(a.scaled_sum.iter().zip(&b.scaled_sum).all(|(x, y)| x.to_bits() == y.to_bits()));
        // Half a step at most.
        for (i, &v) in xs.iter().enumerate() {
            let (r, c) = (i / 1536, i % 1536);
            assert!((a.value(r, c) - v).abs() <= a.scale[i / BLOCK] * 0.5001, "{i}");
        }
    }

    #[test]
    fn wide_rows_split_into_int8_parts_and_round_255_times_finer() {
        let mut xs = random_x(3, 96, 41);
        xs[0] = -5.0; // a block whose extreme is negative
        xs[32..64].iter_mut().for_each(|v| *v = 0.0);
        let w = QuantRows::new_wide(&xs, 96);
        let p = QuantRows::new_wide_portable(&xs, 96);
        assert_eq!((&w.q, &w.lo, &w.sum), (&p.q, &p.lo, &p.sum), "SIMD and portable quantisation agree");
        assert!(w.scale.iter().zip(&p.scale).all(|(a, b)| a.to_bits() == b.to_bits()));
        assert!(w.is_wide() && !QuantRows::new(&xs, 96).is_wide());
        assert_eq!(w.int(0, 0), -WIDE_MAX, "the extreme maps to the largest magnitude");
        for (i, &v) in xs.iter().enumerate() {
            let (r, c) = (i / 96, i % 96);
            assert!((-127..=126).contains(&(w.lo[i] as i32)), "{i}: low part {}", w.lo[i]);
            let step = w.scale[i / BLOCK];
            assert!((w.value(r, c) - v).abs() <= step * 0.5001, "{i}: {} vs {v}", w.value(r, c));
        }
        for b in 0..9 {
            let s: i32 = (0..BLOCK).map(|e| w.int(b / 3, (b % 3) * BLOCK + e)).sum();
            assert_eq!(w.sum[b], s);
        }
        assert_eq!(w.scale[1], 0.0);
    }

    #[test]
    fn dequantises_like_candle() {
        use candle_core::Device;
        for (dtype, format) in [(GgmlDType::Q4_1, Format::Q4_1), (GgmlDType::Q8_0, Format::Q8_0)] {
            let (n, k) = (40, 64);
            let t = Tensor::from_vec(random_x(n, k, 29), (n, k), &Device::Cpu).unwrap();
            let q = QTensor::quantize(&t, dtype).unwrap();
            let lin = Int8Linear::from_qtensor(&q).unwrap();
            assert_eq!(lin.format(), format);
            let deq: Vec<f32> = q.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            for c in 0..n {
                for i in 0..k {
                    // candle computes d·q + m in f32: within half an ulp of the exact value.
                    let exact = lin.weight(c, i);
                    let got = deq[c * k + i] as f64;
                    assert!((got - exact).abs() <= exact.abs() * 6e-8, "({c}, {i}): {got} vs {exact}");
                }
            }
            let x = Tensor::from_vec(random_x(3, k, 31), (3, k), &Device::Cpu).unwrap();
            let y = lin.forward(&x).unwrap();
            assert_eq!(y.dims(), &[3, n]);
        }
    }
}
