// W in GGUF Q8_0 (followed by matmul.wgsl, the shared tiling).
//
// A Q8_0 block holds 32 weights in 34 bytes: an f16 scale d, then 32 signed 8-bit codes q;
// weight = d * q. Blocks are not word-aligned, so bytes are read out of the u32 words (the
// buffer is zero-padded to a whole word).

fn byte_at(i: u32) -> u32 {
    return (w[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu;
}

// Block b of column col against the x tile: rows 0..3 into acc_a, rows 4..7 into acc_b.
fn dot_block(col: u32, nb: u32, b: u32, acc_a: ptr<function, vec4<f32>>, acc_b: ptr<function, vec4<f32>>) {
    let base = (col * nb + b) * 34u; // even, so the f16 scale sits in one word
    let d = unpack2x16float(w[base >> 2u] >> ((base & 3u) * 8u)).x;
    for (var e = 0u; e < 32u; e++) {
        let q = (i32(byte_at(base + 2u + e)) << 24u) >> 24u; // sign-extend
        let wv = d * f32(q);
        *acc_a += wv * xv[e];
        *acc_b += wv * xv[32u + e];
    }
}
