// W in GGUF Q4_1 for the matrix–vector product (followed by matvec.wgsl). The block layout is
// matmul_q4_1.wgsl's: f16 scale d and minimum m in word 0, then 16 bytes of 4-bit codes (byte j:
// element j in the low nibble, j + 16 in the high one); weight = d * q + m.

// Block b of column col against x[xo…xo + 31].
fn dot_row(col: u32, nb: u32, b: u32, xo: u32) -> f32 {
    let base = (col * nb + b) * 5u;
    let dm = unpack2x16float(w[base]);
    var acc = 0.0;
    for (var j = 0u; j < 4u; j++) {
        let q = w[base + 1u + j];
        for (var e = 0u; e < 4u; e++) {
            let byte = (q >> (e * 8u)) & 0xffu;
            let i = xo + j * 4u + e;
            acc += (f32(byte & 0xfu) * dm.x + dm.y) * x[i] + (f32(byte >> 4u) * dm.x + dm.y) * x[i + 16u];
        }
    }
    return acc;
}
