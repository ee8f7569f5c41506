"""Rule: the fused attention kernel of targets/tvm/attention_kernel.py (blocks `edgec_attn*`),
with symbolic batch, query and key lengths (one kernel for prefill and every decode step).

Loop nest: one parallel task per query row (b, h, i fused); inside it, in order: per key row j
the q.k partial sums vectorized across LANES of head_dim (k's row is contiguous) and summed; the
row's max, exp and sum; then the exp-weighted sum of v rows with the reduction over j outside a
vector of head_dim (v's rows are contiguous); the output row divided by the sum. The scores and
exps of the row (past + new floats) are the task's own scratch buffers.
"""

from __future__ import annotations

from tvm import tirx

from edgec.targets.tvm.attention_kernel import (
    ATTN,
    ATTN_EXP,
    ATTN_LOGITS,
    ATTN_MAX,
    ATTN_PART,
    ATTN_PV,
    ATTN_S,
    ATTN_SUM,
)
from edgec.targets.tvm.schedules import common as C

NAME = "attention"


def match(sch, ctx) -> bool:
    return C.find_block(sch, ATTN_PART) is not None and C.find_block(sch, ATTN) is not None


def apply(sch, ctx, knobs: dict | None = None) -> None:
    out = sch.get_sblock(ATTN)
    b, h, i, d = sch.get_loops(out)
    row = sch.fuse(b, h, i)
    C.parallel(sch, row)
    sch.vectorize(d)
    pv = sch.get_sblock(ATTN_PV)
    sch.compute_at(pv, row)
    pd, pj = sch.get_loops(pv)[1:]
    sch.reorder(pj, pd)
    sch.vectorize(pd)
    init = sch.decompose_reduction(pv, pj)
    sch.vectorize(sch.get_loops(init)[-1])
    sch.compute_inline(sch.get_sblock(ATTN_LOGITS))
    for name in (ATTN_SUM, ATTN_EXP, ATTN_MAX, ATTN_S):
        sch.compute_at(sch.get_sblock(name), row)
    s = sch.get_sblock(ATTN_S)
    sj = sch.get_loops(s)[1]
    part = sch.get_sblock(ATTN_PART)
    sch.compute_at(part, sj)
    sch.set_scope(part, 0, "local")
    lane, *rd = sch.get_loops(part)[2:]  # rd is gone when head_dim is one vector of lanes
    if rd:
        sch.reorder(*rd, lane)
    sch.vectorize(lane)
    init = sch.decompose_reduction(part, rd[0] if rd else lane)
    sch.vectorize(sch.get_loops(init)[-1])
    if not isinstance(sch.get(lane).extent, tirx.IntImm):
        raise ValueError("head_dim lanes are not static")
