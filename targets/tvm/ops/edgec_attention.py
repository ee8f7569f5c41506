"""edgec.Attention (docs/edgec-ops.md): Y = Softmax(Q·Kᵀ·scale [+ mask], axis=-1)·V, any rank >= 2.

4-D float32 attention with symbolic dims (a decoder's KV cache: [batch, heads, past + new,
head_dim]) runs as one fused kernel (targets/tvm/attention_kernel.py) reading K and V in their
cache layout; anything else as Transpose, MatMul, scale, mask, Softmax, MatMul."""

from __future__ import annotations

from tvm import relax

from edgec.errors import InternalError
from edgec.targets.tvm.attention_kernel import attention as fused_attention
from edgec.targets.tvm.attention_kernel import lanes_for
from edgec.targets.tvm.lower_context import attr
from edgec.targets.tvm.ops import lowers
from edgec.targets.tvm.symbolic import dims_of, simplify

_R = relax.op
_OPAQUE = 8  # OpPatternKind kOpaque: FuseOps leaves the fused attention kernel alone


@lowers("Attention", domain="edgec")
def attention(ctx, node, xs):
    q, k, v = xs[:3]
    mask = xs[3] if len(xs) > 3 else None
    r = q.ty.ndim
    if r < 2 or k.ty.ndim != r or v.ty.ndim != r:
        return NotImplemented
    scale = float(attr(node, "scale", 1.0))
    lengths = [ctx.kv_lengths.get(node.inputs[i].name) for i in (1, 2)]
    if lengths != [None, None]:  # K and V are KV-cache buffers (--kv-cache): only the fused kernel reads them
        fused = None
        if None not in lengths and _same(lengths[0], lengths[1]):
            fused = _fused(ctx, q, k, v, mask, scale, lengths[0])
        if fused is None:
            raise InternalError(f"{ctx.file}: node '{node.name}' (edgec.Attention): attention over a KV-cache buffer "
                                f"needs K and V both cache buffers of one length, 4-D float32, head_dim a multiple of 4")
        return fused
    fused = _fused(ctx, q, k, v, mask, scale)
    if fused is not None:
        return fused
    kt = ctx.emit(_R.permute_dims(k, list(range(r - 2)) + [r - 1, r - 2]))
    s = ctx.emit(_R.matmul(q, kt))
    if scale != 1.0:
        s = ctx.emit(_R.multiply(s, relax.const(scale, str(s.ty.dtype))))
    if mask is not None:
        s = ctx.emit(_R.add(s, mask))
    p = ctx.emit(_R.nn.softmax(s, axis=-1))
    return _R.matmul(p, v)


def _same(a, b) -> bool:
    """Whether two dims (ints or TIR expressions of the symbolic dims) are provably equal."""
    d = simplify(a - b)
    return isinstance(d, int) and d == 0


def _fused(ctx, q, k, v, mask, scale: float, length=None):
    """The fused kernel's output when it applies: 4-D float32 q [B, H, S, D], k and v [B, H, T, D]
    with a symbolic dim among them, D a multiple of 4, and a float32 mask (if any) whose dims are
    1 or the scores' [B, H, S, T] (right-aligned); None otherwise. `length`: k and v are cache
    buffers [B, H / G, MAX, D] whose first `length` rows are T, query head h reading kv head h // G."""
    dq, dk, dv = dims_of(q), dims_of(k), dims_of(v)
    if any(x is None or len(x) != 4 for x in (dq, dk, dv)):
        return None
    group = 1
    if length is not None:
        dk, dv = dk[:2] + [length] + dk[3:], dv[:2] + [length] + dv[3:]
        if isinstance(dq[1], int) and isinstance(dk[1], int) and dk[1] and dq[1] % dk[1] == 0:
            group = dq[1] // dk[1]  # grouped-query attention over the cache (kv-cache-in-place)
            dk, dv = [dk[0], dq[1]] + dk[2:], [dv[0], dq[1]] + dv[2:]
    if any(str(t.ty.dtype) != "float32" for t in (q, k, v)):
        return None
    if all(isinstance(d, int) for d in dq + dk + dv):
        return None  # static shapes: the matmul and softmax rules
    if not isinstance(dq[3], int) or lanes_for(dq[3]) is None:
        return None
    same = [(dq[0], dk[0]), (dq[1], dk[1]), (dq[3], dk[3]), (dk[0], dv[0]), (dk[1], dv[1]), (dk[2], dv[2]),
            (dk[3], dv[3])]
    if not all(_same(a, b) for a, b in same):
        return None
    broadcast = []  # per mask axis: the score axis it follows, or None (a dim of 1)
    if mask is not None:
        dm = dims_of(mask)
        scores = [dq[0], dq[1], dq[2], dk[2]]
        if dm is None or len(dm) > 4 or str(mask.ty.dtype) != "float32":
            return None
        for a, d in enumerate(dm):
            axis = 4 - len(dm) + a
            if isinstance(d, int) and d == 1:
                broadcast.append(None)
            elif _same(d, scores[axis]):
                broadcast.append(axis)
            else:
                return None

    def index(*ijk):
        return tuple(0 if ax is None else ijk[ax] for ax in broadcast)

    args = [q, k, v, mask, length]

    def te_attention(q, k, v, m, t):
        return fused_attention(q, k, v, m, scale, index, t, group)

    # opaque from the start: the block builder then shares one kernel among the layers
    return ctx.bb.emit_te(te_attention, *args, primfunc_name_hint="attention", primfunc_attrs={"op_pattern": _OPAQUE})
