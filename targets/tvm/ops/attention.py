"""Attention (opset 23+): 3-D/4-D Q/K/V, KV cache (past/present), boolean or additive masks,
causal and sliding-window masking, nonpad_kv_seqlen, grouped-query heads, softcap,
softmax_precision and all qk_matmul_output modes. Follows onnx's reference implementation,
including its fully-masked-row convention (such rows produce zeros, not NaN)."""

from __future__ import annotations

import numpy as np
from tvm import relax, te

from edgec.targets.tvm.lower_context import attr, const, dtype_of, shape_of
from edgec.targets.tvm.ops import Unsupported, lowers
from edgec.targets.tvm.ops.cast import onnx_dtype
from edgec.targets.tvm.symbolic import dims_of

_R = relax.op


def _to_heads(ctx, x, heads: int):
    b, s, hidden = shape_of(x)
    x = ctx.emit(_R.reshape(x, [b, s, heads, hidden // heads]))
    return ctx.emit(_R.permute_dims(x, [0, 2, 1, 3]))


def _neg_inf_bias(ctx, allowed, dt):
    """0 where `allowed`, -inf elsewhere."""
    return ctx.emit(_R.where(allowed, const(0.0, dt), const(-np.inf, dt)))


def _offset_mask(ctx, q_len, kv_len, offset, dt, left=-1, right=-1, causal=True):
    """Bias allowing key j for query i iff j <= i + offset (causal) and within the window.
    `offset` is an int (same for every batch) or a (batch,) int64 Relax tensor."""
    i = np.arange(q_len).reshape(q_len, 1)
    j = np.arange(kv_len).reshape(1, kv_len)
    if isinstance(offset, int):
        diff = i + offset - j
        ok = np.ones_like(diff, dtype=bool)
        if causal:
            ok &= diff >= 0
        if left >= 0:
            ok &= diff <= left
        if right >= 0:
            ok &= -diff <= right
        return const(np.where(ok, 0.0, -np.inf).astype(dt if dt != "bfloat16" else np.float32), dt)
    off = ctx.emit(_R.reshape(offset, [-1, 1, 1]))
    ioff = ctx.emit(_R.add(const(i.astype(np.int64)), off))
    diff = ctx.emit(_R.subtract(ioff, const(j.astype(np.int64))))
    ok = None

    def both(a, b):
        return b if a is None else ctx.emit(_R.logical_and(a, b))

    if causal:
        ok = both(ok, ctx.emit(_R.greater_equal(diff, const(np.int64(0)))))
    if left >= 0:
        ok = both(ok, ctx.emit(_R.less_equal(diff, const(np.int64(left)))))
    if right >= 0:
        ok = both(ok, ctx.emit(_R.greater_equal(diff, const(np.int64(-right)))))
    bias = _neg_inf_bias(ctx, ok, dt)  # (batch, q, kv)
    return ctx.emit(_R.expand_dims(bias, 1))


@lowers("Attention")
def attention(ctx, node, xs):
    xs = list(xs) + [None] * (7 - len(xs))
    q, k, v, mask, past_k, past_v, nonpad = xs[:7]
    rank = len(shape_of(q) or [])
    if rank not in (3, 4) or shape_of(k) is None or shape_of(v) is None:
        return NotImplemented
    dt = dtype_of(q)
    if dt == "float16":
        # onnx's reference (numpy) accumulates half-precision matmuls in float32: compute in
        # float32 and round the outputs once, instead of rounding every partial sum to float16
        up = [None if t is None else (ctx.emit(_R.astype(t, "float32")) if dtype_of(t) == "float16" else t)
              for t in (q, k, v, mask, past_k, past_v)]
        outs = _attention(ctx, node, *up, nonpad, scale_dtype=np.float16)
        return [o if o is NotImplemented else ctx.emit(_R.astype(o, "float16")) for o in outs] \
            if isinstance(outs, list) else outs
    return _attention(ctx, node, q, k, v, mask, past_k, past_v, nonpad)


def _attention(ctx, node, q, k, v, mask, past_k, past_v, nonpad, scale_dtype=None):
    rank = len(shape_of(q))
    dt = dtype_of(q)
    q_heads, kv_heads = attr(node, "q_num_heads"), attr(node, "kv_num_heads")
    if rank == 3:
        if q_heads is None or kv_heads is None:
            raise Unsupported("3-D Attention needs q_num_heads and kv_num_heads")
        q, k, v = _to_heads(ctx, q, q_heads), _to_heads(ctx, k, kv_heads), _to_heads(ctx, v, kv_heads)
    b, qh, q_len, head = shape_of(q)
    scale = attr(node, "scale")
    scale = 1.0 / np.sqrt(head) if scale is None else float(scale)
    s = np.sqrt(scale)
    if scale_dtype is not None:  # the reference rounds the scale to the input type
        s = float(scale_dtype(s))
    if past_k is not None:
        k = ctx.emit(_R.concat([past_k, k], axis=2))
    if past_v is not None:
        v = ctx.emit(_R.concat([past_v, v], axis=2))
    present_k, present_v = k, v
    kv_len = shape_of(k)[2]
    past_len = shape_of(past_k)[2] if past_k is not None else 0

    bias = None
    if mask is not None:
        ms = shape_of(mask)
        pad = kv_len - ms[-1]
        if pad > 0:
            fill = np.zeros if dtype_of(mask) == "bool" else (lambda sh, dtype: np.full(sh, -np.inf, dtype))
            filler = const(fill(ms[:-1] + [pad], dtype=np.dtype(dtype_of(mask)) if dtype_of(mask) != "bfloat16"
                                else np.float32), dtype_of(mask))
            mask = ctx.emit(_R.concat([mask, filler], axis=-1))
        if dtype_of(mask) == "bool":
            mask = _neg_inf_bias(ctx, mask, dt)
        bias = mask
    left, right = int(attr(node, "left_window_size", -1)), int(attr(node, "right_window_size", -1))
    is_causal = bool(attr(node, "is_causal", 0))
    if is_causal or left >= 0 or right >= 0:
        if past_k is None and nonpad is not None:
            offset = ctx.emit(_R.subtract(ctx.emit(_R.astype(nonpad, "int64")), const(np.int64(q_len))))
        else:
            offset = past_len
        m = _offset_mask(ctx, q_len, kv_len, offset, dt, left, right, causal=is_causal)
        bias = m if bias is None else ctx.emit(_R.add(bias, m))
    if nonpad is not None:
        pos = const(np.arange(kv_len, dtype=np.int64).reshape(1, kv_len))
        n64 = ctx.emit(_R.astype(nonpad, "int64"))
        ok = ctx.emit(_R.less(pos, ctx.emit(_R.reshape(n64, [-1, 1]))))
        pm = ctx.emit(_R.reshape(_neg_inf_bias(ctx, ok, dt), [b, 1, 1, kv_len]))
        bias = pm if bias is None else ctx.emit(_R.add(bias, pm))

    kvh = shape_of(k)[1]
    if qh != kvh and qh % kvh == 0:
        k = ctx.emit(_R.repeat(k, qh // kvh, axis=1))
        v = ctx.emit(_R.repeat(v, qh // kvh, axis=1))
    sc = const(s, dt)
    qk = scores(ctx, ctx.emit(_R.multiply(q, sc)), ctx.emit(_R.multiply(k, sc)))
    softcap = attr(node, "softcap")
    if softcap is not None and float(softcap) > 0:
        c = const(float(softcap), dt)
        qk = ctx.emit(_R.multiply(_R.tanh(_R.divide(qk, c)), c))
    mode = int(attr(node, "qk_matmul_output_mode", 0))
    with_bias = qk if bias is None else ctx.emit(_R.add(qk, bias))
    qk_out = with_bias if mode == 2 else qk
    logits = with_bias
    precision = attr(node, "softmax_precision")
    if precision is not None:
        pdt = onnx_dtype(precision)
        if pdt is None:
            raise Unsupported(f"softmax_precision {precision} is not supported")
        if pdt != dt:
            logits = ctx.emit(_R.astype(logits, pdt))
    probs = safe_softmax(ctx, logits)
    if bias is not None:
        bmax = ctx.emit(_R.max(bias, axis=-1, keepdims=True))
        all_masked = ctx.emit(_R.equal(bmax, const(-np.inf, dtype_of(bmax))))
        probs = ctx.emit(_R.where(all_masked, const(0.0, dtype_of(probs)), probs))
    if mode == 3:
        qk_out = probs
    if dtype_of(probs) != dt:
        probs = ctx.emit(_R.astype(probs, dt))
    if dtype_of(qk_out) != dt:
        qk_out = ctx.emit(_R.astype(qk_out, dt))
    y = ctx.emit(_R.matmul(probs, v))
    if rank == 3:
        y = ctx.emit(_R.permute_dims(y, [0, 2, 1, 3]))
        y = ctx.emit(_R.reshape(y, [b, q_len, -1]))
    return [y, present_k, present_v, qk_out]


def scores(ctx, q, k):
    """q @ k^T over the last axis of both. With symbolic dims (a KV cache whose length varies per
    call) one kernel reads k[b, h, past, d] row by row: transposing the cache first ran a generic
    strided copy of the whole cache per layer and step (2-3 ms each on GPT-2 124M at past 128)."""
    dq, dk = dims_of(q), dims_of(k)
    symbolic = any(not isinstance(d, int) for d in (dq or []) + (dk or []))
    if not symbolic or len(dq) != 4 or len(dk) != 4 or dtype_of(q) != "float32":
        return ctx.emit(_R.matmul(q, ctx.emit(_R.permute_dims(k, [0, 1, 3, 2]))))

    def te_scores(q, k):
        d = te.reduce_axis((0, q.shape[3]), name="d")
        return te.compute((q.shape[0], q.shape[1], q.shape[2], k.shape[2]),
                          lambda b, h, i, j: te.sum(q[b, h, i, d] * k[b, h, j, d], axis=d), name="scores")

    return ctx.bb.emit_te(te_scores, q, k, primfunc_name_hint="attention_scores")


def safe_softmax(ctx, x):
    """Softmax over the last axis that maps an all -inf row to zeros (onnx's reference)."""
    dt = dtype_of(x)
    m = ctx.emit(_R.max(x, axis=-1, keepdims=True))
    m = ctx.emit(_R.where(ctx.emit(_R.equal(m, const(-np.inf, dt))), _R.zeros_like(m), m))
    e = ctx.emit(_R.exp(_R.subtract(x, m)))
    s = ctx.emit(_R.sum(e, axis=-1, keepdims=True))
    s = ctx.emit(_R.where(_R.equal(s, const(0.0, dt)), _R.ones_like(s), s))
    return ctx.emit(_R.divide(e, s))
