//! f32 products over weights held as the file's blocks ([`Weights::Compact`]).
//!
//! [`Weights::F32`] expands every Q4_1 / Q8_0 matrix to f32 once: ~540 MB for SmolLM2, five times
//! the file. Here a matrix keeps the file's blocks (0.6 bytes a weight for Q4_1) and each product
//! expands one panel of output columns at a time into a per-thread buffer, then multiplies it
//! with the same `gemm` call and strides that candle's f32 matmul uses for the expanded matrix.
//! The expanded values are candle's own (`d·q + m`, `d·q`, in the same f32 operations), and
//! `gemm` splits a sum over `k` by `k` alone once a product is past its small-shape kernels,
//! which the panels are kept clear of ([`min_panel`]) — so every product of two or more rows has
//! **the same bits as [`Weights::F32`]'s**: predictions are those the tags were trained for,
//! batch-invariant as before.
//!
//! The price is the expansion, `n·k` values per product whatever its number of rows: small next
//! to the product's `2·rows·n·k` operations for prefill and predictions (tens to hundreds of
//! rows). A one-row product (decoding) skips it and works on the blocks directly
//! (`d·Σq·x + m·Σx` per block), within rounding of F32 and faster than streaming f32 weights.
//!
//! [`Weights::Compact`]: super::Weights::Compact
//! [`Weights::F32`]: super::Weights::F32

use std::cell::RefCell;
use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Tensor;
use half::f16;

use super::int8::{Format, BLOCK};

/// f32 values a panel aims at (256 KiB: it stays in L2 while `gemm` reads it).
const PANEL_VALUES: usize = 64 * 1024;

/// The fewest columns a panel of a product of `rows` rows may have. `gemm` picks its strategy
/// by the product's shape: up to 256 outputs (`rows × columns`), or up to 64 rows and 64
/// columns, it runs kernels that split the sum over `k` elsewhere than the general one (which
/// splits it by `k` alone). A panel wider than those bounds takes the general path, as the whole
/// matrix does (SmolLM2's are all wider; a narrower matrix is one panel), so its sums are the
/// same. Over 64 rows, no panel of 16 columns or more meets either bound.
fn min_panel(rows: usize) -> usize {
    if rows > 64 {
        16
    } else {
        (256 / rows + 1).max(65).next_multiple_of(16)
    }
}

/// A Q4_1 or Q8_0 weight matrix `[n, k]` held as the file's blocks.
pub struct CompactLinear {
    /// The matrix as the GGUF file stores it (candle's `QTensor`, shared with the embedding
    /// table where the output head is tied to it).
    blocks: Arc<QTensor>,
    format: Format,
    n: usize,
    k: usize,
}

impl std::fmt::Debug for CompactLinear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CompactLinear({:?}, n {}, k {})", self.format, self.n, self.k)
    }
}

