// y[m, n] = x[m, k] · W[n, k]ᵀ with W in GGUF Q8_0, dequantised here from its raw block bytes.
//
// A Q8_0 block holds 32 weights in 34 bytes: an f16 scale d, then 32 signed 8-bit codes q;
// weight = d * q. Blocks are not word-aligned, so bytes are read out of the u32 words (the
// buffer is zero-padded to a whole word). Tiling as in matmul_q4_1.wgsl.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

// The x tile of one block for 8 rows: xv[e] holds element e of rows 0..3, xv[32 + e] of rows
// 4..7, so the 8 accumulators are two vec4s (no dynamically indexed private arrays, which a
// CPU implementation such as lavapipe spills to memory).
var<workgroup> xv: array<vec4<f32>, 64>;

fn byte_at(i: u32) -> u32 {
    return (w[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu;
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let col = wg.x * 64u + li;
    let row0 = wg.y * 8u;
    let nb = p.k / 32u;
    var acc_a = vec4<f32>(0.0);
    var acc_b = vec4<f32>(0.0);
    let e_load = li % 32u;
    let r_load = row0 + (li / 32u) * 4u;
    for (var b = 0u; b < nb; b++) {
        var v = vec4<f32>(0.0);
        let c = b * 32u + e_load;
        if (r_load < p.m) {
            v.x = x[r_load * p.k + c];
        }
        if (r_load + 1u < p.m) {
            v.y = x[(r_load + 1u) * p.k + c];
        }
        if (r_load + 2u < p.m) {
            v.z = x[(r_load + 2u) * p.k + c];
        }
        if (r_load + 3u < p.m) {
            v.w = x[(r_load + 3u) * p.k + c];
        }
        xv[li] = v;
        workgroupBarrier();
        if (col < p.n) {
            let base = (col * nb + b) * 34u; // even, so the f16 scale sits in one word
            let d = unpack2x16float(w[base >> 2u] >> ((base & 3u) * 8u)).x;
            for (var e = 0u; e < 32u; e++) {
                let q = (i32(byte_at(base + 2u + e)) << 24u) >> 24u; // sign-extend
                let wv = d * f32(q);
                acc_a += wv * xv[e];
                acc_b += wv * xv[32u + e];
            }
        }
        workgroupBarrier();
    }
    if (col < p.n) {
        for (var r = 0u; r < 4u; r++) {
            if (row0 + r < p.m) {
                y[(row0 + r) * p.n + col] = acc_a[r];
            }
            if (row0 + 4u + r < p.m) {
                y[(row0 + 4u + r) * p.n + col] = acc_b[r];
            }
        }
    }
}
