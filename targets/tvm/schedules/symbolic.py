"""Rule (last resort): kernels with symbolic loop extents (a model compiled with symbolic dims).

The other rules size tiles and vectors from static extents and give up on a symbolic one. This
rule still makes the kernel parallel: elementwise producers are inlined into their elementwise
consumers (`_inline_elementwise_producers`), then per root block the leading data-parallel loops are fused
and run in parallel; an innermost data-parallel loop with a static extent is vectorized (split by
the vector width, the tail masked). Reductions keep their loops serial inside each parallel task,
except a reduction whose innermost spatial loop is static and contiguous in the output (a matmul
x[m, k] @ w[k, n] with m = batch * sequence): there the reduction runs outside a vector of n
(`_reduce_outside_vector`), so every step reads a contiguous row of w instead of a strided column.
That is what a decode step (m = 1) is made of. Kernels it schedules are counted as
`parallel-symbolic` in the compile summary: parallel, but not tiled for registers or caches as
the static rules are.
"""

from __future__ import annotations

from tvm import tirx

from edgec.targets.tvm.schedules import common as C

NAME = "parallel-symbolic"


def _static(ext) -> int | None:
    return int(ext.value) if isinstance(ext, tirx.IntImm) else None


def match(sch, ctx) -> bool:
    return any(_static(sch.get(lp).extent) is None for b in C.root_blocks(sch) for lp in sch.get_loops(b))


# the vector of output columns one task accumulates over the whole reduction (floats)
_ROW_CANDIDATES = (64, 32, 16, 8)


def _reduce_outside_vector(sch, b, loops, n_sp: int, ctx) -> bool:
    """loops [S..., n, R...] -> parallel(S..., n / w), R..., vector(w): the reduction outside a
    vector of w output columns (w divides the static n if one of _ROW_CANDIDATES does, else the
    last vector is partial). False (schedule untouched) when n is symbolic or smaller than 8."""
    last = _static(sch.get(loops[n_sp - 1]).extent)
    if last is None or ctx.lanes < 4:
        return False
    w = next((c for c in _ROW_CANDIDATES if c >= ctx.lanes and last % c == 0), None)
    if w is None:  # no width divides n (a vocabulary of 50257): the last vector is masked
        w = _ROW_CANDIDATES[0] if last >= _ROW_CANDIDATES[0] else None
    if w is None:
        return False
    outer, inner = sch.split(loops[n_sp - 1], [None, w])
    red = list(loops[n_sp:])
    lead = list(loops[:n_sp - 1]) + [outer]
    fused = sch.fuse(*lead) if len(lead) > 1 else lead[0]
    sch.reorder(fused, *red, inner)
    C.parallel(sch, fused)  # before decompose_reduction: the update block alone is no reduction block
    sch.vectorize(inner)
    sch.decompose_reduction(b, red[0])
    return True


def _inline_elementwise_producers(sch) -> None:
    """Inline each data-parallel block whose consumers are all data-parallel (an elementwise chain
    fused by FuseOps: tanh then multiply): one loop nest per chain, instead of one parallel nest per
    op and an intermediate buffer of the whole tensor between them. Blocks that cannot be inlined
    (a function output, a non-trivial index map) stay."""
    for b in C.root_blocks(sch)[:-1]:
        if set(C.iter_kinds(sch, b)) != {"S"}:
            continue
        consumers = sch.get_consumers(b)
        if not consumers or any(set(C.iter_kinds(sch, c)) != {"S"} for c in consumers):
            continue
        try:
            sch.compute_inline(b)
        except Exception:  # noqa: BLE001 - tvm raises ScheduleError subclasses; the block stays
            continue


def apply(sch, ctx, knobs: dict | None = None) -> None:
    done = False
    _inline_elementwise_producers(sch)
    for b in C.root_blocks(sch):
        kinds = C.iter_kinds(sch, b)
        loops = sch.get_loops(b)
        if not loops or len(loops) != len(kinds):
            continue
        n_sp = kinds.index("R") if "R" in kinds else len(kinds)
        if "S" in kinds[n_sp:] or "O" in kinds[:n_sp]:
            continue  # a layout this rule does not reason about: left serial
        if 0 < n_sp < len(loops) and _reduce_outside_vector(sch, b, loops, n_sp, ctx):
            done = True
            continue
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