thread_local! {
    static PANEL: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

impl CompactLinear {
    /// From a Q4_1 or Q8_0 matrix of shape `(n, k)`.
    pub fn new(blocks: Arc<QTensor>) -> candle_core::Result<Self> {
        let format = match blocks.dtype() {
            GgmlDType::Q4_1 => Format::Q4_1,
            GgmlDType::Q8_0 => Format::Q8_0,
            other => candle_core::bail!("compact weights need Q4_1 or Q8_0 matrices, not {other:?}"),
        };
        let (n, k) = blocks.shape().dims2()?;
        if k == 0 || !k.is_multiple_of(BLOCK) {
            candle_core::bail!("cannot hold a [{n}, {k}] matrix in blocks of {BLOCK}");
        }
        let expected = n * (k / BLOCK) * format.file_block_bytes();
        let held = blocks.data()?.len();
        if held != expected {
            candle_core::bail!("{held} bytes for a [{n}, {k}] {format:?} matrix, expected {expected}");
        }
        Ok(Self { blocks, format, n, k })
    }

    /// Bytes held (the file's blocks).
    pub fn size_in_bytes(&self) -> usize {
        self.n * (self.k / BLOCK) * self.format.file_block_bytes()
    }

    /// The panels' columns for `rows` rows: `step` each, the last one taking the rest (so that
    /// none has fewer than `step`, or is the whole matrix), `step` a multiple of 16 (`gemm`'s
    /// column tiles) of about [`PANEL_VALUES`] values and at least [`min_panel`] columns.
    fn panels(&self, rows: usize) -> (usize, usize) {
        let step = (PANEL_VALUES / self.k / 16 * 16).max(min_panel(rows));
        (step, (self.n / step).max(1))
    }

    /// `x · Wᵀ` over the last dimension of `x` `[.., k]`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims().to_vec();
        match dims.last() {
            Some(&k) if k == self.k => {}
            _ => candle_core::bail!("input of shape {dims:?} for a [{}, {}] weight", self.n, self.k),
        }
        let rows = dims.iter().rev().skip(1).product::<usize>();
        let mut out = vec![0f32; rows * self.n];
        super::with_f32_slice(x, |xs| self.matmul(xs, rows, &mut out))??;
        let mut shape = dims;
        *shape.last_mut().unwrap_or(&mut 0) = self.n;
        Tensor::from_vec(out, shape, x.device())
    }

    /// `out [rows, n] = xs [rows, k] · Wᵀ`.
    pub fn matmul(&self, xs: &[f32], rows: usize, out: &mut [f32]) -> candle_core::Result<()> {
        if xs.len() != rows * self.k || out.len() != rows * self.n {
            candle_core::bail!("compact product: {} inputs and {} outputs for {rows} rows of a [{}, {}] weight", xs.len(), out.len(), self.n, self.k);
        }
        if rows == 0 {
            return Ok(());
        }
        let data = self.blocks.data()?;
        if rows == 1 {
            self.one_row(&data, xs, out);
            return Ok(());
        }
        let (step, panels) = self.panels(rows);
        let out_ptr = SendPtr(out.as_mut_ptr());
        let panel = |p: usize| {
            let cols = p * step..if p + 1 == panels { self.n } else { (p + 1) * step };
            PANEL.with(|buf| {
                let mut buf = buf.borrow_mut();
                if buf.len() < cols.len() * self.k {
                    buf.resize(cols.len() * self.k, 0.0);
                }
                let w = &mut buf[..cols.len() * self.k];
                self.expand(&data, cols.clone(), w);
                // SAFETY: `xs` holds `rows × k` values and `w` `cols × k`; the panel's columns of
                // `out` (`rows × n`) are written by this call alone.
                unsafe { product(rows, cols.len(), self.k, out_ptr.at(cols.start), self.n, xs.as_ptr(), w.as_ptr()) };
            });
        };
        #[cfg(not(target_arch = "wasm32"))]
        if candle_core::utils::get_num_threads() > 1 && panels > 1 {
            use rayon::prelude::*;
            (0..panels).into_par_iter().for_each(panel);
            return Ok(());
        }
        (0..panels).for_each(panel);
        Ok(())
    }

    /// The f32 values of rows `cols` of the matrix into `w` (`[cols, k]`), as candle's
    /// `dequantize` computes them.
    fn expand(&self, data: &[u8], cols: std::ops::Range<usize>, w: &mut [f32]) {
        let fb = self.format.file_block_bytes();
        let nb = self.k / BLOCK;
        let src = &data[cols.start * nb * fb..cols.end * nb * fb];
        match Isa::best() {
            // SAFETY: the CPU has the features (`Isa::best`).
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { expand_avx512(self.format, src, w) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { expand_avx2(self.format, src, w) },
            Isa::Generic => expand_blocks(self.format, src, w),
        }
    }

    /// `out [n] = x [k] · Wᵀ` straight from the blocks, for one input row (decoding): per block,
    /// `d·Σ q·x + m·Σ x`. Rounded unlike `gemm` over the expanded values (last bits), and ~4×
    /// faster than expanding the matrix for a single row.
    fn one_row(&self, data: &[u8], x: &[f32], out: &mut [f32]) {
        let sums: Vec<f32> = x.chunks_exact(BLOCK).map(|b| b.iter().sum()).collect();
        match Isa::best() {
            // SAFETY: the CPU has the features (`Isa::best`).
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { dot_avx512(self.format, data, x, &sums, out) },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { dot_avx2(self.format, data, x, &sums, out) },
            Isa::Generic => dot_blocks(self.format, data, x, &sums, out),
        }
    }
}

/// The widest vectors this CPU has, for the loops below (compiled once per width).
#[derive(Clone, Copy)]
enum Isa {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Generic,
}

impl Isa {
    fn best() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            static BEST: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
            *BEST.get_or_init(|| {
                if std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw") {
                    Isa::Avx512
                } else if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                    Isa::Avx2
                } else {
                    Isa::Generic
                }
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        Isa::Generic
    }
}

