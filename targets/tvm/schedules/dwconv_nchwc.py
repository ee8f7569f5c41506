"""Rule: depthwise 2-D convolution in NCHW{b}c (edgec's `edgec_dwconv_nchwc` block).

Parallel over (batch, channel block, output row); a tile of `wt` output pixels x b channels is
accumulated in registers over the kernel window; padding inlined; epilogue fused on the tile.
"""

from __future__ import annotations

from edgec.targets.tvm.layout import DWCONV_BLOCK, PAD_BLOCK
from edgec.targets.tvm.schedules import common as C

NAME = "depthwise-nchwc"


def match(sch, ctx) -> bool:
    b = C.find_block(sch, DWCONV_BLOCK)
    return b is not None and C.iter_kinds(sch, b) == "SSSSSRR"


def apply(sch, ctx) -> None:
    conv = C.find_block(sch, DWCONV_BLOCK)
    pad = C.find_block(sch, PAD_BLOCK)
    if pad is not None:  # inlined: a separate padded copy measured slower for this memory-bound op
        sch.compute_inline(pad)
    tail = C.inline_consumers(sch, conv)
    n, o, y, x, k, ry, rx = sch.get_loops(conv)
    ow = C.extents(sch, [x])[0]
    wt = C.good_tile(ow, max(ctx.registers // 2, 4))
    x_o, x_i = sch.split(x, [None, wt])
    sch.reorder(n, o, y, x_o, ry, rx, x_i, k)
    acc = C.place_accumulator(sch, conv, tail, x_o)
    C.parallel_outer(sch, [n, o, y], ctx.threads * 8)
    sch.vectorize(k)
    sch.unroll(x_i)
    sch.unroll(rx)
    sch.decompose_reduction(conv, ry)
    C.schedule_tail(sch, acc, ctx.lanes)
