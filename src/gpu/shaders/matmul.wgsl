// The tiling shared by the matrix products: y[m, n] = x[m, k] · W[n, k]ᵀ, W in GGUF blocks of 32
// weights, dequantised from its raw block bytes by the format's `dot_block` (matmul_q4_1.wgsl,
// matmul_q8_0.wgsl; the pipeline's source is the format's file followed by this one).
//
// A workgroup computes 64 output columns (one per invocation) for 8 rows of x: each weight is
// dequantised once per 8 rows, and the x tile of a block is shared through workgroup memory.

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
            dot_block(col, nb, b, &acc_a, &acc_b);
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