/// Every column's dot product with one row `x`, block by block: 16 lanes of `q·x` pairs scaled
/// by the block's `d`, plus `m · Σx` (Q4_1).
#[inline(always)]
fn dot_blocks(format: Format, data: &[u8], x: &[f32], sums: &[f32], out: &mut [f32]) {
    let f16_at = |b: &[u8], o: usize| f16::from_le_bytes([b[o], b[o + 1]]).to_f32();
    let fb = format.file_block_bytes();
    let row_bytes = x.len() / BLOCK * fb;
    for (row, o) in data.chunks_exact(row_bytes).zip(out.iter_mut()) {
        let mut lanes = [0f32; BLOCK / 2];
        let mut mins = 0f32;
        for ((block, xs), &sum) in row.chunks_exact(fb).zip(x.chunks_exact(BLOCK)).zip(sums) {
            let xs: &[f32; BLOCK] = xs.try_into().expect("a block of inputs");
            let d = f16_at(block, 0);
            match format {
                Format::Q4_1 => {
                    let qs: &[u8; BLOCK / 2] = block[4..20].try_into().expect("16 bytes of nibbles");
                    for i in 0..BLOCK / 2 {
                        let q = (qs[i] & 0x0F) as f32 * xs[i] + (qs[i] >> 4) as f32 * xs[i + BLOCK / 2];
                        lanes[i] += q * d;
                    }
                    mins += f16_at(block, 2) * sum;
                }
                Format::Q8_0 => {
                    let qs: &[u8; BLOCK] = block[2..34].try_into().expect("32 bytes");
                    for i in 0..BLOCK / 2 {
                        let q = qs[i] as i8 as f32 * xs[i] + qs[i + BLOCK / 2] as i8 as f32 * xs[i + BLOCK / 2];
                        lanes[i] += q * d;
                    }
                }
            }
        }
        *o = lanes.iter().sum::<f32>() + mins;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,f16c,fma")]
unsafe fn dot_avx512(format: Format, data: &[u8], x: &[f32], sums: &[f32], out: &mut [f32]) {
    dot_blocks(format, data, x, sums, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c,fma")]
unsafe fn dot_avx2(format: Format, data: &[u8], x: &[f32], sums: &[f32], out: &mut [f32]) {
    dot_blocks(format, data, x, sums, out)
}

/// Blocks of the file into f32 values, 32 a block: `d·q + m` (Q4_1, low nibbles first) or
/// `d·q` (Q8_0), a multiply then an add as candle's `to_float` (Rust never fuses them, so the
/// SIMD versions below give the same bits). Fixed-size arrays let the compiler vectorise it.
#[inline(always)]
fn expand_blocks(format: Format, src: &[u8], w: &mut [f32]) {
    let f16_at = |b: &[u8], o: usize| f16::from_le_bytes([b[o], b[o + 1]]).to_f32();
    match format {
        Format::Q4_1 => {
            for (block, out) in src.chunks_exact(20).zip(w.chunks_exact_mut(BLOCK)) {
                let out: &mut [f32; BLOCK] = out.try_into().expect("a block of values");
                let qs: &[u8; BLOCK / 2] = block[4..20].try_into().expect("16 bytes of nibbles");
                let (d, m) = (f16_at(block, 0), f16_at(block, 2));
                for i in 0..BLOCK / 2 {
                    out[i] = (qs[i] & 0x0F) as f32 * d + m;
                    out[i + BLOCK / 2] = (qs[i] >> 4) as f32 * d + m;
                }
            }
        }
        Format::Q8_0 => {
            for (block, out) in src.chunks_exact(34).zip(w.chunks_exact_mut(BLOCK)) {
                let out: &mut [f32; BLOCK] = out.try_into().expect("a block of values");
                let qs: &[u8; BLOCK] = block[2..34].try_into().expect("32 bytes");
                let d = f16_at(block, 0);
                for i in 0..BLOCK {
                    out[i] = qs[i] as i8 as f32 * d;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,f16c")]
unsafe fn expand_avx512(format: Format, src: &[u8], w: &mut [f32]) {
    expand_blocks(format, src, w)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,f16c")]
unsafe fn expand_avx2(format: Format, src: &[u8], w: &mut [f32]) {
    expand_blocks(format, src, w)
}

/// The output pointer, shared by the threads that write disjoint panels of it.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: each thread writes its own columns (see `matmul`).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    fn at(self, offset: usize) -> *mut f32 {
        // SAFETY (for the caller): `offset` is a column index within the row.
        unsafe { self.0.add(offset) }
    }
}

/// `dst [m, n] (rows n_total apart) = lhs [m, k] · rhsᵀ` with `rhs` `[n, k]`: the call candle's
/// f32 matmul makes for `x.matmul(w.t())` (`matmul_rows`), one thread.
///
/// # Safety
/// `lhs` must hold `m × k` values, `rhs` `n × k`, and `dst` be valid for `m` rows of `n` values
/// `dst_rs` apart.
unsafe fn product(m: usize, n: usize, k: usize, dst: *mut f32, dst_rs: usize, lhs: *const f32, rhs: *const f32) {
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        dst_rs as isize,
        false,
        lhs,
        1,
        k as isize,
        rhs,
        k as isize,
        1,
        0.0,
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::QTensor;
    use candle_core::{DType, Device};

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = crate::rng::SplitMix64(seed);
        (0..n).map(|_| (rng.next_f64() * 2.0 - 1.0) as f32).collect()
    }

    fn quantised(dtype: GgmlDType, n: usize, k: usize, seed: u64) -> Arc<QTensor> {
        let w = Tensor::from_vec(random(n * k, seed), (n, k), &Device::Cpu).unwrap();
        Arc::new(QTensor::quantize(&w, dtype).unwrap())
    }

    /// The product candle's f32 path computes: the expanded matrix through `matmul_rows`.
    fn expanded_product(w: &QTensor, x: &Tensor) -> Tensor {
        let w = w.dequantize(&Device::Cpu).unwrap();
        crate::model::frozen::matmul_rows(x, &w).unwrap()
    }

    /// SmolLM2's matrix shapes, and ragged ones.
    const SHAPES: [(GgmlDType, usize, usize); 7] = [
        (GgmlDType::Q4_1, 576, 576),
        (GgmlDType::Q4_1, 192, 576),
        (GgmlDType::Q4_1, 1536, 576),
        (GgmlDType::Q4_1, 576, 1536),
        (GgmlDType::Q4_1, 1000, 576),
        (GgmlDType::Q4_1, 200, 96),
        (GgmlDType::Q8_0, 2000, 576),
    ];

    fn both(w: &Arc<QTensor>, rows: usize, k: usize) -> (Vec<f32>, Vec<f32>) {
        let lin = CompactLinear::new(w.clone()).unwrap();
        let x = Tensor::from_vec(random(rows * k, rows as u64), (1, rows, k), &Device::Cpu).unwrap();
        let ours: Vec<f32> = lin.forward(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let theirs: Vec<f32> = expanded_product(w, &x).flatten_all().unwrap().to_vec1().unwrap();
        (ours, theirs)
    }

    #[test]
    fn gives_the_expanded_matrix_bits_from_two_rows() {
        for (dtype, n, k) in SHAPES {
            let w = quantised(dtype, n, k, 3);
            for rows in [2, 3, 4, 7, 17, 64, 65, 130] {
                let (ours, theirs) = both(&w, rows, k);
                assert_eq!(ours.len(), rows * n);
                let differ = ours.iter().zip(&theirs).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
                assert_eq!(differ, 0, "{dtype:?} [{n}, {k}], {rows} rows: {differ} outputs differ from the f32 path's");
            }
        }
    }

    #[test]
    fn one_row_is_within_rounding_of_the_expanded_matrix() {
        for (dtype, n, k) in SHAPES {
            let w = quantised(dtype, n, k, 5);
            let (ours, theirs) = both(&w, 1, k);
            // Outputs are sums of k terms of size ~1: rounding differs by ~k·2⁻²⁴ of them.
            let worst = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-4, "{dtype:?} [{n}, {k}]: one row differs by {worst:e}");
            assert!(ours.iter().zip(&theirs).any(|(a, b)| a != b) || k < 128, "the one-row path did not run");
        }
    }

    #[test]
    fn expands_like_candle() {
        for dtype in [GgmlDType::Q4_1, GgmlDType::Q8_0] {
            let w = quantised(dtype, 40, 64, 9);
            let lin = CompactLinear::new(w.clone()).unwrap();
            let mut ours = vec![0f32; 40 * 64];
            lin.expand(&w.data().unwrap(), 0..40, &mut ours);
            let theirs: Vec<f32> = w.dequantize(&Device::Cpu).unwrap().flatten_all().unwrap().to_vec1().unwrap();
            assert!(ours.iter().zip(&theirs).all(|(a, b)| a.to_bits() == b.to_bits()), "{dtype:?}");
        }
    }

    #[test]
    fn refuses_other_formats_and_wrong_inputs() {
        let w = Tensor::from_vec(random(32 * 64, 1), (32, 64), &Device::Cpu).unwrap();
        let f16 = Arc::new(QTensor::quantize(&w, GgmlDType::F16).unwrap());
        let e = CompactLinear::new(f16).unwrap_err().to_string();
        assert!(e.contains("Q4_1 or Q8_0"), "{e}");
        let lin = CompactLinear::new(quantised(GgmlDType::Q4_1, 32, 64, 2)).unwrap();
        let x = Tensor::zeros((3, 63), DType::F32, &Device::Cpu).unwrap();
        let e = lin.forward(&x).unwrap_err().to_string();
        assert!(e.contains("[3, 63]") && e.contains("[32, 64]"), "{e}");
    }
}
