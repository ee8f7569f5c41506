"""Rule: a depthwise conv fused into the 1x1 conv that reads it (targets/tvm/fuse_depthwise.py),
both in NCHW{b}c.

Parallel over output row tiles. For each tile, the depthwise rows (every channel block, with its
bias and activation) are computed into a buffer of a few KiB that stays in L1/L2, then the
pointwise register tiles (conv_nchwc's tile) sweep it: the depthwise output never goes to memory.

Knobs (`edgec tune --space knobs`): the pointwise tile `ot`, `yt`, `wt` and the depthwise pixel
tile `dwt`.
"""

from __future__ import annotations

from edgec.targets.tvm.layout import CONV_BLOCK, DWCONV_BLOCK, PAD_BLOCK
from edgec.targets.tvm.schedules import common as C
from edgec.targets.tvm.schedules import conv_nchwc

NAME = "depthwise-pointwise-nchwc"


def match(sch, ctx) -> bool:
    dw, pw = C.find_block(sch, DWCONV_BLOCK), C.find_block(sch, CONV_BLOCK)
    return dw is not None and pw is not None and C.iter_kinds(sch, dw) == "SSSSSRR" \
        and C.iter_kinds(sch, pw) == "SSSSSRRRR" and C.extents(sch, sch.get_loops(pw))[-2:] == [1, 1]


def default_knobs(sch, ctx) -> dict:
    dw = C.find_block(sch, DWCONV_BLOCK)
    ow = C.extents(sch, sch.get_loops(dw))[3]
    _, ocb, oh, _, _, icb, bi, _, _ = C.extents(sch, sch.get_loops(C.find_block(sch, CONV_BLOCK)))
    kn = conv_nchwc._tile_knobs(sch, ctx)
    if (oh // kn["yt"]) % ctx.threads and oh % ctx.threads == 0:
        # one-row tiles split evenly (MobileNetV2's 14x14 pairs with 2-row tiles had 7 tasks on 2
        # threads; with 1-row tiles, 384 -> 64: 0.052 -> 0.045 ms)
        ot, wt = conv_nchwc._tile(ocb, ow, icb * bi * 16 * 4, max(ctx.registers - 8, 8), ctx.l2_bytes)
        kn = {"ot": ot, "yt": 1, "wt": wt}
    # rows, unless they split unevenly over the threads and the output-channel tiles do not: then
    # each thread takes its share of the channel tiles and computes all the depthwise rows itself
    rows = (oh // kn["yt"]) % ctx.threads == 0 or (ocb // kn["ot"]) % ctx.threads
    split = "rows" if rows else "channels"
    return {"ot": kn["ot"], "yt": kn["yt"], "wt": kn["wt"], "dwt": C.good_tile(ow, C.depthwise_tile_cap(ctx.registers)),
            "split": split}


def space(sch, ctx) -> list[dict]:
    """The default, other depthwise pixel tiles, the other parallel split, then conv_nchwc's
    pointwise register tiles."""
    base = default_knobs(sch, ctx)
    ow = C.extents(sch, sch.get_loops(C.find_block(sch, DWCONV_BLOCK)))[3]
    dwts = [w for w in range(2, ow + 1) if ow % w == 0 and w <= ctx.registers - 4][-3:]
    other = {**base, "split": "channels" if base["split"] == "rows" else "rows"}
    tiles = [{**base, "ot": k["ot"], "yt": k["yt"], "wt": k["wt"]} for k in conv_nchwc.space(sch, ctx)[1:9]]
    return C.knob_space(base, [{**base, "dwt": w} for w in dwts] + [other] + tiles)


def _between(sch, first, last) -> list:
    blocks = C.root_blocks(sch)
    names = [sch.get(b).name_hint for b in blocks]
    return blocks[names.index(sch.get(first).name_hint) + 1:names.index(sch.get(last).name_hint)]


def apply(sch, ctx, knobs: dict | None = None) -> None:
    kn = {**default_knobs(sch, ctx), **(knobs or {})}
    dw, pw = C.find_block(sch, DWCONV_BLOCK), C.find_block(sch, CONV_BLOCK)
    pad = C.find_block(sch, PAD_BLOCK)
    if pad is not None:
        sch.compute_inline(pad)
    mid = _between(sch, dw, pw)
    if not C.is_elementwise_chain(sch, mid):
        raise ValueError("non-elementwise block between the depthwise and the pointwise conv")
    for b in mid[:-1]:
        sch.compute_inline(b)
    act = mid[-1] if mid else None  # writes the depthwise values the pointwise conv reads
    tail = C.inline_consumers(sch, pw, ctx)

    n, o, y, x, k, rcb, rc, ry, rx = sch.get_loops(pw)
    ow = C.extents(sch, sch.get_loops(dw))[3]
    ot, yt, wt = kn["ot"], kn["yt"], kn["wt"]
    o_o, o_i = sch.split(o, [None, ot])
    y_o, y_i = sch.split(y, [None, yt])
    x_o, x_i = sch.split(x, [None, wt])
    if kn["split"] == "channels":  # each thread its output-channel blocks; computes all depthwise rows
        if C.extents(sch, [o_o])[0] % ctx.threads:
            raise ValueError("output-channel tiles do not split evenly over the threads")
        o_t, o_o = sch.split(o_o, [ctx.threads, None])
        sch.reorder(n, o_t, y_o, o_o, x_o, rcb, ry, rx, rc, o_i, y_i, x_i, k)
        rows = y_o
        C.parallel_outer(sch, [n, o_t], ctx.threads, 1, balance=False)
    else:
        sch.reorder(n, y_o, o_o, x_o, rcb, ry, rx, rc, o_i, y_i, x_i, k)
        rows = None
    acc = C.place_accumulator(sch, pw, tail, x_o)
    if rows is None:
        # the row tiles themselves are the parallel loop the depthwise rows are computed under,
        # whatever the thread count: fusing only until there are `threads` iterations stopped at
        # the batch with 1 thread (or a batch of `threads` images), and the depthwise buffer then
        # held the whole image (MobileNetV2's first block at 1 thread: 160 -> 255 us)
        rows = sch.fuse(n, y_o)
        C.parallel(sch, rows)
    sch.vectorize(k)
    sch.unroll(x_i)
    sch.unroll(y_i)
    sch.unroll(o_i)
    sch.unroll(rc)
    sch.decompose_reduction(pw, rcb)
    C.schedule_tail(sch, acc, ctx.lanes)

    # the depthwise rows of this row tile, all channel blocks, register-accumulated per pixel tile
    if act is not None:
        sch.compute_at(act, rows)
    sch.compute_at(dw, rows)
    loops = sch.get_loops(dw)
    inner = loops[[sch.get(lp).same_as(sch.get(rows)) for lp in loops].index(True) + 1:]
    # compute_at drops the loops of extent 1 (the batch; the rows when the tile is one row)
    *outer, dx, dk, dry, drx = inner
    if C.extents(sch, [dx])[0] != ow:
        raise ValueError("unexpected depthwise loops under the row tile")
    dx_o, dx_i = sch.split(dx, [None, kn["dwt"]])
    sch.reorder(*outer, dx_o, dry, drx, dx_i, dk)
    dacc = C.place_accumulator(sch, dw, act, dx_o)
    sch.vectorize(dk)
    sch.unroll(dx_i)
    sch.unroll(drx)
    sch.decompose_reduction(dw, dry)
    C.schedule_tail(sch, dacc, ctx.lanes)
