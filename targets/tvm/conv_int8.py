"""int8 convolution for dot-product instructions: uint8 activations x int8 weights -> int32.

`conv2d_u8s8_nchwc(data, kernel, ...)`: data [N, IC/16, H, W, 16] uint8, kernel packed
[OC/16, IC/16, KH, KW, 4, 16, 4] int8 (`PACK_INDEX`: for 4 consecutive input channels and 16
output channels, the 16x4 tile `vpdpbusd` reads) -> [N, OC/16, OH, OW, 16] int32, the plain sum
of x * w (zero padding; the zero-point correction and requantization are the caller's epilogue).
Dense 2-D, groups 1, channels multiples of 16 (`legalize` pads other convs' channels and packs
per op). A conv with few input channels (an image stem: 3) takes input blocks of 4 instead
(data [N, 1, H, W, 4], kernel [OC/16, 1, KH, KW, 1, 16, 4]: one vpdpbusd per tap, not four of
which three multiply zeros), and writes NCHW16c directly when the graph asks for it
(`stem_layouts`: input NCHW, output NCHW16c). The block `edgec_conv_u8s8_nchwc` is what the `conv2d-int8` schedule rule tensorizes
with `VNNI_16x4`. Depthwise: `dwconv2d_u8s8_nchwc` (no dot product; int32 vector lanes).
"""

from __future__ import annotations

from tvm import relax, te, tirx

CONV_U8_BLOCK = "edgec_conv_u8s8_nchwc"
PAD_U8_BLOCK = "edgec_pad_u8_nchwc"
BLOCK = 16  # output channels per vpdpbusd
GROUP = 4   # input channels per int32 lane


