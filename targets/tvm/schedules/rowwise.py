"""Rule: row-wise reductions with elementwise stages (softmax, layer norm, mean/max/sum over the
last axis), vectorized.

Every block shares the same leading row axes (the reduction outputs' shape); stages are computed
per row under one parallel row loop (intermediates shrink to a row and stay in L1). Each
reduction over a row of length L is split by a vector width dividing L and rfactored, so the row
is reduced in vector registers (vector max/add) and only the final `w` lanes are combined scalar;
elementwise stages over the row are vectorized. Elementwise stages read by a single stage are
inlined. Rows no vector width divides keep scalar reductions; their elementwise stages are
vectorized as one odd-length vector (LLVM splits it) up to 128 elements.
"""

from __future__ import annotations

from edgec.targets.tvm.schedules import common as C

NAME = "rowwise"


def _row_axes(sch, blocks) -> int | None:
    """Number of shared leading row axes, or None when the function is not row-wise."""
    k = None
    for b in blocks:
        kinds = C.iter_kinds(sch, b)
        if "R" in kinds:
            if kinds.count("R") != 1 or kinds[-1] != "R" or "O" in kinds:
                return None
            kk = len(kinds) - 1
            if k is not None and k != kk:
                return None
            k = kk
    if not k:
        return None
    rows = None
    for b in blocks:
        kinds = C.iter_kinds(sch, b)
        if set(kinds) - {"S", "R"} or len(kinds) not in (k, k + 1):
            return None
        ext = C.extents(sch, sch.get_loops(b))[:k]
        if rows is not None and ext != rows:
            return None
        rows = ext
    return k


def match(sch, ctx) -> bool:
    blocks = C.root_blocks(sch)
    if len(blocks) < 2 or any(len(sch.get_loops(b)) != len(sch.get(b).iter_vars) for b in blocks):
        return False
    return _row_axes(sch, blocks) is not None


def apply(sch, ctx) -> None:
    blocks = C.root_blocks(sch)
    k = _row_axes(sch, blocks)
    for b in blocks[:-1]:  # elementwise stages feeding one stage: inline (x - max into exp)
        if set(C.iter_kinds(sch, b)) == {"S"} and len(sch.get_consumers(b)) == 1:
            try:
                sch.compute_inline(b)
            except Exception:  # noqa: BLE001 - keep it as its own stage
                pass
    rfs = []
    for b in C.root_blocks(sch)[:-1]:  # vector partial reductions: rfactor by a vector width
        if C.iter_kinds(sch, b)[-1] == "R":
            inner = sch.get_loops(b)[-1]
            n = C.extents(sch, [inner])[0]
            # at least two vectors per row: a split whose outer loop has extent 1 is dropped by
            # compute_at, and the reorder below would then take the wrong pair of loops (a
            # 16-long row with 16 lanes on AVX-512)
            w = C.vector_width(n, min(ctx.lanes, 1 << max((n // 2).bit_length() - 1, 0)))  # a power of two
            if w > 1:
                _, r_i = sch.split(inner, [None, w])
                rfs.append(sch.rfactor(r_i, factor_axis=k))
    blocks = C.root_blocks(sch)
    loops = sch.get_loops(blocks[-1])
    row = sch.fuse(*loops[:k]) if k > 1 else loops[0]
    C.parallel(sch, row)
    for b in reversed(blocks[:-1]):
        sch.compute_at(b, row)
    rf_names = {sch.get(b).name_hint for b in rfs}
    for b in sch.get_child_blocks(row):
        if sch.get(b).name_hint in rf_names:
            r_i, r_o = sch.get_loops(b)[-2:]  # compute_at orders the rfactor lane axis first
            sch.reorder(r_o, r_i)
            sch.vectorize(r_i)
            sch.decompose_reduction(b, r_o)
        elif "R" not in C.iter_kinds(sch, b) and len(sch.get_loops(b)) > 1:
            inner = sch.get_loops(b)[-1]
            n = C.extents(sch, [inner])[0]
            w = C.vector_width(n, ctx.lanes)
            if w > 1:
                if n > w:
                    _, inner = sch.split(inner, [None, w])
                sch.vectorize(inner)
            elif n <= 128:  # odd row length: one odd-length vector, LLVM splits it
                sch.vectorize(inner)
