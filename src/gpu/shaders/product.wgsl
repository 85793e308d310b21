// The parameters and bindings of every matrix product, y = x · Wᵀ with W in GGUF blocks
// (matmul.wgsl, matvec.wgsl; each pipeline's source includes this file): m rows of x of width k,
// n output columns; row r of the product reads row x_row0 + r of x and is written to row
// y_row0 + r of y.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    y_row0: u32,
    x_row0: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
