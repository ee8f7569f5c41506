"""Rule: a reduction of a whole tensor to a scalar (min / max / sum over every axis: the range of
DynamicQuantizeLinear, a global mean), one block with reduction axes only.

The reduction loops are fused and split by `lanes * unroll`; the inner part is rfactored so the
tensor is reduced in `unroll` independent vector accumulators (vector min/max/add, no serial
dependency chain through one register), and only the final lanes are combined scalar. Sums are
reassociated by this (as by every vectorized reduction); min and max give the same value in any
order.
"""

from __future__ import annotations

from edgec.targets.tvm.schedules import common as C

NAME = "full-reduction"
UNROLL = 4


def match(sch, ctx) -> bool:
    blocks = C.root_blocks(sch)
    if len(blocks) != 1 or set(C.iter_kinds(sch, blocks[0])) != {"R"}:
        return False
    blk = sch.get(blocks[0])
    return len(blk.writes) == 1 and len(blk.writes[0].source.shape) == 0 and ctx.lanes > 1


def apply(sch, ctx) -> None:
    (b,) = C.root_blocks(sch)
    loops = sch.get_loops(b)
    r = sch.fuse(*loops) if len(loops) > 1 else loops[0]
    n = C.extents(sch, [r])[0]
    w = C.vector_width(n, ctx.lanes)
    if w == 1 or n < 4 * w:
        raise ValueError("too short or no vector width divides the reduction")
    u = C.divisor_le(n // w, UNROLL)
    _, r_i = sch.split(r, [None, u * w])
    rf = sch.rfactor(r_i, factor_axis=0)
    r_o, lane = sch.get_loops(rf)
    l_u, l_v = sch.split(lane, [u, w])
    sch.unroll(l_u)
    sch.vectorize(l_v)
    sch.decompose_reduction(rf, r_o)
