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


def _tile(ocb: int, ow: int, panel_bytes: int, acc_budget: int) -> tuple[int, int]:
    """(ot output-channel blocks, wt pixels) of the register tile. The default (4 blocks for short
    rows, else 2) unless its pixel tile would leave a ragged tail (7-pixel rows with room for 6:
    every FMA then carries a bounds test), then the divisor pair with the most accumulators."""
    ot = 4 if ocb % 4 == 0 and ow <= 8 else 2 if ocb % 2 == 0 else 1
    while ot > 1 and ot * panel_bytes > C.L2_BYTES:
        ot //= 2  # one task's weight panel should stay in L2 while it sweeps the output rows
    wt = C.good_tile(ow, max(acc_budget // ot, 1))
    if ow % wt == 0:
        return ot, wt
    best = (0.0, ot, wt)
    for o in (4, 2, 1):
        if ocb % o or (o > 1 and o * panel_bytes > C.L2_BYTES):
            continue
        w = C.good_tile(ow, max(acc_budget // o, 1))
        eff = ow / (-(-ow // w) * w) * (1.0 if ow % w == 0 else 0.7)
        best = max(best, (o * w * eff, o, w))
    return best[1], best[2]


def apply(sch, ctx) -> None:
    conv = C.find_block(sch, CONV_BLOCK)
    pad = C.find_block(sch, PAD_BLOCK)
    if pad is not None:
        C.materialize_pad(sch, pad, ctx.threads)
    tail = C.inline_consumers(sch, conv)
    n, o, y, x, k, rcb, rc, ry, rx = sch.get_loops(conv)
    _, ocb, oh, ow, b, icb, bi, kh, kw = C.extents(sch, sch.get_loops(conv))
    acc_budget = max(ctx.registers - 8, 8)
    ot, wt = _tile(ocb, ow, icb * bi * kh * kw * b * 4, acc_budget)
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

