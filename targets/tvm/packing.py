"""Kernels whose operands are repacked at compile time (legalizations used by `layout.legalize_map`).

* `relax.matmul` with a constant 2-D B [K, N]: B is packed to [ceil(N/jt), K, jt] (zero-padded
  columns; a `layout_transform` on a constant, folded at compile time), so the k loop of a
  register tile streams one contiguous panel instead of K rows N floats apart (N = 1024 put every
  row of a panel in the same L1 sets). The product is computed over the padded width and sliced.
  Block `edgec_matmul_packed` is how the matmul rule recognizes it.
* depthwise `relax.nn.conv2d` in NCHW (channel counts no vector block divides): output rows are
  computed over a width padded to the pixel tile (`edgec_dwconv_nchw`), so every tile is whole
  vectors along the row, then sliced; the zero-padded input plane is a separate block
  (`edgec_pad_nchw_dw`) the schedule materializes per channel, with columns split by phase
  (x % stride) for strided convs so their loads stay contiguous.
"""

from __future__ import annotations

import tvm
from tvm import relax, te, tirx

MATMUL_PACKED = "edgec_matmul_packed"
MATMUL_UNPAD = "edgec_matmul_unpad"
DWCONV_NCHW = "edgec_dwconv_nchw"
DWCONV_NCHW_PAD = "edgec_pad_nchw_dw"
DWCONV_NCHW_UNPAD = "edgec_dwconv_nchw_unpad"


def is_weight(x, weights: frozenset[str]) -> bool:
    """A compile-time constant, or a weight parameter (a non-dataflow Var named in `weights`)."""
    return isinstance(x, tvm.ir.expr.Constant) or (
        type(x) is relax.Var and x.name in weights)


def _ints(xs) -> list[int]:
    return [int(x) for x in xs]


