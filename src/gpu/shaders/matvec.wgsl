// The matrix–vector product of decoding: y[n] = x[k] · W[n, k]ᵀ for one row of x (m = 1), W in
// GGUF blocks of 32 weights dequantised from its raw block bytes by the format's `dot_row`
// (matvec_q4_1.wgsl, matvec_q8_0.wgsl), the partial sums added by `column_sum` (column_sum.wgsl,
// or column_sum_subgroup.wgsl where the device has subgroups); the pipeline's source is those two
// files, product.wgsl, then this one. Row x_row0 of x is read (the LM head reads a pass's last row) and
// the result written to row y_row0 of y (a token's key or value row of the KV cache).
//
// A workgroup computes 8 output columns, 8 invocations each: invocation l of a column takes the
// column's blocks l, l + 8, …, then the 8 partial sums are added. (matmul.wgsl's tiles of 8 rows
// would spend 7/8 of their work on padding here, with 8× fewer workgroups.)

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let col = (wg.y * groups.x + wg.x) * 8u + li / 8u;
    let lane = li % 8u;
    let nb = p.k / 32u;
    var acc = 0.0;
    if (col < p.n) {
        for (var b = lane; b < nb; b += 8u) {
            acc += dot_row(col, nb, b, p.x_row0 * p.k + b * 32u);
        }
    }
    let sum = column_sum(acc, li);
    if (lane == 0u && col < p.n) {
        y[p.y_row0 * p.n + col] = sum;
    }
}
