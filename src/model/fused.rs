//! Fused element-wise inference ops with a vectorisable `exp`.
//!
//! candle's `silu(gate) * up` calls libm's `expf` once per value and makes two passes: on the
//! AMX path it was 6% of a prediction's time. [`silu_mul`] makes one pass with a branch-free,
//! Cephes-style `exp` (range reduction by powers of two and a degree-5 polynomial, within 2 ulp
//! of libm's) that the compiler vectorises: 16 lanes natively with AVX-512, 4 with wasm SIMD.
//! Inference only: training keeps candle's differentiable ops.

use candle_core::{DType, Tensor};

/// `eˣ`, branch-free; inputs are clamped to where f32 neither overflows nor goes subnormal.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.3, 88.0);
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // 2ⁿ without a float → int conversion (which would not vectorise): adding 1.5·2²³ puts the
    // integer n in the low mantissa bits. n is within -126..=127 after the clamp.
    let n_bits = (n + 12_582_912.0).to_bits().wrapping_sub(0x4b40_0000);
    e * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

#[inline(always)]
fn silu_mul_into(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = g / (1.0 + exp(-g)) * u;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn silu_mul_avx512(gate: &[f32], up: &[f32], out: &mut [f32]) {
    silu_mul_into(gate, up, out)
}

fn silu_mul_slices(gate: &[f32], up: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512 F.
        return unsafe { silu_mul_avx512(gate, up, out) };
    }
    silu_mul_into(gate, up, out)
}

/// `silu(gate) · up` for two f32 tensors of one shape on the CPU; candle's ops otherwise.
pub fn silu_mul(gate: &Tensor, up: &Tensor) -> candle_core::Result<Tensor> {
    if gate.dtype() != DType::F32 || gate.shape() != up.shape() || !gate.device().is_cpu() {
        return candle_nn::ops::silu(gate)? * up;
    }
    let mut out = vec![0f32; gate.elem_count()];
    super::with_f32_slice(gate, |g| super::with_f32_slice(up, |u| silu_mul_slices(g, u, &mut out)))??;
    Tensor::from_vec(out, gate.shape(), gate.device())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_2_ulp_of_libm() {
        let mut worst = 0u32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (a, b) = (exp(x), x.exp());
            worst = worst.max(a.to_bits().abs_diff(b.to_bits()));
            x += 0.0173;
        }
        assert!(worst <= 2, "{worst} ulp");
        assert_eq!(exp(-1000.0), exp(-87.3));
        assert!(exp(1000.0).is_finite() && exp(1000.0) == exp(88.0));
    }

    #[test]
    fn silu_mul_matches_candle() {
        let dev = candle_core::Device::Cpu;
        let gate = Tensor::randn(0f32, 3.0, (7, 300), &dev).unwrap();
        let up = Tensor::randn(0f32, 1.0, (7, 300), &dev).unwrap();
        let ours: Vec<f32> = silu_mul(&gate, &up).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let theirs: Vec<f32> =
            (candle_nn::ops::silu(&gate).unwrap() * &up).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        for (a, b) in ours.iter().zip(&theirs) {
            assert!((a - b).abs() <= 4.0 * f32::EPSILON * b.abs().max(1e-30), "{a} vs {b}");
        }
    }
}
