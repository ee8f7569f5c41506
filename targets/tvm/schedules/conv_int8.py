"""Rule: int8 2-D convolution (`edgec_conv_u8s8_nchwc`, targets/tvm/conv_int8.py) tensorized with
the target's dot-product intrinsic: `VNNI_16x4` (vpdpbusd, 16 lanes: one per block of 16 output
channels) or `SDOT_4x4` (AArch64 sdot, 4 lanes: four per block, on the int8-shifted input); on
NEON without dotprod ("neon") not tensorized: per input channel, the 16 output channels' int8
weights (packed output-channel-innermost) times the broadcast int8 input, accumulated in int32
vectors, which LLVM emits as widening multiply-accumulates (smull/smlal, vmull.s8/vmlal).

Register tile: `ot` output-channel blocks of 16 x `wt` output pixels of a row, int32 accumulators
in a local buffer, reduced over (input-channel block, ky, kx, group of 4 input channels), one
vpdpbusd (four sdot) per (block, pixel, group); parallel over (batch, output-channel block group, output row).
The zero-padded input is its own stage; the fused epilogue (zero-point correction, bias,
requantization, activation) runs on the tile, vectorized over the 16 channels.
"""

from __future__ import annotations

from edgec.targets.tvm.conv_int8 import CONV_U8_BLOCK, PAD_U8_BLOCK
from edgec.targets.tvm.schedules import common as C
from edgec.targets.tvm.schedules.int8_dot import INTRINSICS

NAME = "conv2d-int8"


def match(sch, ctx) -> bool:
    if ctx.dot not in INTRINSICS:
        return False
    b = C.find_block(sch, CONV_U8_BLOCK)
    return b is not None and C.iter_kinds(sch, b) == "SSSSSRRRRR"


def _tile(ocb: int, ow: int, budget: int) -> tuple[int, int]:
    """(ot, wt): the register tile with the most accumulators (<= budget) whose sizes divide the
    output-channel blocks and the row (the tensorized loops cannot carry a ragged tail); on ties
    the one with more channel blocks (each input broadcast feeds more of them)."""
    best = (0, 0, 1, 1)
    for ot in (1, 2, 3, 4, 6, 8):
        if ocb % ot:
            continue
        for wt in range(1, ow + 1):
            if ow % wt == 0 and ot * wt <= budget:
                best = max(best, (ot * wt, min(ot, 4), ot, wt))
    return best[2], best[3]


def default_knobs(sch, ctx) -> dict:
    _, ocb, oh, ow, _, icb, kh, kw, _, _ = C.extents(sch, sch.get_loops(C.find_block(sch, CONV_U8_BLOCK)))
    # 16 int32 accumulators per output block: one register for VNNI, two for vpmaddwd (ymm), four on
    # NEON (sdot or not)
    per_block = max(16 // min(ctx.lanes, INTRINSICS[ctx.dot][1]), 1)
    ot, wt = _tile(ocb, ow, max((ctx.registers - 8) // per_block, 2))
    return {"ot": ot, "wt": wt, "par": 4 if oh * ow <= 256 else 8}


def space(sch, ctx) -> list[dict]:
    """`edgec tune --space knobs`: register tiles ot x wt (no ragged tail, 4..registers-4
    accumulators), the most accumulators first, and the parallel grain; the rule's default first."""
    _, ocb, _, ow, _, _, _, _, _, _ = C.extents(sch, sch.get_loops(C.find_block(sch, CONV_U8_BLOCK)))
    base = default_knobs(sch, ctx)
    out = [{"ot": ot, "wt": wt, "par": base["par"]}
           for ot in (1, 2, 3, 4, 6, 8) if ocb % ot == 0
           for wt in range(1, ow + 1) if ow % wt == 0 and 4 <= ot * wt <= ctx.registers - 4]
    out.sort(key=lambda k: (-k["ot"] * k["wt"], -min(k["ot"], 4)))
    extra = [{**base, "par": p} for p in (2, 4, 8, 16) if p != base["par"]]
    return C.knob_space(base, out[:8] + extra + out[8:12])


def _inline_side_inputs(sch, conv, pad) -> None:
    """Inline the elementwise blocks fused in before the conv that only feed its epilogue (the
    dequantized other operand of a residual add) into their consumers, so the epilogue can go
    under the tile loop."""
    anchor = sch.get(conv).name_hint
    for b in C.root_blocks(sch):
        name = sch.get(b).name_hint
        if name == anchor:
            return
        if pad is not None and name == sch.get(pad).name_hint:
            continue
        sch.compute_inline(b)


def apply(sch, ctx, knobs: dict | None = None) -> None:
    conv = C.find_block(sch, CONV_U8_BLOCK)
    kn = {**default_knobs(sch, ctx), **(knobs or {})}
    pad = C.find_block(sch, PAD_U8_BLOCK)
    if pad is not None:
        C.materialize_pad(sch, pad, ctx.threads)
    _inline_side_inputs(sch, conv, pad)
    tail = C.inline_consumers(sch, conv, ctx)
    n, o, y, x, k, rcb, ry, rx, rq, rg = sch.get_loops(conv)
    o_o, o_i = sch.split(o, [None, kn["ot"]])
    x_o, x_i = sch.split(x, [None, kn["wt"]])
    intrin, lanes, _ = INTRINSICS[ctx.dot]
    if intrin is None:  # widening multiply-accumulate: per input channel, 16 output channels as vectors
        sch.reorder(n, o_o, y, x_o, rcb, ry, rx, rq, rg, o_i, x_i, k)
    else:
        sch.reorder(n, o_o, y, x_o, rcb, ry, rx, rq, o_i, x_i, k, rg)
    # the intrinsic's C buffer is "global": a global-scope tile (compacted to the tile by TVM)
    acc = tail if tail is not None else sch.cache_write(conv, 0, "global")
    sch.reverse_compute_at(acc, x_o)
    C.parallel_outer(sch, [n, o_o, y], ctx.threads, kn["par"])
    sch.unroll(x_i)
    sch.unroll(o_i)
    if intrin is None:
        sch.unroll(rg)
        sch.vectorize(k)
    elif lanes < 16:
        k_o, k = sch.split(k, [None, lanes])
        sch.unroll(k_o)
    C.finish_dot_tile(sch, conv, rcb, intrin, k, acc, ctx.lanes)
