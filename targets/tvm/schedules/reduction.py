"""Rule: row-wise reductions with injective stages (softmax, layer norm, mean): DLight's CPU
`Reduction` rule — parallel over the shared leading spatial axes, every stage computed per row,
injective stages vectorized."""

from __future__ import annotations

from tvm.s_tir.dlight.cpu import Reduction

NAME = "reduction(dlight)"


def match(sch, ctx) -> bool:
    return ctx.target is not None


def apply(sch, ctx):
    out = Reduction().apply(sch.mod["main"], ctx.target, False)
    if out is None:
        raise ValueError("not a row-wise reduction")
    return out
