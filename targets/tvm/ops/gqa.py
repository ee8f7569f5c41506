"""com.microsoft GroupQueryAttention, as onnxruntime-genai's model builder writes it for
Llama/Qwen-style decoders: packed or separate Q/K/V [batch, seq, heads * head_size], a BNSH KV
cache (past [batch, kv_heads, past, head_size] in, present out), `seqlens_k` (tokens per batch
entry minus one) and `total_sequence_length`, causal (optionally sliding-window) masking, query
heads grouped onto kv heads (head n reads kv head n // (num_heads / kv_num_heads)), rotary
embedding inside the op (`do_rotary`, cos/sin caches [max_positions, rotary_dim / 2]), softcap.

Semantics follow onnxruntime's CPU kernel (contrib_ops/cpu/bert/gqa_attention_base.h,
group_query_attention_helper.h): the call is the first prompt iff sequence_length equals
total_sequence_length; batch entry b then has past_b = 0 tokens of past, else
past_b = seqlens_k[b] + 1 - sequence_length. The new keys/values are written into present at rows
[past_b, past_b + sequence_length) after the first past_b rows of past; query i attends to rows
j <= last = min(past_b + i, seqlens_k[b]) (padding queries of a right-padded first prompt see the
entry's tokens), and with a window only to the local_window_size rows up to and including last
(j > last - local_window_size): what onnxruntime 1.31 computes, measured; the rotary position of
query i is past_b + i. present has max(past length, total_sequence_length) rows; rows after the
written ones are zero (what onnxruntime writes with separate past and present buffers; a caller
sharing one buffer, past_present_share_buffer, keeps the past's rows there instead).

Symbolic dims stay symbolic: total_sequence_length must be computed from input shapes (the
builder's Shape(attention_mask)[1]), so that present's length is an expression of the input dims.
"""

from __future__ import annotations

import numpy as np
from tvm import relax, te, tirx

from edgec.errors import GUARD_PREFIX
from edgec.targets.tvm.lower_context import attr, const, dtype_of, has_input
from edgec.targets.tvm.ops import Unsupported, lowers
from edgec.targets.tvm.ops.attention import safe_softmax, scores
from edgec.targets.tvm.ops.rotary import rotate
from edgec.targets.tvm.symbolic import dims_of, shape_value, simplify

_R = relax.op
# optional inputs the lowering does not implement: position_ids, attention_bias, head_sink,
# k_scale, v_scale, q_norm_weight, k_norm_weight
_UNSUPPORTED_INPUTS = {9: "position_ids", 10: "attention_bias", 11: "head_sink", 12: "k_scale", 13: "v_scale",
                       14: "q_norm_weight", 15: "k_norm_weight"}


