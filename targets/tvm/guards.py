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
from tvm import relax, tirx
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
    if size == 0 or not static:  # nothing to copy, or a symbolic size: the checked flags select between out and itself
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
