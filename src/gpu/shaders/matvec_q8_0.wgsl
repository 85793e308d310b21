// W in GGUF Q8_0 for the matrix–vector product (followed by matvec.wgsl). The block layout is
// matmul_q8_0.wgsl's: an f16 scale d, then 32 signed 8-bit codes q (34 bytes, not word-aligned);
// weight = d * q.

fn byte_at(i: u32) -> u32 {
    return (w[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu;
}

// Block b of column col against x[xo…xo + 31].
fn dot_row(col: u32, nb: u32, b: u32, xo: u32) -> f32 {
    let base = (col * nb + b) * 34u; // even, so the f16 scale sits in one word
    let d = unpack2x16float(w[base >> 2u] >> ((base & 3u) * 8u)).x;
    var acc = 0.0;
    for (var e = 0u; e < 32u; e++) {
        let q = (i32(byte_at(base + 2u + e)) << 24u) >> 24u; // sign-extend
        acc += d * f32(q) * x[xo + e];
    }
    return acc;
}
