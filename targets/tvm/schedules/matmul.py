"""Rule: matmul / dense / batch-matmul, C[b.., i, j] = sum_k A[.., i, k] * B[.., k, j], with any
fused elementwise epilogue (bias, activation, residual add, GELU).

Register tile: `it` rows x `jt` columns (jt/lanes vectors along j, which must be B's innermost,
contiguous axis), accumulated in a local buffer over k; parallel over (batch, column tile, row
tile) with the column tile outer so one B panel [K, jt] is reused from cache across row tiles.

Knobs (`edgec tune --space knobs`): `it` (rows of the tile), `nvec` (vectors along j, when B is
not packed; a packed B fixes the panel width), `par` (parallel tasks per thread).
"""

from __future__ import annotations

import tvm
from tvm import tirx

from edgec.targets.tvm.packing import MATMUL_PACKED, pick_panel
from edgec.targets.tvm.schedules import common as C

NAME = "matmul"


def _walk(e, fn) -> None:
    """Visit a TIR expression/store tree (this TVM exposes no Python post-order visitor)."""
    fn(e)
    for name in ("value", "a", "b", "condition", "true_value", "false_value"):
        child = getattr(e, name, None)
        if isinstance(child, tvm.ir.Expr):
            _walk(child, fn)
    for name in ("args", "indices"):
        for child in getattr(e, name, None) or ():
            if isinstance(child, tvm.ir.Expr):
                _walk(child, fn)


def _vars(expr) -> set:
    out = []
    _walk(expr, lambda e: out.append(e) if isinstance(e, tirx.Var) else None)
    return out


def find_gemm(sch):
    """The single S..SR block whose two inputs index (i, k) and (k, j) with j innermost in B, or
    edgec's packed-B matmul block."""
    found = None
    for b in C.root_blocks(sch):
        kinds = C.iter_kinds(sch, b)
        if "R" not in kinds:
            continue
        if found is not None or kinds[-1] != "R" or kinds.count("R") != 1 or len(kinds) < 3:
            return None
        found = b
    if found is None:
        return None
    if sch.get(found).name_hint == MATMUL_PACKED:
        return found
    blk = sch.get(found)
    ivars = [iv.var for iv in blk.iter_vars]
    i, j, k = ivars[-3], ivars[-2], ivars[-1]
    out = blk.writes[0].source
    ins = [r for r in blk.reads if not r.source.same_as(out)]
    if len(ins) != 2:
        return None
    idx = _load_indices(blk.body, [r.source for r in ins])
    if idx is None:
        return None
    (ia, a_idx), (ib, b_idx) = idx
    if not _has(_vars(a_idx[-1]), k) and _has(_vars(b_idx[-1]), k):
        a_idx, b_idx = b_idx, a_idx
    a_vars = [v for e in a_idx for v in _vars(e)]
    b_vars = [v for e in b_idx for v in _vars(e)]
    if not (_has(a_vars, i) and _has(a_vars, k) and not _has(a_vars, j)):
        return None
    if not (_has(b_vars, j) and _has(b_vars, k) and not _has(b_vars, i)):
        return None
    if not (isinstance(b_idx[-1], tirx.Var) and b_idx[-1].same_as(j)):
        return None  # B is not contiguous along j: leave it to another rule
    return found


def _has(vs, v) -> bool:
    return any(x.same_as(v) for x in vs)


def _load_indices(body, bufs):
    loads = []

    def visit(e):
        if isinstance(e, tvm.ir.TensorLoad) and any(e.source.same_as(b) for b in bufs):
            loads.append(e)

    _walk(body, visit)
    if len(loads) != 2:
        return None
    return [(ld.source, list(ld.indices)) for ld in loads]


def match(sch, ctx) -> bool:
    return find_gemm(sch) is not None


def _panel_width(sch, gemm) -> int | None:
    """jt of a packed B [N/jt, K, jt] (indexed [j // jt, k, j % jt]); None for a plain matmul."""
    if sch.get(gemm).name_hint != MATMUL_PACKED:
        return None
    loads = []
    _walk(sch.get(gemm).body, lambda e: loads.append(e) if isinstance(e, tvm.ir.TensorLoad) else None)
    for ld in loads:
        if len(ld.indices) == 3 and isinstance(ld.indices[-1], tirx.FloorMod):
            return int(ld.source.shape[-1])
    raise ValueError("packed matmul without a packed B load")


def _shape(sch, ctx):
    """(m, n, jt of a packed B or None, vector width along j)."""
    gemm = find_gemm(sch)
    jt = _panel_width(sch, gemm)
    m, n = C.extents(sch, sch.get_loops(gemm))[-3:-1]
    if jt is None and C.vector_width(n, ctx.lanes) == 1:
        jt = pick_panel(n, ctx.lanes)
    jv = C.vector_width(jt if jt is not None else n, ctx.lanes)
    return m, n, jt, jv


