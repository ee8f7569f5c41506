"""com.microsoft RotaryEmbedding (RoPE), and the rotation kernel GroupQueryAttention's do_rotary
shares (ops/gqa.py).

Per head, the first rotary_dim = 2 * cos_cache.shape[1] features rotate by the angle of the
token's position (rows of cos_cache / sin_cache): without interleaving the two halves
x1 = x[:rd/2], x2 = x[rd/2:rd] give (x1 cos - x2 sin, x2 cos + x1 sin); interleaved, the pairs
(x[2i], x[2i+1]) rotate the same way; features past rotary_dim pass through (partial rotary).
Inputs are [batch, seq, hidden] (heads from num_heads, or hidden / head_size with head_size =
rotary_dim when num_heads is 0) or [batch, heads, seq, head_size]; position_ids are [batch, seq],
or [1] (one offset: token i is at position_ids[0] + i), as onnxruntime's CPU kernel reads them.
"""

from __future__ import annotations

from tvm import relax, te, tirx

from edgec.errors import GUARD_PREFIX
from edgec.targets.tvm.lower_context import attr, const, dtype_of
from edgec.targets.tvm.ops import Unsupported, lowers
from edgec.targets.tvm.symbolic import dims_of

_R = relax.op


def rotate(x, cos, sin, position, interleaved: bool):
    """te: x [b, s, n, head] rotated; `position(b, i)` the int64 row of cos/sin for token i of
    batch entry b (clamped to the caches' rows: callers guard the range)."""
    half, rows = cos.shape[1], cos.shape[0]

    def f(bi, i, n, d):
        p = tirx.min(tirx.max(position(bi, i), tirx.const(0, "int64")), rows - 1)
        xd = x[bi, i, n, d]
        if interleaved:
            j = tirx.min(d // 2, half - 1)
            even = d % 2 == 0
            pair = tirx.if_then_else(even, x[bi, i, n, tirx.min(d + 1, 2 * half - 1)], x[bi, i, n, tirx.max(d - 1, 0)])
            rot = tirx.if_then_else(even, xd * cos[p, j] - pair * sin[p, j], xd * cos[p, j] + pair * sin[p, j])
        else:
            first = d < half
            j = tirx.min(tirx.max(tirx.if_then_else(first, d, d - half), 0), half - 1)
            other = tirx.if_then_else(first, x[bi, i, n, tirx.min(d + half, 2 * half - 1)],
                                      x[bi, i, n, tirx.max(d - half, 0)])
            rot = tirx.if_then_else(first, xd * cos[p, j] - other * sin[p, j], xd * cos[p, j] + other * sin[p, j])
        return tirx.if_then_else(d < 2 * half, rot, xd)

    return te.compute(x.shape, f, name="rotary")


@lowers("RotaryEmbedding", domain="com.microsoft")
def rotary_embedding(ctx, node, xs):
    x, pos, cos, sin = xs[:4]
    if dtype_of(x) != "float32" or x.ty.ndim not in (3, 4) or cos.ty.ndim != 2 or pos.ty.ndim not in (1, 2):
        raise Unsupported("RotaryEmbedding: float32 input of rank 3 or 4, 2-D caches and 1-D/2-D position_ids")
    if int(attr(node, "is_packed_batching", 0)):
        raise Unsupported("RotaryEmbedding with is_packed_batching=1 is not supported")
    half = dims_of(cos)[1]
    rd = int(attr(node, "rotary_embedding_dim", 0))
    if not isinstance(half, int) or (rd and rd != 2 * half):
        raise Unsupported(f"RotaryEmbedding: rotary_embedding_dim {rd} and cos_cache width {half} disagree")
    heads = int(attr(node, "num_heads", 0))
    interleaved = bool(int(attr(node, "interleaved", 0)))
    dims = dims_of(x)
    if x.ty.ndim == 4:
        y = ctx.emit(_R.permute_dims(x, [0, 2, 1, 3]))
    else:
        b, s, hidden = dims
        if not isinstance(hidden, int):
            raise Unsupported("RotaryEmbedding: the hidden size of a 3-D input must be static")
        head = hidden // heads if heads else 2 * half
        if head <= 0 or hidden % head:
            raise Unsupported(f"RotaryEmbedding: hidden size {hidden} is no whole number of heads of size {head}")
        y = ctx.emit(_R.reshape(x, [b, s, hidden // head, head]))
    if 2 * half > dims_of(y)[3]:
        raise Unsupported(f"RotaryEmbedding: rotary dim {2 * half} exceeds the head size {dims_of(y)[3]}")
    rows = dims_of(cos)[0]
    p64 = ctx.emit(_R.astype(pos, "int64"))
    if isinstance(rows, int):  # a position outside the caches: one clear error, not a clamped read
        last = p64 if pos.ty.ndim == 2 else ctx.emit(_R.add(p64, _R.subtract(
            _R.reshape(_R.shape_to_tensor(relax.ShapeExpr([dims_of(y)[1]])), [1]), const([1], "int64"))))
        ok = ctx.emit(_R.logical_and(_R.greater_equal(_R.min(p64), const(0, "int64")),
                                     _R.less(_R.max(last), const(rows, "int64"))))
        ctx.guard(ok, f"{GUARD_PREFIX}{ctx.file}: node '{node.name or node.op_type}' (RotaryEmbedding): a position "
                      f"is outside the {rows} rows of cos_cache/sin_cache")
    if pos.ty.ndim == 2:
        out = ctx.bb.emit_te(lambda t, c, sn, p: rotate(t, c, sn, lambda bi, i: p[bi, i], interleaved),
                             y, cos, sin, p64, primfunc_name_hint="rotary_embedding")
    else:
        out = ctx.bb.emit_te(lambda t, c, sn, p: rotate(t, c, sn, lambda bi, i: p[0] + i.astype("int64"), interleaved),
                             y, cos, sin, p64, primfunc_name_hint="rotary_embedding")
    if x.ty.ndim == 4:
        return _R.permute_dims(out, [0, 2, 1, 3])
    return _R.reshape(out, dims)