@lowers("GroupQueryAttention", domain="com.microsoft")
def group_query_attention(ctx, node, xs):
    xs = list(xs) + [None] * (9 - len(xs))
    _check_supported(node, xs)
    heads, kv_heads = int(attr(node, "num_heads", 0)), int(attr(node, "kv_num_heads", 0))
    query, key, value, past_k, past_v, seqlens_k, total = xs[:7]
    b, s, width = dims_of(query)
    if heads <= 0 or kv_heads <= 0 or heads % kv_heads or not isinstance(width, int):
        raise Unsupported(f"GroupQueryAttention with num_heads={heads}, kv_num_heads={kv_heads}, query width {width}")
    packed = key is None
    head = width // (heads + 2 * kv_heads) if packed else width // heads
    if head * (heads + 2 * kv_heads if packed else heads) != width:
        raise Unsupported(f"GroupQueryAttention: query width {width} is not a whole number of heads")
    if packed:
        q = _heads(ctx, query, b, s, 0, heads, head)
        k = _heads(ctx, query, b, s, heads * head, kv_heads, head)
        v = _heads(ctx, query, b, s, (heads + kv_heads) * head, kv_heads, head)
    else:
        q, k, v = (_heads(ctx, t, b, s, 0, n, head) for t, n in ((query, heads), (key, kv_heads), (value, kv_heads)))
    total_dims = shape_value(ctx, node.inputs[6]) if len(node.inputs) > 6 else None
    if total_dims is None or total_dims.size != 1:
        raise Unsupported("GroupQueryAttention: total_sequence_length must be computed from the input shapes "
                          "(as Shape(attention_mask)[1]) so that present's length is known")
    if past_k is not None:  # the cache's heads and head size must be the query's (checked at run time)
        past_k, past_v = (_cache_layout(ctx, t, kv_heads, head) for t in (past_k, past_v))
    past_len = dims_of(past_k)[2] if past_k is not None else 0
    present_len = simplify(tirx.max(past_len, total_dims.reshape(-1)[0])) if past_k is not None \
        else simplify(total_dims.reshape(-1)[0])
    seqlens = ctx.emit(_R.astype(_R.reshape(seqlens_k, [-1]), "int64"))
    past_b = _past_lengths(ctx, seqlens, total, s)
    if int(attr(node, "do_rotary", 0)):
        cos, sin = xs[7], xs[8]
        if cos is None or sin is None:
            raise Unsupported("GroupQueryAttention with do_rotary=1 needs cos_cache and sin_cache")
        interleaved = bool(int(attr(node, "rotary_interleaved", 0)))
        rows, half = dims_of(cos)
        if not isinstance(half, int) or 2 * half > head or dims_of(sin)[1] != half:
            raise Unsupported(f"GroupQueryAttention: cos/sin caches of width {half} for head size {head}")
        if isinstance(rows, int):  # a position past the caches' rows: one clear error, not a clamped read
            msg = (f"{GUARD_PREFIX}{ctx.file}: GroupQueryAttention: total_sequence_length "
                   f"('{node.inputs[6].name}') exceeds the {rows} rows of cos_cache '{node.inputs[7].name}'")
            if all(m != msg for _, m in ctx.guards):  # one check for all the layers sharing them
                ok = ctx.emit(_R.less_equal(ctx.emit(_R.astype(_R.reshape(total, []), "int64")), const(np.int64(rows))))
                ctx.guard(ok, msg)
        q, k = (ctx.bb.emit_te(_rotate_from, t, cos, sin, past_b, interleaved=interleaved,
                               primfunc_name_hint="gqa_rotary") for t in (q, k))
    present_k = _present(ctx, past_k, k, past_b, present_len)
    present_v = _present(ctx, past_v, v, past_b, present_len)
    scale = float(attr(node, "scale", 0.0)) or 1.0 / float(np.sqrt(head))
    window = int(attr(node, "local_window_size", -1))
    softcap = float(attr(node, "softcap", 0.0))
    group = heads // kv_heads
    # the query heads of one kv head as rows of one matrix: q·k through attention's scores kernel,
    # which reads the cache row by row and never repeats it per query head
    grouped = ctx.emit(_R.reshape(_R.permute_dims(q, [0, 2, 1, 3]), [b, kv_heads, group * s, head]))
    raw = ctx.emit(_R.reshape(scores(ctx, grouped, present_k), [b, kv_heads, group, s, present_len]))
    logits = ctx.bb.emit_te(_masked_scores, raw, past_b, seqlens, scale=scale, group=group, window=window,
                            softcap=softcap, primfunc_name_hint="gqa_mask")
    probs = safe_softmax(ctx, logits)
    y = ctx.bb.emit_te(_weighted_values, probs, present_v, group=group, primfunc_name_hint="gqa_values")
    return [ctx.emit(_R.reshape(y, [b, s, heads * head])), present_k, present_v]


def _check_supported(node, xs) -> None:
    if xs[0] is None or xs[0].ty.ndim != 3 or dtype_of(xs[0]) != "float32":
        raise Unsupported("GroupQueryAttention: query must be a 3-D float32 tensor")
    if (xs[1] is None) != (xs[2] is None) or (xs[3] is None) != (xs[4] is None):
        raise Unsupported("GroupQueryAttention: key/value and past_key/past_value come in pairs")
    for t in xs[3:5]:
        if t is not None and (t.ty.ndim != 4 or dtype_of(t) != "float32"):
            raise Unsupported("GroupQueryAttention: only a float32 BNSH KV cache is supported (no quantized cache)")
    for i, name in _UNSUPPORTED_INPUTS.items():
        if has_input(node, i):
            raise Unsupported(f"GroupQueryAttention with the {name} input is not supported")
    for name, ok in (("causal", 1), ("smooth_softmax", 0), ("qk_output", 0), ("sliding_window_cache", 0)):
        if int(attr(node, name, ok)) != ok:
            raise Unsupported(f"GroupQueryAttention with {name}={attr(node, name)} is not supported")
    if len([o for o in node.outputs if o.name]) > 3 or (len(node.outputs) > 3 and node.outputs[3].name):
        raise Unsupported("GroupQueryAttention: the output_qk output is not supported")


def _heads(ctx, x, b, s, start: int, n: int, head: int):
    """Columns [start, start + n * head) of x [b, s, width] as [b, s, n, head]."""
    part = ctx.emit(_R.strided_slice(x, axes=[2], begin=[start], end=[start + n * head]))
    return ctx.emit(_R.reshape(part, [b, s, n, head]))