def default_knobs(sch, ctx) -> dict:
    m, n, jt, jv = _shape(sch, ctx)
    nvec = jt // jv if jt is not None else C.divisor_le(n // jv, max(4 * ctx.lanes // jv, 1))
    return {"it": C.good_tile(m, max((ctx.registers - 6) // nvec, 1)), "nvec": nvec, "par": 4}


def space(sch, ctx) -> list[dict]:
    m, n, jt, jv = _shape(sch, ctx)
    base = default_knobs(sch, ctx)
    nvecs = [base["nvec"]] if jt is not None else [v for v in (1, 2, 3, 4) if (n // jv) % v == 0]
    out = []
    for nv in nvecs:
        cap = max((ctx.registers - 4) // nv, 1)
        for it in sorted({C.good_tile(m, c) for c in (cap, cap // 2, cap * 2 // 3) if c >= 1}, reverse=True):
            if 4 <= it * nv <= ctx.registers - 2:
                out.append({**base, "it": it, "nvec": nv})
    out.sort(key=lambda k: -k["it"] * k["nvec"])
    out += [{**base, "par": p} for p in (2, 8)]
    return C.knob_space(base, out)


def _symbolic_rows(sch, gemm) -> bool:
    return any(not isinstance(sch.get(lp).extent, tirx.IntImm) for lp in sch.get_loops(gemm)[:-2])


def apply(sch, ctx, knobs: dict | None = None) -> None:
    gemm = find_gemm(sch)
    if _symbolic_rows(sch, gemm):
        _apply_symbolic_rows(sch, ctx, gemm)
        return
    kn = {**default_knobs(sch, ctx), **(knobs or {})}
    jt = _panel_width(sch, gemm)
    name = sch.get(gemm).name_hint
    blocks = C.root_blocks(sch)
    names = [sch.get(b).name_hint for b in blocks]
    producers = blocks[:names.index(name)]
    for p in producers:  # fused producers (transposes, reshapes): inline into the matmul
        sch.compute_inline(p)
    n = C.extents(sch, sch.get_loops(gemm))[-2]
    pads = []
    if jt is None and C.vector_width(n, ctx.lanes) == 1:
        # N no vector width divides: compute over a zero-padded B copy and a padded-width result
        jt = pick_panel(n, ctx.lanes)
        kinds = C.iter_kinds(sch, gemm)
        sch.pad_einsum(gemm, [1] * (len(kinds) - 2) + [-(-n // jt) * jt, 1])
        gemm = sch.get_sblock(name)
        names = [sch.get(b).name_hint for b in C.root_blocks(sch)]
        pads = [b for b in C.root_blocks(sch)[:names.index(name)]]
    tail = C.inline_consumers(sch, gemm, ctx)
    loops = sch.get_loops(gemm)
    batch, i, j, k = loops[:-3], loops[-3], loops[-2], loops[-1]
    m, n, _ = C.extents(sch, [i, j, k])
    if jt is not None:
        jv = C.vector_width(jt, ctx.lanes)
        nvec = jt // jv
    else:
        jv = C.vector_width(n, ctx.lanes)
        nvec = kn["nvec"]
        jt = jv * nvec
    it = kn["it"]
    i_o, i_i = sch.split(i, [None, it])
    j_o, j_i = sch.split(j, [None, jt])
    j_iv, j_v = sch.split(j_i, [None, jv])
    sch.reorder(*batch, j_o, i_o, k, i_i, j_iv, j_v)
    acc = C.place_accumulator(sch, gemm, tail, i_o)
    C.parallel_outer(sch, [*batch, j_o, i_o], ctx.threads, kn["par"])
    sch.vectorize(j_v)
    sch.unroll(j_iv)
    sch.unroll(i_i)
    sch.decompose_reduction(gemm, k)
    C.schedule_tail(sch, acc, ctx.lanes)
    for p in pads:  # the zero-padded operand copies: small, parallel over their outer loops
        C.parallel_outer(sch, sch.get_loops(p)[:-1] or sch.get_loops(p), ctx.threads)


# symbolic M (an LLM's batch x sequence): rows per tile and k per panel chunk
SYMBOLIC_ROWS, K_CHUNK = 8, 64


def _apply_symbolic_rows(sch, ctx, gemm) -> None:
    """A packed-B matmul whose rows (M, batch) are symbolic: one kernel for decode (M = 1) and
    prefill. Parallel over column panels (static); per tile of SYMBOLIC_ROWS rows (the last one
    predicated), k in chunks of K_CHUNK so a [K_CHUNK, jt] piece of the panel stays in L1 while each
    row of the tile streams through it; each row's jt/lanes accumulator vectors live across its
    chunk. At M = 1 this streams every panel once, as a matrix-vector product must."""
    jt = _panel_width(sch, gemm)
    if jt is None:
        raise ValueError("symbolic rows: only the packed-B matmul (constant weights) is scheduled")
    name = sch.get(gemm).name_hint
    blocks = C.root_blocks(sch)
    for p in blocks[:[sch.get(b).name_hint for b in blocks].index(name)]:
        sch.compute_inline(p)
    gemm = sch.get_sblock(name)
    tail = C.inline_consumers(sch, gemm, ctx)
    loops = sch.get_loops(gemm)
    batch, i, j, k = loops[:-3], loops[-3], loops[-2], loops[-1]
    kk = int(sch.get(k).extent)
    jv = C.vector_width(jt, ctx.lanes)
    i_o, i_i = sch.split(i, [None, SYMBOLIC_ROWS])
    j_o, j_i = sch.split(j, [None, jt])
    j_iv, j_v = sch.split(j_i, [None, jv])
    k_o, k_i = sch.split(k, [None, C.divisor_le(kk, K_CHUNK)])
    sch.reorder(j_o, *batch, i_o, k_o, i_i, k_i, j_iv, j_v)
    acc = C.place_accumulator(sch, gemm, tail, i_o)
    C.parallel(sch, j_o)
    sch.vectorize(j_v)
    sch.unroll(j_iv)
    sch.decompose_reduction(gemm, k_o)
    C.schedule_tail(sch, acc, ctx.lanes)