def _ceil(a: int, b: int) -> int:
    return -(-a // b) * b


def pick_panel(n: int, lanes: int) -> int:
    """Panel width jt (a multiple of the vector lanes, up to 4 vectors) with the least padded work;
    narrower panels need more broadcasts per FMA, hence the penalties."""
    best, best_cost = lanes, None
    for nvec, pen in ((4, 1.0), (3, 1.02), (2, 1.08), (1, 1.3)):
        jt = lanes * nvec
        cost = _ceil(n, jt) * pen
        if best_cost is None or cost < best_cost:
            best, best_cost = jt, cost
    return best


def matmul_packed(a, bp, n: int):
    """a [..., M, K] x packed bp [N/jt, K, jt] -> [..., M, n]; M and the batch dims may be symbolic."""
    *batch, m, k = a.shape
    k = int(k)
    nj, kb, jt = _ints(bp.shape)
    assert kb == k
    rk = te.reduce_axis((0, k), "k")
    nb = len(batch)
    acc = te.compute(
        (*batch, m, nj * jt),
        lambda *idx: te.sum(a[(*idx[:nb], idx[nb], rk)] * bp[idx[nb + 1] // jt, rk, idx[nb + 1] % jt], axis=rk),
        name=MATMUL_PACKED)
    if nj * jt == n:
        return acc
    return te.compute((*batch, m, n), lambda *idx: acc(*idx), name=MATMUL_UNPAD)


def legalize_matmul(bb: relax.BlockBuilder, call: relax.Call, lanes: int, weights: frozenset[str] = frozenset()):
    """Packed-B matmul for a constant 2-D fp32 B, or a weight parameter named in `weights` (whose
    packing targets.tvm.weights lifts out and computes at compile time); None when it does not apply."""
    a, w = call.args
    if not (lanes and is_weight(w, weights) and w.ty.ndim == 2 and a.ty.ndim >= 2):
        return None
    if str(a.ty.dtype) != "float32" or str(w.ty.dtype) != "float32":
        return None
    if not all(isinstance(d, tirx.IntImm) for d in [a.ty.shape[-1], *w.ty.shape]):
        return None  # K and N static; M and batch dims may be symbolic (the matmul rule tiles rows with a tail)
    k, n = _ints(w.ty.shape)
    jt = pick_panel(n, lanes)
    packed = relax.op.layout_transform(w, index_map=lambda kk, j: (j // jt, kk, j % jt),
                                       pad_value=0.0 if n % jt else None)
    packed = bb.normalize(packed)
    return bb.call_te(matmul_packed, a, packed, n=n, primfunc_name_hint="matmul_packed")


def legalize_take_columns(bb: relax.BlockBuilder, call: relax.Call, lanes: int, weights: frozenset[str] = frozenset()):
    """take(w, idx, axis=1) of a 2-D fp32 weight parameter w [K, N] named in `weights` (a token
    embedding stored transposed, the LM head's B: passes/layout/store_transposed_weights.py),
    reading w in the packed layout `legalize_matmul` gives it: the same layout_transform, so the
    weights file stores one copy (lift_weight_transforms keys the lifted copy by weight and
    transform) and a token's column is read from the head's panels. The indices are in range
    (the Gather lowering wraps negatives and guards the rest). None when it does not apply."""
    w, idx = call.args
    if not (lanes and type(w) is relax.Var and is_weight(w, weights) and w.ty.ndim == 2
            and int(call.attrs.axis) % 2 == 1 and str(w.ty.dtype) == "float32"):
        return None
    if not all(isinstance(d, tirx.IntImm) for d in w.ty.shape) or not str(idx.ty.dtype).startswith("int"):
        return None
    k, n = _ints(w.ty.shape)
    jt = pick_panel(n, lanes)
    packed = bb.normalize(relax.op.layout_transform(w, index_map=lambda kk, j: (j // jt, kk, j % jt),
                                                    pad_value=0.0 if n % jt else None))

    def take_columns(bp, ids):
        def value(kk, *i):
            t = ids[i].astype("int64")
            return bp[tirx.floordiv(t, jt), kk, tirx.floormod(t, jt)]
        return te.compute((k, *ids.shape), value, name="edgec_take_columns")

    return bb.call_te(take_columns, packed, idx, primfunc_name_hint="take_columns")


def pick_row_tile(ow: int, lanes: int) -> int:
    """Pixels per depthwise tile: whole vectors, least padded width (narrow vectors cost more)."""
    best, best_cost = lanes, None
    for w, pen in ((2 * lanes, 1.0), (lanes, 1.0), (lanes // 2, 1.25)):
        if w < 4:
            continue
        cost = _ceil(ow, w) * pen
        if best_cost is None or cost < best_cost:
            best, best_cost = w, cost
    return best


def dwconv2d_nchw(data, kernel, strides, padding, dilation, tile: int):
    """Depthwise NCHW conv: data [N, C, H, W], kernel [C, 1, KH, KW] -> [N, C, OH, OW]."""
    n, c, h, w = _ints(data.shape)
    _, _, kh, kw = _ints(kernel.shape)
    sh, sw = strides
    dh, dw = dilation
    pt, pl, pb, pr = padding
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    owp = _ceil(ow, tile)
    hp, wp = h + pt + pb, max(w + pl + pr, (owp - 1) * sw + dw * (kw - 1) + 1)

    wp = _ceil(wp, sw)

    def value(i, j, y, x):
        inside = tirx.all(y >= pt, y < h + pt, x >= pl, x < w + pl)
        return tirx.if_then_else(inside, data[i, j, y - pt, x - pl], tirx.const(0, data.dtype))

    ry, rx = te.reduce_axis((0, kh), "ry"), te.reduce_axis((0, kw), "rx")
    if sw == 1:
        padded = te.compute((n, c, hp, wp), value, name=DWCONV_NCHW_PAD)
        read = lambda i, j, y, x: padded[i, j, y, x]  # noqa: E731
    else:  # columns split by phase (x % sw): a strided row becomes contiguous loads
        padded = te.compute((n, c, hp, sw, wp // sw), lambda i, j, y, p, x: value(i, j, y, x * sw + p),
                            name=DWCONV_NCHW_PAD)
        read = lambda i, j, y, x: padded[i, j, y, x % sw, x // sw]  # noqa: E731
    acc = te.compute(
        (n, c, oh, owp),
        lambda i, j, y, x: te.sum(read(i, j, y * sh + ry * dh, x * sw + rx * dw) * kernel[j, 0, ry, rx],
                                  axis=[ry, rx]),
        name=DWCONV_NCHW)
    if owp == ow:
        return acc
    return te.compute((n, c, oh, ow), lambda i, j, y, x: acc[i, j, y, x], name=DWCONV_NCHW_UNPAD)


def legalize_dwconv_nchw(bb: relax.BlockBuilder, call: relax.Call, lanes: int):
    """Depthwise NCHW conv with a constant kernel; None when it does not apply."""
    a = call.attrs
    x, w = call.args
    if not lanes or (str(a.data_layout), str(a.kernel_layout), str(a.out_layout)) != ("NCHW", "OIHW", "NCHW"):
        return None
    if x.ty.ndim != 4 or w.ty.ndim != 4 or str(x.ty.dtype) != "float32":
        return None
    if not all(isinstance(d, tvm.tirx.IntImm) for d in [*x.ty.shape.values, *call.ty.shape.values]):
        return None  # symbolic dims: TVM's generic conv2d
    c = int(x.ty.shape[1])
    if not (int(a.groups) == c == int(w.ty.shape[0]) and int(w.ty.shape[1]) == 1):
        return None
    ow = int(call.ty.shape[3])
    return bb.call_te(dwconv2d_nchw, x, w, strides=_ints(a.strides), padding=_ints(a.padding),
                      dilation=_ints(a.dilation), tile=pick_row_tile(ow, lanes),
                      primfunc_name_hint="dwconv2d_nchw")
