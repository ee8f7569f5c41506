"""Rule: depthwise 2-D convolution that stays NCHW (channel counts no vector block divides;
edgec's `edgec_dwconv_nchw` block from `packing.dwconv2d_nchw`).

Parallel over (batch, channel); the zero-padded input plane of one channel is materialized under
that loop (its fill and interior copy are separate loops, so the copy vectorizes without a
per-lane condition); a tile of `yt` rows x `wt` pixels (whole vectors: the width was padded to
the tile at legalization) is accumulated in registers over the kernel window with the channel's
weights broadcast (input rows shared by neighbouring output rows are loaded once); the fused
epilogue runs on the tile, or per row band on the real width when the width was padded.
"""

from __future__ import annotations

from edgec.targets.tvm.packing import DWCONV_NCHW, DWCONV_NCHW_PAD, DWCONV_NCHW_UNPAD
from edgec.targets.tvm.schedules import common as C

NAME = "depthwise-nchw"


def match(sch, ctx) -> bool:
    b = C.find_block(sch, DWCONV_NCHW)
    return b is not None and C.iter_kinds(sch, b) == "SSSSRR"


def _tile(owp: int, lanes: int) -> int:
    for w in (2 * lanes, lanes, lanes // 2):
        if w >= 4 and owp % w == 0:
            return w
    raise ValueError(f"padded width {owp} is not a multiple of a vector")


def apply(sch, ctx) -> None:
    conv = C.find_block(sch, DWCONV_NCHW)
    pad = C.find_block(sch, DWCONV_NCHW_PAD)
    padded_width = C.find_block(sch, DWCONV_NCHW_UNPAD) is not None
    tail = C.inline_consumers(sch, conv, ctx)
    n, c, y, x, ry, rx = sch.get_loops(conv)
    nn, cc, oh, owp, _, _ = C.extents(sch, sch.get_loops(conv))
    wt = _tile(owp, ctx.lanes)
    lanes = min(wt, ctx.lanes)
    yt = C.good_tile(oh, max(min(4, (ctx.registers - 8) // (wt // lanes)), 1))
    y_o, y_i = sch.split(y, [None, yt])
    x_o, x_i = sch.split(x, [None, wt])
    x_u, x_v = sch.split(x_i, [None, lanes])
    sch.reorder(n, c, y_o, x_o, ry, rx, y_i, x_u, x_v)
    # rows of yt x wt pixels; with a padded width the epilogue runs per row band on the real
    # width (a tile-level epilogue would carry a per-lane bound and be scalarized)
    acc = C.place_accumulator(sch, conv, tail, y_o if padded_width else x_o)
    outer = sch.fuse(n, c)
    if nn * cc < ctx.threads * 4:  # few channels: row bands in parallel too
        outer = sch.fuse(outer, y_o)
    C.parallel(sch, outer)
    if pad is not None:
        sch.compute_at(pad, outer)
        try:  # fill + interior copy; the phase-split copy of a strided conv stays one scalar pass
            fill = sch.decompose_padding(pad, sch.get_loops(pad)[1])
        except Exception:  # noqa: BLE001 - ScheduleError: leave the copy as one pass
            fill = None
        for blk in (fill, pad) if fill is not None else ():
            _vectorize_row(sch, blk)
    sch.vectorize(x_v)
    sch.unroll(x_u)
    sch.unroll(y_i)
    sch.unroll(rx)
    sch.unroll(ry)
    sch.decompose_reduction(conv, ry)
    if padded_width:
        _vectorize_row(sch, acc)
    else:
        C.schedule_tail(sch, acc, ctx.lanes)


def _vectorize_row(sch, blk) -> None:
    """Vectorize a block's innermost loop whole (LLVM splits odd lengths into vectors + a rest)."""
    inner = sch.get_loops(blk)[-1]
    if C.extents(sch, [inner])[0] <= 256:
        sch.vectorize(inner)
