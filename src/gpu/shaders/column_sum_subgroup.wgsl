// matvec.wgsl's sum over the 8 consecutive invocations of a column by subgroup shuffles: no
// workgroup memory, no barrier. Used only where every subgroup holds at least 8 invocations, so
// a column's 8 (consecutive, 8-aligned) invocations share one subgroup and differ in the low three
// bits of their subgroup index; called by every invocation (the shuffles need all of them).

fn column_sum(acc: f32, li: u32) -> f32 {
    var sum = acc + subgroupShuffleXor(acc, 4u);
    sum += subgroupShuffleXor(sum, 2u);
    sum += subgroupShuffleXor(sum, 1u);
    return sum;
}
