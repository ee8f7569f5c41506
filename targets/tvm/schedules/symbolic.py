"""Rule (last resort): kernels with symbolic loop extents (a model compiled with symbolic dims).

The other rules size tiles and vectors from static extents and give up on a symbolic one. This
rule still makes the kernel parallel: per root block, the leading data-parallel loops are fused
and run in parallel; an innermost data-parallel loop with a static extent is vectorized (split by
the vector width, the tail masked). Reductions keep their loops serial inside each parallel task.
Kernels it schedules are counted as `parallel-symbolic` in the compile summary: parallel, but not
tiled for registers or caches as the static rules are.
"""

from __future__ import annotations

from tvm import tirx

from edgec.targets.tvm.schedules import common as C

NAME = "parallel-symbolic"


def _static(ext) -> int | None:
    return int(ext.value) if isinstance(ext, tirx.IntImm) else None


def match(sch, ctx) -> bool:
    return any(_static(sch.get(lp).extent) is None for b in C.root_blocks(sch) for lp in sch.get_loops(b))


def apply(sch, ctx, knobs: dict | None = None) -> None:
    done = False
    for b in C.root_blocks(sch):
        kinds = C.iter_kinds(sch, b)
        loops = sch.get_loops(b)
        if not loops or len(loops) != len(kinds):
            continue
        n_sp = kinds.index("R") if "R" in kinds else len(kinds)
        if "S" in kinds[n_sp:] or "O" in kinds[:n_sp]:
            continue  # a layout this rule does not reason about: left serial
        lead = list(loops[:n_sp])
        if n_sp == len(loops) and lead:
            last = _static(sch.get(lead[-1]).extent)
            w = C.vector_width(last, ctx.lanes) if last else 1
            if w > 1 and len(lead) > 1:
                if last > w:
                    outer, inner = sch.split(lead[-1], [None, w])
                    lead = lead[:-1] + [outer]
                else:
                    inner = lead.pop()
                sch.vectorize(inner)
        if not lead:
            continue
        fused = sch.fuse(*lead) if len(lead) > 1 else lead[0]
        C.parallel(sch, fused)
        done = True
    if not done:
        raise ValueError("no block with leading data-parallel loops")
