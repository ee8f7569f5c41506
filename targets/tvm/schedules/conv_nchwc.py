"""Rule: dense 2-D convolution in NCHW{b}c with kernel OIHW{b}o (edgec's `edgec_conv_nchwc` block).

Register tile: `ot` output-channel blocks x `yt` output rows x `wt` output pixels of a row, each
a vector of b channels, accumulated in a local buffer over (input-channel block, ky, kx, input channel);
parallel over (batch, output row, output-channel block group) or (batch, output-channel block
group, output row), whichever keeps the larger operand's traffic on its own core. The zero-padded input is
its own stage (no bounds test in the inner loop); the fused
epilogue (bias, batch-norm arithmetic, activation, residual add) runs on the tile in registers.

Knobs (`edgec tune --space knobs` searches them per kernel; `None` = the rule's own choice):
`ot`, `yt` (1 unless tuned), `wt`, `par` (parallel tasks per thread the outer loops are fused to),
`order` ("rows": the parallel loop splits the output rows first, "channels": the output-channel
blocks first; common.parallel_order).
"""

from __future__ import annotations

from edgec.targets.tvm.layout import CONV_BLOCK, PAD_BLOCK
from edgec.targets.tvm.schedules import common as C

NAME = "conv2d-nchwc"


def match(sch, ctx) -> bool:
    b = C.find_block(sch, CONV_BLOCK)
    return b is not None and C.iter_kinds(sch, b) == "SSSSSRRRR"