def pack_index(o, i, y, x, k, ib: int = BLOCK):
    """OIHW16o kernel index -> packed [OC/16, IC/ib, KH, KW, ib/4, 16, 4] index (ib: input
    channels per block, 16 or 4)."""
    return (o, i // ib, y, x, (i % ib) // GROUP, k, i % GROUP)


def input_block(ic: int) -> int:
    """Input channels per block of a uint8 conv with `ic` input channels: 4 for few (a stem's
    3 padded to 4 rather than 16), else 16."""
    return GROUP if ic <= GROUP else BLOCK


def _ints(xs) -> list[int]:
    return [int(v) for v in xs]


def conv2d_u8s8_nchwc(data, kernel, strides, padding, dilation):
    n, icb, h, w, bi = _ints(data.shape)
    ocb, icb2, kh, kw, g4, bo, g = _ints(kernel.shape)
    assert bi in (GROUP, BLOCK) and bo == BLOCK and g == GROUP and g4 == bi // GROUP and icb2 == icb
    sh, sw = strides
    dh, dw = dilation
    pt, pl, pb, pr = padding
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    pad = _pad_u8(data, pt, pl, pb, pr, PAD_U8_BLOCK)
    rcb = te.reduce_axis((0, icb), "rcb")
    ry, rx = te.reduce_axis((0, kh), "ry"), te.reduce_axis((0, kw), "rx")
    rq, rg = te.reduce_axis((0, g4), "rq"), te.reduce_axis((0, g), "rg")
    return te.compute(
        (n, ocb, oh, ow, bo),
        lambda b, o, y, x, k: te.sum(
            pad[b, rcb, y * sh + ry * dh, x * sw + rx * dw, rq * g + rg].astype("int32")
            * kernel[o, rcb, ry, rx, rq, k, rg].astype("int32"),
            axis=[rcb, ry, rx, rq, rg]),
        name=CONV_U8_BLOCK)


def dwconv2d_u8s8_nchwc(data, kernel, strides, padding, dilation):
    """Depthwise: data [N, C/b, H, W, b] uint8, kernel [C/b, 1, KH, KW, b] int8 -> int32 [N, C/b,
    OH, OW, b] (zero padding). The blocks are named as the float kernel's (layout.py), so the
    `depthwise-nchwc` rule schedules it: b int32 lanes of widening multiply-adds per pixel."""
    from edgec.targets.tvm.layout import DWCONV_BLOCK, PAD_BLOCK  # layout.py imports this module

    n, cb, h, w, b = _ints(data.shape)
    _, _, kh, kw, _ = _ints(kernel.shape)
    sh, sw = strides
    dh, dw = dilation
    pt, pl, pb, pr = padding
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    pad = _pad_u8(data, pt, pl, pb, pr, PAD_BLOCK)
    ry, rx = te.reduce_axis((0, kh), "ry"), te.reduce_axis((0, kw), "rx")
    return te.compute(
        (n, cb, oh, ow, b),
        lambda i, o, y, x, k: te.sum(pad[i, o, y * sh + ry * dh, x * sw + rx * dw, k].astype("int32")
                                     * kernel[o, 0, ry, rx, k].astype("int32"), axis=[ry, rx]),
        name=DWCONV_BLOCK)


def _pad_u8(data, pt, pl, pb, pr, name):
    n, cb, h, w, b = _ints(data.shape)
    if not (pt or pl or pb or pr):
        return data

    def f(i, j, y, x, k):
        inside = tirx.all(y >= pt, y < h + pt, x >= pl, x < w + pl)
        return tirx.if_then_else(inside, data[i, j, y - pt, x - pl, k], tirx.const(0, data.dtype))

    return te.compute((n, cb, h + pt + pb, w + pl + pr, b), f, name=name)


def _pack_kernel(bb, w, blocked: bool, ib: int = BLOCK):
    """The kernel (OIHW16o, or OIHW with channels padded to 16 / input channels to `ib`) as
    [OC/16, IC/ib, KH, KW, ib/4, 16, 4]."""
    if blocked:
        def index(o, i, y, x, k):  # layout_transform counts the index map's parameters
            return pack_index(o, i, y, x, k)
    else:
        def index(o, i, y, x):
            return pack_index(o // BLOCK, i, y, x, o % BLOCK, ib)
    oc, ic = int(w.ty.shape[0]) * (BLOCK if blocked else 1), int(w.ty.shape[1])
    padded = oc % BLOCK or ic % ib
    return bb.normalize(relax.op.layout_transform(w, index_map=index, pad_value=0 if padded else None))


def legalize(bb, call):
    """Legalize a uint8 x int8 -> int32 conv2d (dense, or depthwise: `_legalize_depthwise`) to the VNNI kernel:
    in NCHW16c / OIHW16o directly; in NCHW / OIHW between a pack of the input (channels padded
    to 16 with zeros) and an unpack of the output. None for any other conv2d."""
    a = call.attrs
    x, w = call.args
    if (str(x.ty.dtype), str(w.ty.dtype), str(call.ty.dtype)) != ("uint8", "int8", "int32"):
        return None
    if int(a.groups) != 1:
        return _legalize_depthwise(bb, call)
    layouts = (str(a.data_layout), str(a.kernel_layout), str(a.out_layout))
    kw = {"strides": _ints(a.strides), "padding": _ints(a.padding), "dilation": _ints(a.dilation),
          "primfunc_name_hint": "conv2d_u8s8"}
    if layouts == (f"NCHW{BLOCK}c", f"OIHW{BLOCK}o", f"NCHW{BLOCK}c"):
        return bb.call_te(conv2d_u8s8_nchwc, x, _pack_kernel(bb, w, True), **kw)
    if layouts not in (("NCHW", "OIHW", "NCHW"), ("NCHW", "OIHW", f"NCHW{BLOCK}c")):
        return None
    ic, oc = int(x.ty.shape[1]), int(w.ty.shape[0])
    ib = input_block(ic)
    xb = bb.normalize(relax.op.layout_transform(
        x, index_map=lambda n, c, y, x_: (n, c // ib, y, x_, c % ib), pad_value=0 if ic % ib else None))
    if layouts[2] != "NCHW":  # the graph carries NCHW16c on from here (`stem_layouts`)
        return bb.call_te(conv2d_u8s8_nchwc, xb, _pack_kernel(bb, w, False, ib), **kw)
    return _unpack(bb, bb.emit_te(conv2d_u8s8_nchwc, xb, _pack_kernel(bb, w, False, ib), **kw), oc)


def stem_layouts(call, block: int) -> list[str] | None:
    """ConvertLayout's layouts for a dense uint8 conv whose input channels the block does not
    divide but whose output channels it does (an image stem): NCHW in, NCHW{block}c out, so the
    kernel writes the blocked layout the next convs read instead of NCHW that is packed again."""
    x, w = call.args[0].ty, call.args[1].ty
    if block != BLOCK or str(x.dtype) != "uint8" or int(call.attrs.groups) != 1 or x.ndim != 4 or w.ndim != 4:
        return None
    ic, oc = int(x.shape[1]), int(w.shape[0])
    return ["NCHW", "OIHW", f"NCHW{block}c"] if ic % block and oc % block == 0 else None


def block_ok(x_ty, block: int) -> bool:
    """Whether a conv2d with input type `x_ty` may take the blocked layout of `block` channels:
    uint8 (dot-product) convs only that of their kernel."""
    return str(x_ty.dtype) != "uint8" or block == BLOCK


def _legalize_depthwise(bb, call):
    """Depthwise uint8 x int8 (groups = channels, one filter each): blocked directly; NCHW between
    a pack (channels padded to 16) and an unpack."""
    a = call.attrs
    x, w = call.args
    xs, ws = _ints(x.ty.shape), _ints(w.ty.shape)
    c = xs[1] * (xs[4] if len(xs) == 5 else 1)
    if int(a.groups) != c or ws[1] != 1 or ws[0] * (ws[4] if len(ws) == 5 else 1) != c:
        return None
    kw = {"strides": _ints(a.strides), "padding": _ints(a.padding), "dilation": _ints(a.dilation),
          "primfunc_name_hint": "dwconv2d_u8s8"}
    layouts = (str(a.data_layout), str(a.kernel_layout), str(a.out_layout))
    b = int(x.ty.shape[-1]) if len(x.ty.shape) == 5 else BLOCK
    if layouts == (f"NCHW{b}c", f"OIHW{b}o", f"NCHW{b}c"):
        return bb.call_te(dwconv2d_u8s8_nchwc, x, w, **kw)
    if layouts != ("NCHW", "OIHW", "NCHW"):
        return None
    padv = 0 if c % BLOCK else None
    xb = bb.normalize(relax.op.layout_transform(
        x, index_map=lambda n, i, y, x_: (n, i // BLOCK, y, x_, i % BLOCK), pad_value=padv))
    wb = bb.normalize(relax.op.layout_transform(
        w, index_map=lambda o, i, y, x_: (o // BLOCK, i, y, x_, o % BLOCK), pad_value=padv))
    return _unpack(bb, bb.emit_te(dwconv2d_u8s8_nchwc, xb, wb, **kw), c)


def _unpack(bb, yb, oc: int):
    n, _, oh, ow, b = _ints(yb.ty.shape)
    return bb.call_te(lambda t: te.compute((n, oc, oh, ow), lambda i, c, y, x_: t[i, c // b, y, x_, c % b],
                                           name="edgec_unpack_u8s8"), yb, primfunc_name_hint="unpack_nchwc")
