"""Rule: the int8 dot-product matmul of targets/tvm/int8_matmul.py (block `edgec_i8mm`), with its
A preparation (`edgec_i8mm_a`) and any fused elementwise epilogue (zero-point correction, cast,
scales, bias, requantize).

Register tile: `it` rows x `nb` blocks of L int32 lanes (L = 16 for VNNI, 4 for sdot), accumulated
over k in steps of 4 by the dot-product intrinsic (`sch.tensorize`; without one, "neon": blocks of
16 columns as int32 vectors, one widening multiply-accumulate per k), the accumulator tile
computed under the row-tile loop and read by the epilogue there (vectorized along the columns);
parallel over (batch, column tile, row tile). The A preparation, when present, is its own
parallel, vectorized stage. Rows need no padding (`it` divides M); K and N are padded by the kernel.

Knobs (`edgec tune --space knobs`): `it`, `nb`, `par` (parallel tasks per thread).
"""

from __future__ import annotations

from edgec.targets.tvm.int8_matmul import I8MM, I8MM_A, packed_lanes
from edgec.targets.tvm.schedules import common as C
from edgec.targets.tvm.schedules.int8_dot import INTRINSICS

NAME = "matmul_int8"


def _find(sch, name: str):
    for b in C.root_blocks(sch):
        if sch.get(b).name_hint == name:
            return b
    return None


def _intrinsic(sch, gemm) -> tuple[str | None, int]:
    """(tensor intrinsic, lanes) from the packed B [N/L, K/4, L, 4] and A's dtype; (None, 16) for
    the widening layout [N/16, K/4, 4, 16] (int8 A)."""
    blk = sch.get(gemm)
    packed = _packed(sch, gemm)
    lanes, n_inner, _ = packed_lanes(packed.shape)
    a_types = {str(r.source.dtype) for r in blk.reads if not r.source.same_as(packed)} - {"int32"}
    for intrin, n, a_type in INTRINSICS.values():
        if n == lanes and a_types == {a_type} and (intrin is None) == n_inner:
            return intrin, lanes
    raise ValueError(f"no dot-product intrinsic for {lanes} lanes and A {a_types}")


def _packed(sch, gemm):
    """The packed B buffer the gemm block reads (4-D, int8 or int16)."""
    packed = [r.source for r in sch.get(gemm).reads
              if len(r.source.shape) == 4 and str(r.source.dtype) in ("int8", "int16")]
    if len(packed) != 1:
        raise ValueError("no packed B")
    return packed[0]


def _group(sch, gemm) -> int:
    """k's per step of the packed B (4, or 2 for vpmaddwd's int16 pairs)."""
    return packed_lanes(_packed(sch, gemm).shape)[2]


def match(sch, ctx) -> bool:
    return _find(sch, I8MM) is not None


def _dims(sch, gemm):
    m, nl, k = C.extents(sch, sch.get_loops(gemm))[-3:]
    return m, nl, k


def _regs_per_block(lanes: int, ctx) -> int:
    """Vector registers one block of `lanes` int32 accumulators takes (4 for 16 lanes on NEON)."""
    return max(lanes // max(ctx.lanes, 1), 1)


def default_knobs(sch, ctx) -> dict:
    m, nl, _ = _dims(sch, sch.get_sblock(I8MM))
    _, lanes = _intrinsic(sch, sch.get_sblock(I8MM))
    per = _regs_per_block(lanes, ctx)
    nb = C.divisor_le(nl // lanes, 2 if per > 1 else 4 if lanes >= 8 else 8)
    return {"it": C.divisor_le(m, max((ctx.registers - 8) // (nb * per), 1)), "nb": nb, "par": 4}


def space(sch, ctx) -> list[dict]:
    base = default_knobs(sch, ctx)
    m, nl, _ = _dims(sch, sch.get_sblock(I8MM))
    _, lanes = _intrinsic(sch, sch.get_sblock(I8MM))
    out = []
    for nb in sorted({C.divisor_le(nl // lanes, c) for c in (1, 2, 3, 4, 6, 8)}):
        for it in sorted({C.divisor_le(m, c) for c in (2, 4, 6, 8)}):
            if 4 <= it * nb * _regs_per_block(lanes, ctx) <= ctx.registers - 4:
                out.append({**base, "it": it, "nb": nb})
    out.sort(key=lambda kn: -kn["it"] * kn["nb"])
    out += [{**base, "par": p} for p in (2, 8)]
    return C.knob_space(base, out)


def apply(sch, ctx, knobs: dict | None = None) -> None:
    kn = {**default_knobs(sch, ctx), **(knobs or {})}
    gemm = sch.get_sblock(I8MM)
    intrin, lanes = _intrinsic(sch, gemm)
    names = [sch.get(b).name_hint for b in C.root_blocks(sch)]
    for b in C.root_blocks(sch)[:names.index(I8MM)]:  # fused producers: into the A stage if possible
        if sch.get(b).name_hint != I8MM_A:
            try:
                sch.compute_inline(b)
            except Exception:  # noqa: BLE001 - a stage of its own
                C.schedule_spatial(sch, b, ctx)
    prep = _find(sch, I8MM_A)
    if prep is not None:
        C.schedule_spatial(sch, prep, ctx)
    gemm = sch.get_sblock(I8MM)
    tail = C.inline_consumers(sch, gemm, ctx)
    loops = sch.get_loops(gemm)
    batch, i, j, k = loops[:-3], loops[-3], loops[-2], loops[-1]
    it, nb = kn["it"], kn["nb"]
    i_o, i_i = sch.split(i, [None, it])
    j_o, j_i = sch.split(j, [None, nb * lanes])
    j_b, j_l = sch.split(j_i, [None, lanes])
    k_o, k_l = sch.split(k, [None, _group(sch, gemm)])
    if intrin is None:  # widening multiply-accumulate: per k, vectors of 16 columns
        sch.reorder(*batch, j_o, i_o, k_o, k_l, i_i, j_b, j_l)
    else:
        sch.reorder(*batch, j_o, i_o, k_o, i_i, j_b, j_l, k_l)
    if tail is None:
        tail = sch.cache_write(gemm, 0, "global")
    sch.reverse_compute_at(tail, i_o)
    C.parallel_outer(sch, [*batch, j_o, i_o], ctx.threads, kn["par"])
    sch.unroll(i_i)
    sch.unroll(j_b)
    if intrin is None:
        sch.unroll(k_l)
        sch.vectorize(j_l)
    C.finish_dot_tile(sch, gemm, k_o, intrin, j_l, tail, ctx.lanes)
