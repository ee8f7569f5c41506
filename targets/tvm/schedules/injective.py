"""Rule (fallback): every block gets parallel outer loops and, where its innermost loop allows,
a vectorized inner loop. Reductions keep their reduction loops innermost and serial; their
spatial loops are parallel. Applies to any PrimFunc, so it is tried last."""

from __future__ import annotations

from edgec.targets.tvm.schedules import common as C

NAME = "parallel-vectorize"


def match(sch, ctx) -> bool:
    return True


def apply(sch, ctx) -> None:
    for b in C.root_blocks(sch):
        kinds = C.iter_kinds(sch, b)
        loops = sch.get_loops(b)
        if not loops:
            continue
        if set(kinds) == {"S"}:
            _spatial(sch, b, loops, ctx)
        elif "R" in kinds and kinds.index("R") > 0:
            n_sp = kinds.index("R")
            if "S" not in kinds[n_sp:]:
                C.parallel_outer(sch, loops[:n_sp], ctx.threads * 4)


def _spatial(sch, b, loops, ctx):
    ext = C.extents(sch, loops)
    total = 1
    for e in ext:
        total *= e
    if total < 64:
        return
    inner = loops[-1]
    w = C.vector_width(ext[-1], ctx.lanes)
    outer = loops[:-1]
    if w > 1:
        if ext[-1] > w:
            o, inner = sch.split(inner, [None, w])
            outer = outer + [o]
        sch.vectorize(inner)
    if outer:
        C.parallel_outer(sch, outer, ctx.threads * 4)
