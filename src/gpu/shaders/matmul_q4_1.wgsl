// W in GGUF Q4_1 (followed by matmul.wgsl, the shared tiling).
//
// A Q4_1 block holds 32 weights in 20 bytes = 5 u32 words: f16 scale d and f16 minimum m (word
// 0), then 16 bytes of 4-bit codes q (words 1..4); byte j holds element j (low nibble) and element
// j + 16 (high nibble); weight = d * q + m. Row r of W is blocks [r * k/32, (r + 1) * k/32).

// Block b of column col against the x tile: rows 0..3 into acc_a, rows 4..7 into acc_b.
fn dot_block(col: u32, nb: u32, b: u32, acc_a: ptr<function, vec4<f32>>, acc_b: ptr<function, vec4<f32>>) {
    let base = (col * nb + b) * 5u;
    let dm = unpack2x16float(w[base]);
    for (var j = 0u; j < 4u; j++) {
        let q = w[base + 1u + j];
        for (var e = 0u; e < 4u; e++) {
            let byte = (q >> (e * 8u)) & 0xffu;
            let lo = f32(byte & 0xfu) * dm.x + dm.y;
            let hi = f32(byte >> 4u) * dm.x + dm.y;
            let i0 = j * 4u + e;
            *acc_a += lo * xv[i0] + hi * xv[i0 + 16u];
            *acc_b += lo * xv[32u + i0] + hi * xv[48u + i0];
        }
    }
}
