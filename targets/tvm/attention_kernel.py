"""One kernel for scaled dot-product attention over a KV cache whose length is symbolic:

    y[b, h, i, :] = softmax_j(scale * q[b, h, i, :] . k[b, h, j, :] + mask[b, h, i, j]) @ v[b, h, :, :]

Why: lowered op by op, attention over a cache [batch, heads, past, head_dim] transposed the whole
key cache per layer and step (a generic strided copy: 5.5 of 22 ms of a GPT-2 124M int4 decode
step at past 150) and ran five more kernels per layer (q.k, scale, mask, softmax, p.v), each
waking the thread pool. Here k and v are read row by row in their cache layout, once per query
row, and the scores never leave the task that computes them.

Blocks (the schedule rule `attention` finds them by name; one task per (b, h, i) row):
`edgec_attn_part` (per key row j, LANES partial sums of q.k: the head_dim reduction vectorized
across lanes of d, as k's row is contiguous), `edgec_attn_s` (the lane sum), `edgec_attn_logits`
(scaled, plus the mask; inlined), `edgec_attn_max`, `edgec_attn_exp`, `edgec_attn_sum` (the softmax's pieces),
`edgec_attn_pv` (the exp-weighted sum of v rows, a vector of head_dim), `edgec_attn` (divided by
the sum). The softmax is the plain one (max-subtracted), like Softmax over the scores: a row whose
mask is -inf everywhere gives NaN, as the unfused ops do.
"""

from __future__ import annotations

from tvm import te, tirx

ATTN_PART = "edgec_attn_part"
ATTN_S = "edgec_attn_s"
ATTN_LOGITS = "edgec_attn_logits"
ATTN_MAX = "edgec_attn_max"
ATTN_EXP = "edgec_attn_exp"
ATTN_SUM = "edgec_attn_sum"
ATTN_PV = "edgec_attn_pv"
ATTN = "edgec_attn"
LANES = 16  # head_dim values per vector step of q.k (64 bytes of a key row)


def lanes_for(head_dim: int) -> int | None:
    """The lane count for q.k over `head_dim` (a multiple of it), None when none fits."""
    return next((w for w in (LANES, 8, 4) if head_dim % w == 0), None)


def attention(q, k, v, mask, scale: float, mask_index, length=None, group: int = 1):
    """te kernel: q [B, H, S, D], k and v [B, H, T, D] (T = past + S, symbolic allowed), `mask`
    None or a float tensor read at `mask_index(b, h, i, j)` (broadcast by the caller's indexing)
    -> y [B, H, S, D] float32. `length`: k and v are cache buffers [B, H, MAX, D] of which the
    first `length` rows are read (T = length; --kv-cache, targets/tvm/ops/kv_cache.py). `group` G:
    k and v have H / G heads, query head h reads kv head h // G (grouped-query attention)."""
    b_, h_, s_, d_ = q.shape
    t_ = k.shape[2] if length is None else length

    def kvh(h):  # the kv head query head h reads
        return h // group if group > 1 else h

    lanes = lanes_for(int(d_))
    rd = te.reduce_axis((0, int(d_) // lanes), "rd")
    part = te.compute((b_, h_, s_, t_, lanes),
                      lambda b, h, i, j, ln: te.sum(q[b, h, i, rd * lanes + ln] * k[b, kvh(h), j, rd * lanes + ln],
                                                     axis=rd),
                      name=ATTN_PART)
    rl = te.reduce_axis((0, lanes), "rl")
    sc = tirx.const(scale, "float32")

    s = te.compute((b_, h_, s_, t_), lambda b, h, i, j: te.sum(part[b, h, i, j, rl], axis=rl), name=ATTN_S)
    if mask is not None:
        s2 = te.compute((b_, h_, s_, t_), lambda b, h, i, j: s[b, h, i, j] * sc + mask[mask_index(b, h, i, j)],
                        name=ATTN_LOGITS)
    else:
        s2 = te.compute((b_, h_, s_, t_), lambda b, h, i, j: s[b, h, i, j] * sc, name=ATTN_LOGITS)
    rj = te.reduce_axis((0, t_), "rj")
    m = te.compute((b_, h_, s_), lambda b, h, i: te.max(s2[b, h, i, rj], axis=rj), name=ATTN_MAX)
    e = te.compute((b_, h_, s_, t_), lambda b, h, i, j: te.exp(s2[b, h, i, j] - m[b, h, i]), name=ATTN_EXP)
    rz = te.reduce_axis((0, t_), "rz")
    z = te.compute((b_, h_, s_), lambda b, h, i: te.sum(e[b, h, i, rz], axis=rz), name=ATTN_SUM)
    rv = te.reduce_axis((0, t_), "rv")
    o = te.compute((b_, h_, s_, d_), lambda b, h, i, d: te.sum(e[b, h, i, rv] * v[b, kvh(h), rv, d], axis=rv), name=ATTN_PV)
    return te.compute((b_, h_, s_, d_), lambda b, h, i, d: o[b, h, i, d] / z[b, h, i], name=ATTN)
