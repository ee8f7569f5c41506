"""Rule: dense 2-D convolution in NCHW{b}c with kernel OIHW{b}o (edgec's `edgec_conv_nchwc` block).

Register tile: `ot` output-channel blocks x `wt` output pixels of one row, each a vector of b
channels, accumulated in a local buffer over (input-channel block, ky, kx, input channel);
parallel over (batch, output-channel block group, output row). The zero-padded input is
its own stage (no bounds test in the inner loop); the fused
epilogue (bias, batch-norm arithmetic, activation, residual add) runs on the tile in registers.
"""

from __future__ import annotations

from edgec.targets.tvm.layout import CONV_BLOCK, PAD_BLOCK
from edgec.targets.tvm.schedules import common as C

NAME = "conv2d-nchwc"


def match(sch, ctx) -> bool:
    b = C.find_block(sch, CONV_BLOCK)
    return b is not None and C.iter_kinds(sch, b) == "SSSSSRRRR"


def apply(sch, ctx) -> None:
    conv = C.find_block(sch, CONV_BLOCK)
    pad = C.find_block(sch, PAD_BLOCK)
    if pad is not None:
        C.materialize_pad(sch, pad, ctx.threads)
    tail = C.inline_consumers(sch, conv)
    n, o, y, x, k, rcb, rc, ry, rx = sch.get_loops(conv)
    _, ocb, oh, ow, b, icb, bi, kh, kw = C.extents(sch, sch.get_loops(conv))
    acc_budget = max(ctx.registers - 8, 8)
    ot = 4 if ocb % 4 == 0 and ow <= 8 else 2 if ocb % 2 == 0 else 1
    while ot > 1 and ot * icb * bi * kh * kw * b * 4 > C.L2_BYTES:
        ot //= 2  # one task's weight panel should stay in L2 while it sweeps the output rows
    wt = C.good_tile(ow, max(acc_budget // ot, 1))
    o_o, o_i = sch.split(o, [None, ot])
    x_o, x_i = sch.split(x, [None, wt])
    sch.reorder(n, o_o, y, x_o, rcb, ry, rx, rc, o_i, x_i, k)
    acc = C.place_accumulator(sch, conv, tail, x_o)
    C.parallel_outer(sch, [n, o_o, y], ctx.threads * (4 if oh * ow <= 256 else 8))
    sch.vectorize(k)
    sch.unroll(x_i)
    sch.unroll(o_i)
    if bi <= 16:
        sch.unroll(rc)
    sch.decompose_reduction(conv, rcb)
    C.schedule_tail(sch, acc, ctx.lanes)

