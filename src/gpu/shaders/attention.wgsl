// Causal grouped-query attention, all queries at once (prefill), for sequences of `seq` query rows
// each (one sequence: seq = tokens) after `past` cached positions they all share: query row
// r = b·seq + t (sequence b) sits at position past + t and sees the shared rows 0…past-1 of k and
// v, then its own sequence's rows past + b·seq … past + b·seq + t (the KV cache):
// out[r, h, :] = softmax_j(q[r, h]·k[j, g] / √hd) · v[j, g, :] over those j,
// g = h / (heads / kv_heads).
//
// One workgroup per (head, query token), one invocation per head dimension (head_dim = 64).
// Keys are visited in chunks of 64 with an online softmax (running max and sum), so any
// sequence length fits in workgroup memory: in a chunk invocation j scores key j, then every
// invocation d accumulates dimension d of the weighted values.

struct Params {
    tokens: u32,
    heads: u32,
    kv_heads: u32,
    past: u32,
    seq: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> o: array<f32>;

const HD: u32 = 64u;
var<workgroup> qs: array<f32, 64>;
var<workgroup> s: array<f32, 64>;

fn key_row(j: u32, own: u32) -> u32 {
    return select(j + own, j, j < p.past);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let h = wg.x;
    let row = wg.y;
    let t = row % p.seq;
    // Key j < past is cache row j; later keys are this sequence's rows.
    let own = (row / p.seq) * p.seq;
    let g = h / (p.heads / p.kv_heads);
    let q_off = (row * p.heads + h) * HD;
    let kv_stride = p.kv_heads * HD;
    let kv_off = g * HD;
    qs[li] = q[q_off + li];
    workgroupBarrier();
    let scale = 1.0 / sqrt(f32(HD));
    let n_keys = p.past + t + 1u;
    var m = -3.0e38;
    var l = 0.0;
    var acc = 0.0;
    for (var c = 0u; c < n_keys; c += 64u) {
        let j = c + li;
        var score = -3.0e38;
        if (j < n_keys) {
            var dot = 0.0;
            let ko = key_row(j, own) * kv_stride + kv_off;
            for (var d = 0u; d < HD; d++) {
                dot += qs[d] * k[ko + d];
            }
            score = dot * scale;
        }
        s[li] = score;
        workgroupBarrier();
        let count = min(64u, n_keys - c);
        var cm = m;
        for (var i = 0u; i < count; i++) {
            cm = max(cm, s[i]);
        }
        let corr = exp(m - cm);
        l *= corr;
        acc *= corr;
        for (var i = 0u; i < count; i++) {
            let e = exp(s[i] - cm);
            l += e;
            acc += e * v[key_row(c + i, own) * kv_stride + kv_off + li];
        }
        m = cm;
        workgroupBarrier();
    }
    o[q_off + li] = acc / l;
}
