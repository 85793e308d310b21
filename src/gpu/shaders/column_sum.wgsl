// matvec.wgsl's sum over the 8 consecutive invocations of a column, through workgroup memory (the
// WebGPU core; column_sum_subgroup.wgsl where the device has subgroups). Called by every
// invocation of the workgroup (it holds a barrier); each gets its column's sum, in lane order.

var<workgroup> part: array<f32, 64>;

fn column_sum(acc: f32, li: u32) -> f32 {
    part[li] = acc;
    workgroupBarrier();
    let first = li & ~7u;
    var sum = 0.0;
    for (var i = 0u; i < 8u; i++) {
        sum += part[first + i];
    }
    return sum;
}
