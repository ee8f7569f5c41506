"""Reading a Relax function's dataflow: its bindings in order, and a `call_tir`'s tensor arguments.
Shared by the module passes that walk `main` (fuse_depthwise, unaligned_inputs)."""

from __future__ import annotations

from tvm import relax


def bindings(func: relax.Function) -> list:
    """The bindings of `func`'s body, block after block (none if the body is not a SeqExpr)."""
    body = func.body
    if not isinstance(body, relax.SeqExpr):
        return []
    return [b for blk in body.blocks for b in blk.bindings]


def call_tir_args(call: relax.Call) -> list:
    """The tensor arguments of a `call_tir`, in the kernel's parameter order."""
    args = call.args[1]
    return list(args.fields) if isinstance(args, relax.Tuple) else [args]
