// Interleaved rotary embedding in place (GGUF stores Q/K permuted for it; candle's rope_i):
// each pair (x[2i], x[2i+1]) of a head is rotated by the angle of its token's position.
// x is [tokens, heads, head_dim]: sequences of `seq` rows each (one sequence: seq = tokens), row t
// of a sequence at position pos0 + t, stored at row row0 + its index in x; cos/sin are the CPU path's tables [positions, head_dim/2].

struct Params {
    tokens: u32,
    heads: u32,
    head_dim: u32,
    pos0: u32,
    seq: u32,
    row0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> cos_t: array<f32>;
@group(0) @binding(3) var<storage, read> sin_t: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    let half = p.head_dim / 2u;
    let g = id.x;
    if (g >= p.tokens * p.heads * half) {
        return;
    }
    let i = g % half;
    let t = g / (half * p.heads);
    let pos = p.pos0 + t % p.seq;
    let c = cos_t[pos * half + i];
    let s = sin_t[pos * half + i];
    let o = (p.row0 * p.heads + g / half) * p.head_dim + 2u * i;
    let x0 = x[o];
    let x1 = x[o + 1u];
    x[o] = x0 * c - x1 * s;
    x[o + 1u] = x0 * s + x1 * c;
}
