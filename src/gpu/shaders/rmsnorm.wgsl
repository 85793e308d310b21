// y[r, :] = x[r, :] / sqrt(mean(x[r, :]²) + eps) * weight, one workgroup per row (as candle's
// rms_norm: the mean of squares in f32, then divide, then scale).

struct Params {
    rows: u32,
    d: u32,
    eps: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

var<workgroup> part: array<f32, 64>;

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let off = wg.x * p.d;
    var ss = 0.0;
    for (var i = li; i < p.d; i += 64u) {
        let v = x[off + i];
        ss += v * v;
    }
    part[li] = ss;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride >>= 1u) {
        if (li < stride) {
            part[li] += part[li + stride];
        }
        workgroupBarrier();
    }
    let m = sqrt(part[0] / f32(p.d) + p.eps);
    for (var i = li; i < p.d; i += 64u) {
        y[off + i] = x[off + i] / m * weight[i];
    }
}
