"""edgec.Attention (docs/edgec-ops.md): Y = Softmax(Q·Kᵀ·scale [+ mask], axis=-1)·V, any rank >= 2."""

from __future__ import annotations

from tvm import relax

from edgec.targets.tvm.lower_context import attr
from edgec.targets.tvm.ops import lowers

_R = relax.op


@lowers("Attention", domain="edgec")
def attention(ctx, node, xs):
    q, k, v = xs[:3]
    mask = xs[3] if len(xs) > 3 else None
    r = q.ty.ndim
    if r < 2 or k.ty.ndim != r or v.ty.ndim != r:
        return NotImplemented
    kt = ctx.emit(_R.permute_dims(k, list(range(r - 2)) + [r - 1, r - 2]))
    s = ctx.emit(_R.matmul(q, kt))
    scale = float(attr(node, "scale", 1.0))
    if scale != 1.0:
        s = ctx.emit(_R.multiply(s, relax.const(scale, str(s.ty.dtype))))
    if mask is not None:
        s = ctx.emit(_R.add(s, mask))
    p = ctx.emit(_R.nn.softmax(s, axis=-1))
    return _R.matmul(p, v)