def _tile(ocb: int, ow: int, panel_bytes: int, acc_budget: int, l2: int = C.L2_BYTES) -> tuple[int, int]:
    """(ot output-channel blocks, wt pixels) of the register tile. The default (4 blocks for short
    rows, else 2) unless its pixel tile would leave a ragged tail (7-pixel rows with room for 6:
    every FMA then carries a bounds test), then the divisor pair with the most accumulators.
    `l2`: the target's per-core L2 (ResNet-18's 512-channel 3x3 convs, 288 KiB of weights per
    block: 2 blocks x 7 pixels with 2 MiB of L2, 1.25 -> 1.0 ms; 1 x 7 with the 512 KiB default).
    Short rows take 3 blocks when 3 divides the blocks and 4 does not fit: 3 x 7 pixels (21
    accumulators) over 2 x 7 on MobileNetV2's 7x7 expand convs, 960 and 672 (pruned) channels,
    timed alone at 2 threads: 47.9 -> 44.5 us and 25.2 -> 22.7 us."""
    ot = 4 if ocb % 4 == 0 and ow <= 8 else 3 if ocb % 3 == 0 and ow <= 8 else 2 if ocb % 2 == 0 else 1
    while ot > 1 and ot * panel_bytes > l2:
        ot //= 2  # one task's weight panel should stay in L2 while it sweeps the output rows
    wt = C.good_tile(ow, max(acc_budget // ot, 1))
    if ow % wt == 0:
        return ot, wt
    best = (0.0, ot, wt)
    for o in (4, 3, 2, 1):
        if ocb % o or (o > 1 and o * panel_bytes > l2):
            continue
        w = C.good_tile(ow, max(acc_budget // o, 1))
        eff = ow / (-(-ow // w) * w) * (1.0 if ow % w == 0 else 0.7)
        best = max(best, (o * w * eff, o, w))
    return best[1], best[2]


def _odd_blocks_tile(ocb: int, oh: int, ow: int, panel_bytes: int, step_bytes: int, vregs: int,
                     l2: int = C.L2_BYTES, l1d: int = C.L1D_BYTES) -> dict | None:
    """A conv with an odd number of channel blocks (what channel pruning leaves: 48, 80, 144
    channels) would get a 1-block tile, one weight vector per 14 FMAs and a broadcast load for
    each: bound by loads. 3 or 5 blocks of a tile (x 7 pixels, or x 2 rows x 2 pixels) reuse each
    broadcast 3-5 times; the knob search picked 3 x 7 on every such MobileNetV2 pointwise layer
    (1.22-1.30x over 1 x 14), and on ResNet-18's pruned 64 -> 48 3x3 conv (1.26-1.31x).
    - Registers: the accumulators plus the tile's ot weight vectors within `vregs` (3 x 8 pixels
      with its 3 weights, 27 registers, was 1.2x slower than 3 x 7 on that 3x3 conv; 5 x 2 x 2,
      25, stays 1.1x faster than 1 x 14 on MobileNetV2's 80-channel layers).
    - L1: the weights one input-channel block's sweep reads (`step_bytes` per output block:
      kh x kw x block x block floats) within 2/3 of the L1 data cache: a 3-block 3x3 sweep is
      27 KiB, which fits a 48 KiB L1 and not a 32 KiB one (AMD Zen 4 measured that tile 8% slower
      than 1 x 14).
    None when neither divides or the tile would be small."""
    for ot in (3, 5):
        if ocb % ot or ot * panel_bytes > l2 or 3 * ot * step_bytes > 2 * l1d:
            continue
        wt = C.divisor_le(ow, (vregs - ot) // ot)
        if ot * wt >= 12:
            return {"ot": ot, "yt": 1, "wt": wt}
        wt = C.divisor_le(ow, (vregs - ot) // (2 * ot))
        if oh % 2 == 0 and 2 * ot * wt >= 12:
            return {"ot": ot, "yt": 2, "wt": wt}
    return None


def _dims(sch):
    return C.extents(sch, sch.get_loops(C.find_block(sch, CONV_BLOCK)))


def default_knobs(sch, ctx) -> dict:
    _, ocb, oh, ow, b, icb, bi, kh, kw = _dims(sch)
    kn = _tile_knobs(sch, ctx)
    rows = (oh // kn["yt"]) % ctx.threads == 0 and \
        C.parallel_order((icb * bi + ocb * b) * oh * ow, ocb * b * icb * bi * kh * kw) == "rows"
    return {**kn, "order": "rows" if rows else "channels"}


def _tile_knobs(sch, ctx) -> dict:
    _, ocb, oh, ow, b, icb, bi, kh, kw = _dims(sch)
    par = 4 if oh * ow <= 256 else 8
    panel = icb * bi * kh * kw * b * 4
    ot2d = 4 if ctx.registers >= 32 else 2
    if (kh, kw) == (1, 1) and 8 < ow <= 16 and ow % 2 == 0 and oh % 2 == 0 and ocb % ot2d == 0 \
            and ot2d * panel <= ctx.l2_bytes:
        # pointwise convs on 10-16 pixel rows: a 2-D tile of 4 channel vectors x 2 rows x 2
        # pixels was the knob search's best (or within 1%) on every such MobileNetV2 layer: 1.1-2.3x over 2 x 1 x 7.
        # With 16 registers (AVX2) its 16 accumulators spill: 2 vectors x 2 x 2, 1.65-1.75x faster
        # on MobileNetV2's 14x14 expand convs (Zen 3, 2 threads; 4 x 2 x 1 and 6 x 2 x 1 close behind)
        return {"ot": ot2d, "yt": 2, "wt": 2, "par": par}
    if ocb % 2:
        odd = _odd_blocks_tile(ocb, oh, ow, panel, kh * kw * bi * b * 4, ctx.registers - 6,
                               ctx.l2_bytes, ctx.l1d_bytes)
        if odd is not None:
            return {**odd, "par": par}
    ot, wt = _tile(ocb, ow, panel, max(ctx.registers - 8, 8), ctx.l2_bytes)
    return {"ot": ot, "yt": 1, "wt": wt, "par": par}


def space(sch, ctx) -> list[dict]:
    """Register tiles (ot x yt x wt, no ragged tail, 6..registers-4 accumulators, weight panel
    within 2x L2) and parallel grain; the rule's default first, then the most accumulators."""
    _, ocb, oh, ow, b, icb, bi, kh, kw = _dims(sch)
    panel = icb * bi * kh * kw * b * 4
    base = default_knobs(sch, ctx)
    most = ctx.registers - 4
    out = []
    for ot in (1, 2, 3, 4, 5, 6, 8):
        if ocb % ot or (ot > 1 and ot * panel > 2 * ctx.l2_bytes):
            continue
        for yt in (1, 2, 4):
            if oh % yt:
                continue
            ws = [w for w in range(1, ow + 1) if ow % w == 0 and 6 <= ot * yt * w <= most]
            for wt in ws[-2:]:
                out.append({"ot": ot, "yt": yt, "wt": wt, "par": base["par"], "order": base["order"]})
    out.sort(key=lambda k: (-k["ot"] * k["yt"] * k["wt"], k["yt"], -k["ot"]))
    other = "channels" if base["order"] == "rows" else "rows"
    extra = [{**base, "par": p} for p in (2, 16) if p != base["par"]] + [{**base, "order": other}]
    return C.knob_space(base, out[:8] + extra + out[8:])


def apply(sch, ctx, knobs: dict | None = None) -> None:
    conv = C.find_block(sch, CONV_BLOCK)
    kn = {**default_knobs(sch, ctx), **(knobs or {})}
    pad = C.find_block(sch, PAD_BLOCK)
    if pad is not None:
        C.materialize_pad(sch, pad, ctx.threads)
    tail = C.inline_consumers(sch, conv, ctx)
    n, o, y, x, k, rcb, rc, ry, rx = sch.get_loops(conv)
    _, ocb, oh, ow, b, icb, bi, kh, kw = C.extents(sch, sch.get_loops(conv))
    ot, yt, wt = kn["ot"], kn["yt"], kn["wt"]
    o_o, o_i = sch.split(o, [None, ot])
    y_o, y_i = sch.split(y, [None, yt])
    x_o, x_i = sch.split(x, [None, wt])
    if kn.get("order") == "rows" and (oh // yt) % ctx.threads == 0:  # threads x channel blocks: even
        # (a tuning candidate whose `yt` leaves rows that do not split evenly takes the channel order)
        y_t, y_o = sch.split(y_o, [ctx.threads, None])
        outer, par = [n, y_t, o_o, y_o, x_o], 3
    else:  # the pixel tiles may join the fusion when the rows alone split unevenly (7 rows, 1 block)
        outer, par = [n, o_o, y_o, x_o], 4
    sch.reorder(*outer, rcb, ry, rx, rc, o_i, y_i, x_i, k)
    acc = C.place_accumulator(sch, conv, tail, x_o)
    C.parallel_outer(sch, outer[:par], ctx.threads, kn["par"])
    sch.vectorize(k)
    sch.unroll(x_i)
    sch.unroll(y_i)
    sch.unroll(o_i)
    if bi <= 16:
        sch.unroll(rc)
    sch.decompose_reduction(conv, rcb)
    C.schedule_tail(sch, acc, ctx.lanes)

