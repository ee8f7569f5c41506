"""Runtime guards as TIR kernels, portable to every runtime edgec deploys to.

A guard (`LowerContext.guard`) is a bool scalar computed in the dataflow block and a message.
`thread_guards` makes the first graph output pass through one small kernel per guard that
asserts the flag (TIR AssertStmt: the kernel returns an error, which the Relax VM, the bundle's
C runner and edgec's armv7 runtime all report) and copies the output; because the output depends
on it, no dead-code elimination can drop the check. Relax's `assert_op` is not used: TVM
implements it in Python only, so bundle runners could not execute it.
"""

from __future__ import annotations

import numpy as np
from tvm import relax, te, tirx
from tvm.script import tirx as T

_R = relax.op


def _kernel(message: str, size: int, dtype: str):
    @T.prim_func(private=True)
    def edgec_guard(ok: T.Buffer((T.int64(1),), "bool"), x: T.Buffer((T.int64(size),), dtype),
                    y: T.Buffer((T.int64(size),), dtype)):
        T.func_attr({"tir.noalias": True, "op_pattern": 8})  # opaque: never fused into neighbours
        assert ok[0], message
        for i in range(T.int64(size)):
            y[i] = x[i]

    return edgec_guard


def thread_guards(bb: relax.BlockBuilder, guards: list[tuple[relax.Expr, str]], out: relax.Expr) -> relax.Expr:
    """`out` after passing through every guard's kernel, in order."""
    out = bb.normalize(out)  # e.g. a zero-size constant built by R.zeros has no type yet
    shape = list(out.ty.shape)
    static = all(isinstance(d, tirx.IntImm) for d in shape)
    shape = [int(d) for d in shape] if static else shape
    dtype = str(out.ty.dtype)
    size = int(np.prod(shape, dtype=np.int64)) if static else -1
    if not static:
        return _thread_symbolic(bb, guards, out, shape, dtype)
    if size == 0:  # nothing to copy: the checked flags select between out and itself
        for ok, message in guards:
            fn = bb.add_func(_kernel(message, 1, "bool"), "edgec_guard")
            flag = bb.emit(_R.reshape(ok, [1]))
            flag = bb.emit(relax.call_tir(fn, [flag, flag], relax.TensorType([1], "bool")))
            out = bb.emit(_R.where(_R.reshape(flag, [1] * len(shape)), out, out))
        return out
    flat = bb.emit(_R.reshape(out, [size]))
    for ok, message in guards:
        fn = bb.add_func(_kernel(message, size, dtype), "edgec_guard")
        flag = bb.emit(_R.reshape(ok, [1]))
        flat = bb.emit(relax.call_tir(fn, [flag, flat], relax.TensorType([size], dtype)))
    return bb.emit(_R.reshape(flat, shape))


def _thread_symbolic(bb: relax.BlockBuilder, guards, out: relax.Expr, shape: list, dtype: str) -> relax.Expr:
    """A symbolic-shape output: the guard kernels assert on one-element flags, chained, and one
    opaque copy kernel takes the last flag with the flattened output. (An elementwise
    `where(flag, out, out)` fused into the output's kernel as an epilogue: an LLM's vocabulary
    head ran 100x slower.)"""
    dep = None
    for ok, message in guards:
        fn = bb.add_func(_kernel(message, 1, "bool"), "edgec_guard")
        flag = bb.emit(_R.reshape(ok, [1]))
        dep = bb.emit(relax.call_tir(fn, [flag, dep if dep is not None else flag], relax.TensorType([1], "bool")))
    size = 1
    for d in shape:
        size = size * d
    flat = bb.emit(_R.reshape(out, [size]))
    fn = bb.add_func(_pass_through(dtype), "edgec_guard_pass")
    flat = bb.emit(relax.call_tir(fn, [dep, flat], relax.TensorType([size], dtype)))
    return bb.emit(_R.reshape(flat, shape))


def _pass_through(dtype: str):
    """y = x over a symbolic length, reading nothing of `ok` (a data dependency only)."""
    n = tirx.Var("n", "int64")
    ok = te.placeholder((1,), "bool", name="ok")
    x = te.placeholder((n,), dtype, name="x")
    y = te.compute((n,), lambda i: x[i], name="y")
    return te.create_prim_func([ok, x, y]).without_attr("global_symbol").with_attr("op_pattern", 8)  # opaque: never fused
