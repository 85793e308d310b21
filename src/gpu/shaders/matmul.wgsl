// The tiling shared by the matrix products: y[m, n] = x[m, k] · W[n, k]ᵀ, W in GGUF blocks of 32
// weights, dequantised from its raw block bytes by the format's `dot_block` (matmul_q4_1.wgsl,
// matmul_q8_0.wgsl; the pipeline's source is the format's file, product.wgsl, then this one).
//
// Row r of the product reads row x_row0 + r of x (the LM head reads a pass's last row) and is
// written to row y_row0 + r of y (a pass's keys and values go to their positions' rows of the KV
// cache).
//
// A workgroup computes 64 output columns (one per invocation) for 8 rows of x: each weight is
// dequantised once per 8 rows, and the x tile of a block is shared through workgroup memory.

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
            v.x = x[(p.x_row0 + r_load) * p.k + c];
        }
        if (r_load + 1u < p.m) {
            v.y = x[(p.x_row0 + r_load + 1u) * p.k + c];
        }
        if (r_load + 2u < p.m) {
            v.z = x[(p.x_row0 + r_load + 2u) * p.k + c];
        }
        if (r_load + 3u < p.m) {
            v.w = x[(p.x_row0 + r_load + 3u) * p.k + c];
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
                y[(p.y_row0 + row0 + r) * p.n + col] = acc_a[r];
            }
            if (row0 + 4u + r < p.m) {
                y[(p.y_row0 + row0 + 4u + r) * p.n + col] = acc_b[r];
            }
        }
    }
}
