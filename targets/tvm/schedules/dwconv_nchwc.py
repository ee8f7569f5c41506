"""Rule: depthwise 2-D convolution in NCHW{b}c (edgec's `edgec_dwconv_nchwc` block).

Parallel over (batch, channel block, output row); a tile of `wt` output pixels x b channels is
accumulated in registers over the kernel window; padding inlined; epilogue fused on the tile.

Knobs (`edgec tune --space knobs`): `wt`, `pad` ("inline" or "materialize"), `par`.
"""

from __future__ import annotations

from edgec.targets.tvm.layout import DWCONV_BLOCK, PAD_BLOCK
from edgec.targets.tvm.schedules import common as C

NAME = "depthwise-nchwc"


def match(sch, ctx) -> bool:
    b = C.find_block(sch, DWCONV_BLOCK)
    return b is not None and C.iter_kinds(sch, b) == "SSSSSRR"


def default_knobs(sch, ctx) -> dict:
    conv = C.find_block(sch, DWCONV_BLOCK)
    _, _, oh, ow = C.extents(sch, sch.get_loops(conv))[:4]
    ih, iw = (int(d) for d in sch.get(conv).reads[0].source.shape[2:4])
    # rows first where the (padded) input planes are large: its producer then splits rows too
    # (common.parallel_order); on 14x14 and smaller planes the channel split measured faster
    rows = oh % ctx.threads == 0 and ih * iw > 256
    return {"wt": C.good_tile(ow, C.depthwise_tile_cap(ctx.registers)), "pad": "inline", "par": 8,
            "order": "rows" if rows else "channels"}


def space(sch, ctx) -> list[dict]:
    ow = C.extents(sch, sch.get_loops(C.find_block(sch, DWCONV_BLOCK)))[3]
    base = default_knobs(sch, ctx)
    wts = [w for w in range(2, ow + 1) if ow % w == 0 and w <= ctx.registers - 4][-3:]
    out = [{**base, "wt": w} for w in reversed(wts)]
    if C.find_block(sch, PAD_BLOCK) is not None:
        out += [{**k, "pad": "materialize"} for k in [base, *out]]
    out += [{**base, "par": p} for p in (2, 32)] + [{**base, "order": "channels" if base["order"] == "rows" else "rows"}]
    return C.knob_space(base, out)


def apply(sch, ctx, knobs: dict | None = None) -> None:
    conv = C.find_block(sch, DWCONV_BLOCK)
    kn = {**default_knobs(sch, ctx), **(knobs or {})}
    pad = C.find_block(sch, PAD_BLOCK)
    if pad is not None and kn["pad"] == "materialize":
        C.materialize_pad(sch, pad, ctx.threads)
    elif pad is not None:  # inlined: a separate padded copy measured slower for this memory-bound op
        sch.compute_inline(pad)
    tail = C.inline_consumers(sch, conv, ctx)
    n, o, y, x, k, ry, rx = sch.get_loops(conv)
    wt = kn["wt"]
    x_o, x_i = sch.split(x, [None, wt])
    if kn.get("order") == "rows" and C.extents(sch, [y])[0] % ctx.threads == 0:
        y_t, y = sch.split(y, [ctx.threads, None])
        outer = [n, y_t, o, y]
    else:
        outer = [n, o, y]
    sch.reorder(*outer, x_o, ry, rx, x_i, k)
    acc = C.place_accumulator(sch, conv, tail, x_o)
    C.parallel_outer(sch, outer[:3], ctx.threads, kn["par"], balance=False)
    sch.vectorize(k)
    sch.unroll(x_i)
    sch.unroll(rx)
    sch.decompose_reduction(conv, ry)
    C.schedule_tail(sch, acc, ctx.lanes)