def _cache_layout(ctx, past, kv_heads: int, head: int):
    """past with [batch, kv_heads, past, head] as its type: symbolic dims (the builder names the
    head size `kv_cache_dim`) become the static sizes, and a different size fails the run
    instead of reading out of range."""
    b, _, p, _ = dims_of(past)
    if dims_of(past)[1] == kv_heads and dims_of(past)[3] == head:
        return past
    return ctx.bb.match_cast(past, relax.TensorType([b, kv_heads, p, head], "float32"))


def _past_lengths(ctx, sl, total, s):
    """past_b per batch entry (int64 [batch]) from seqlens_k (int64 [batch]): 0 on the first
    prompt (sequence_length == total_sequence_length), else seqlens_k[b] + 1 - sequence_length."""
    seq = ctx.emit(_R.reshape(_R.shape_to_tensor(relax.ShapeExpr([s])), []))
    first = ctx.emit(_R.equal(ctx.emit(_R.astype(_R.reshape(total, []), "int64")), seq))
    later = ctx.emit(_R.subtract(_R.add(sl, const(np.int64(1))), seq))
    return ctx.emit(_R.where(first, _R.zeros_like(later), later))


def _rotate_from(x, cos, sin, past_b, interleaved: bool):
    """RoPE on x [b, s, n, head] at positions past_b[b] + i."""
    return rotate(x, cos, sin, lambda bi, i: past_b[bi] + i.astype("int64"), interleaved)


def _present(ctx, past, new, past_b, present_len):
    """present [b, kv_heads, present_len, head]: past's first past_b[b] rows, then the new rows
    (new is [b, s, kv_heads, head]), zeros after."""
    if past is None:
        return ctx.bb.emit_te(lambda new, pb: _present_te(None, new, pb, present_len), new, past_b,
                              primfunc_name_hint="gqa_present")
    return ctx.bb.emit_te(lambda past, new, pb: _present_te(past, new, pb, present_len), past, new, past_b,
                          primfunc_name_hint="gqa_present")


def _present_te(past, new, past_b, present_len):
    b, s, kvh, head = new.shape
    zero = tirx.const(0.0, new.dtype)

    def f(bi, h, j, d):
        start = past_b[bi]
        j64 = j.astype("int64")
        rel = j64 - start
        fresh = tirx.if_then_else(tirx.all(rel >= 0, rel < _i64(s)), new[bi, tirx.min(tirx.max(rel, 0), _i64(s) - 1), h, d],
                                  zero)
        if past is None:
            return fresh
        p = past.shape[2]
        old = tirx.all(j64 < start, j < p)
        return tirx.if_then_else(old, past[bi, h, tirx.min(j, p - 1), d], fresh)

    return te.compute((b, kvh, present_len, head), f, name="present")


def _i64(e):
    if isinstance(e, int):
        return tirx.const(e, "int64")
    return e.astype("int64")


def _masked_scores(raw, past_b, seqlens, scale: float, group: int, window: int, softcap: float):
    """raw [b, kv_heads, group, s, kv] (q·k; query head n = kv head n // group, group member
    n % group) -> scale * raw as [b, n, s, kv], -inf where query i may not see row j:
    j > last = min(past_b + i, seqlens_k[b]) (a padding query of a right-padded first prompt sees
    the entry's tokens, as onnxruntime 1.31 computes), or j <= last - window."""
    b, kvh, _, s, kv = raw.shape

    def f(bi, h, i, j):
        x = raw[bi, h // group, h % group, i, j] * tirx.const(scale, raw.dtype)
        if softcap > 0:
            c = tirx.const(softcap, raw.dtype)
            x = tirx.tanh(x / c) * c
        last = tirx.min(past_b[bi] + i.astype("int64"), seqlens[bi])
        ok = j.astype("int64") <= last
        if window > 0:
            ok = tirx.all(ok, j.astype("int64") > last - window)
        return tirx.Select(ok, x, tirx.const(-np.inf, raw.dtype))

    return te.compute((b, kvh * group, s, kv), f, name="masked_scores")


def _weighted_values(p, v, group: int):
    """out[b, i, n, :] = sum_j p[b, n, i, j] * v[b, n // group, j, :]."""
    b, n, s, kv = p.shape
    head = v.shape[3]
    j = te.reduce_axis((0, kv), name="j")
    return te.compute((b, s, n, head), lambda bi, i, h, d: te.sum(p[bi, h, i, j] * v[bi, h // group, j, d], axis=j),
                      name="attend")
