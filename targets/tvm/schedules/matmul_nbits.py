"""Rule: the weight-only quantized matmul of targets/tvm/nbits_matmul.py (blocks `edgec_nbits_a`,
`edgec_nbits_part`, `edgec_nbits`) with any fused elementwise epilogue (bias, residual add,
activation). Works with symbolic M and batch dims (one kernel for prefill and decode).

Loop nest: groups of COLUMNS output columns outermost and parallel (each thread streams its own
rows of the weights once, whatever M is), then the rows of A; per (group, row) each column's 16
lane partial sums live in a local vector accumulator over the K blocks, the dequantization
(unpack, convert, scale) and the multiply-add vectorized across the 16 lanes, the group's columns
interleaved per 16 k (independent accumulators, A's 16 floats loaded once for all of them: with one
column per step every multiply-add waited on the previous one's latency); then the lanes are summed
and the epilogue applied.
The padded copy of A, when there is one, is its own parallel stage.
"""

from __future__ import annotations

from tvm import tirx

from edgec.targets.tvm.nbits_matmul import NBITS, NBITS_A, NBITS_PART
from edgec.targets.tvm.schedules import common as C

NAME = "matmul_nbits"
COLUMNS = 4  # output columns per task step: independent accumulators (a lone one is bound by the FMA latency)


def match(sch, ctx) -> bool:
    return C.find_block(sch, NBITS_PART) is not None


def _pad_stage(sch, pad, ctx) -> None:
    loops = sch.get_loops(pad)
    sch.vectorize(sch.split(loops[-1], [None, 16])[1])
    if len(loops) > 1:
        C.parallel(sch, sch.fuse(*loops[:-1]) if len(loops) > 2 else loops[0])


def apply(sch, ctx, knobs: dict | None = None) -> None:
    names = [sch.get(b).name_hint for b in C.root_blocks(sch)]
    for b in C.root_blocks(sch)[:names.index(NBITS_PART)]:
        if sch.get(b).name_hint != NBITS_A:
            sch.compute_inline(b)  # fused producers of A (elementwise): read on the fly
    pad = C.find_block(sch, NBITS_A)
    if pad is not None:
        _pad_stage(sch, pad, ctx)
    out = sch.get_sblock(NBITS)
    tail = C.inline_epilogue(sch, out)
    *rows, col, lane = sch.get_loops(out)
    col_o, col_i = sch.split(col, [None, COLUMNS])
    sch.reorder(col_o, *rows, col_i, lane)
    C.parallel(sch, col_o)
    inner = rows[-1] if rows else col_o
    part = sch.get_sblock(NBITS_PART)
    above = len(rows) + 1  # col_o and the rows: the loops part is computed under
    sch.compute_at(part, inner)
    sch.set_scope(part, 0, "local")
    p_col, p_lane, rb, *rg = sch.get_loops(part)[above:]  # rg: gone when a block is one group of 16
    sch.reorder(rb, *rg, p_col, p_lane)  # per 16 k: the COLUMNS columns' multiply-adds, independent
    sch.vectorize(p_lane)
    sch.unroll(p_col)
    if rg:
        sch.unroll(rg[0])
    init = sch.decompose_reduction(part, rb)
    sch.vectorize(sch.get_loops(init)[-1])
    if tail is not None:
        sch.reverse_compute_at(tail, inner)
    _check_static_lanes(sch, part)


def _check_static_lanes(sch, part) -> None:
    ext = sch.get(sch.get_loops(part)[-1]).extent
    if not isinstance(ext, tirx.IntImm):
        raise ValueError("lane loop is not static")
