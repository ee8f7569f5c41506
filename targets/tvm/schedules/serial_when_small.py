"""Run a kernel's parallel loop on one thread when its work is small, decided at run time.

For kernels with static extents the rules decide at compile time (schedules.SERIAL_WORK). With
symbolic extents the work is known only per call: a decoder's layer norms, residual adds,
activations and head transposes touch a few thousand floats per decode step but tens of
thousands at prefill, so they are scheduled parallel, and every decode step woke the thread pool
for each of them (~200 fork-joins per GPT-2 step; with the other core busy each can wait a
scheduler slice). Here each top-level parallel loop of such a kernel becomes

    if work < RUNTIME_SERIAL_WORK: the same loop nest, serial
    else:                          the parallel loop nest

where `work` is the nest's innermost iterations as an expression of the symbolic dims. The bound,
2^14 (half the compile-time one), was measured on a quiet 2-core machine, one GPT-2 124M decode
step at past 150, same run, against 2^17: int4 5.73-5.91 -> 4.64-5.06 ms with spinning workers,
9.4-9.6 -> 8.3-8.4 ms with sleeping ones; fp32 12.8 -> 9.9 ms. 2^17 had been chosen on a machine
loaded to 8 by other sessions, where waking the second core cost 0.2-4 ms per kernel: there the
cache Concat (24 x 116K floats) ran 1.13 ms serial against 1.43 parallel. Reshape
kernels are left alone (Relax replaces their calls by views when it recognizes the loop nest), so
are kernels whose root block allocates a non-global intermediate (a "local" tile compacted to one
task's registers would become a whole-tensor buffer used by both branches; a global one stays
correct, only no longer compacted).
"""

from __future__ import annotations

import tvm
from tvm import relax, s_tir, tirx

RUNTIME_SERIAL_WORK = 1 << 14  # innermost iterations (vector lanes counted)


def _work(stmt):
    """Innermost iterations of `stmt` (a PrimExpr): loops multiply, sequences add."""
    if isinstance(stmt, tirx.For):
        return stmt.extent * _work(stmt.body)
    if isinstance(stmt, tirx.SeqStmt):
        total = None
        for s in stmt.seq:
            w = _work(s)
            total = w if total is None else total + w
        return total if total is not None else tirx.const(0, "int64")
    if isinstance(stmt, s_tir.SBlockRealize):
        return _work(stmt.block)
    if isinstance(stmt, s_tir.SBlock):
        body = _work(stmt.body)
        return body + _work(stmt.init) if stmt.init is not None else body
    if isinstance(stmt, tirx.IfThenElse):
        w = _work(stmt.then_case)
        return w + _work(stmt.else_case) if stmt.else_case is not None else w
    return tirx.const(1, "int64")


def _as_int64(e):
    return e if str(e.ty) == "int64" else e.astype("int64")


def _split(loop: tirx.For, threshold: int):
    if loop.kind != tirx.ForKind.PARALLEL:
        return loop
    work = _as_int64(loop.extent) * _as_int64(_work(loop.body))
    if isinstance(work, tirx.IntImm):
        return loop  # static: decided at compile time
    serial = tirx.For(loop.loop_var, loop.min, loop.extent, tirx.ForKind.SERIAL, loop.body,
                      loop.thread_binding, loop.annotations)
    return tirx.IfThenElse(work < tirx.const(threshold, "int64"), serial, loop)


def serial_when_small(func: tirx.PrimFunc, threshold: int = RUNTIME_SERIAL_WORK) -> tirx.PrimFunc:
    """`func` with each top-level parallel loop of symbolic work guarded as the module says;
    `func` itself when it has none, is a reshape, or allocates a non-global intermediate at its
    root block."""
    realize = func.body
    if not isinstance(realize, s_tir.SBlockRealize) or relax.analysis.has_reshape_pattern(func):
        return func  # a reshape: Relax turns its call into a view (vm.builtin.reshape), if it still sees one
    root = realize.block
    if any(b.scope() != "global" for b in root.alloc_buffers) or len(root.match_buffers) or root.init is not None:
        return func
    body = root.body
    if isinstance(body, tirx.For):
        new_body = _split(body, threshold)
        if new_body.same_as(body):
            return func
    elif isinstance(body, tirx.SeqStmt):
        seq = [_split(s, threshold) if isinstance(s, tirx.For) else s for s in body.seq]
        if all(a.same_as(b) for a, b in zip(seq, body.seq)):
            return func
        new_body = tirx.SeqStmt(seq)
    else:
        return func
    new_root = s_tir.SBlock(root.iter_vars, root.reads, root.writes, root.name_hint, new_body, root.init,
                            root.alloc_buffers, root.match_buffers, root.annotations)
    new_realize = s_tir.SBlockRealize(realize.iter_values, realize.predicate, new_root)
    # the two branches define the same loop and block variables: ConvertSSA renames the second
    mod = tvm.tirx.transform.ConvertSSA()(tvm.IRModule({"main": func.with_body(new_realize)}))
    return mod["main"]
