"""Shrink (soft/hard shrinkage): y = x - bias where x > lambd, x + bias where x < -lambd, else 0.

Float inputs only; other dtypes return NotImplemented and go to TVM's ONNX importer (the
fallback). Worked example of docs/adding-an-op-lowering.md."""

from __future__ import annotations

from tvm import relax

from edgec.targets.tvm.lower_context import attr, const, dtype_of
from edgec.targets.tvm.ops import lowers


@lowers("Shrink")
def shrink(ctx, node, xs):
    x = xs[0]
    dt = dtype_of(x)
    if not dt.startswith("float"):
        return NotImplemented  # integer Shrink: TVM's ONNX importer lowers it
    lambd = float(attr(node, "lambd", 0.5))
    bias = float(attr(node, "bias", 0.0))
    zero = const(0.0, dt)
    above = relax.op.where(relax.op.greater(x, const(lambd, dt)), relax.op.subtract(x, const(bias, dt)), zero)
    return relax.op.where(relax.op.less(x, const(-lambd, dt)), relax.op.add(x, const(bias, dt)), above)
