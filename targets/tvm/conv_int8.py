"""int8 convolution for dot-product instructions: uint8 activations x int8 weights -> int32.

`conv2d_u8s8_nchwc(data, kernel, ...)`: data [N, IC/16, H, W, 16] uint8, kernel packed
[OC/16, IC/16, KH, KW, 4, 16, 4] int8 (`PACK_INDEX`: for 4 consecutive input channels and 16
output channels, the 16x4 tile `vpdpbusd` reads; its 4x4 quarters are what `sdot` reads)
-> [N, OC/16, OH, OW, 16] int32, the plain sum of x * w (zero padding; the zero-point correction
and requantization are the caller's epilogue). Dense 2-D, groups 1, channels multiples of 16
(`legalize` pads other convs' channels and packs per op). The block `edgec_conv_u8s8_nchwc` is
what the `conv2d-int8` schedule rule tensorizes (`VNNI_16x4`, or `SDOT_4x4` four times per 16).

`sdot` multiplies int8 by int8: for it (`legalize(..., dot="sdot")`) the input stage (padding)
also shifts the activations to int8, x ^ 0x80 = x - 128 (padding becomes -128, i.e. a shifted 0),
and the conv adds back 128 * sum(w) per output channel (a constant folded at compile time), so the
result is the same plain sum of x * w, exactly.
Depthwise: `dwconv2d_u8s8_nchwc` (no dot product; int32 vector lanes).
"""

from __future__ import annotations

from tvm import relax, te, tirx

CONV_U8_BLOCK = "edgec_conv_u8s8_nchwc"
PAD_U8_BLOCK = "edgec_pad_u8_nchwc"
BLOCK = 16  # output channels per vpdpbusd
GROUP = 4   # input channels per int32 lane


def pack_index(o, i, y, x, k, group: int = GROUP):
    """OIHW16o kernel index -> packed [OC/16, IC/16, KH, KW, 16/g, 16, g] index (g = `group` input
    channels per int32 lane: 4 for vpdpbusd/sdot, 2 for vpmaddwd)."""
    return (o, i // BLOCK, y, x, (i % BLOCK) // group, k, i % group)


def pack_index_oc_inner(o, i, y, x, k):
    """OIHW16o kernel index -> packed [OC/16, IC/16, KH, KW, 4, 4, 16] (no dot product: per input
    channel one contiguous vector of 16 output channels' weights)."""
    return (o, i // BLOCK, y, x, (i % BLOCK) // GROUP, i % GROUP, k)


def oc_inner(dot: str | None) -> bool:
    """Whether the kernel is packed output-channel-innermost (`pack_index_oc_inner`): for targets
    without a dot-product instruction (widening multiply-accumulate on the 16 output channels)."""
    return dot not in ("vnni", "sdot", "pmaddwd")


def shifts_input(dot: str | None) -> bool:
    """Whether the conv reads its uint8 input as int8 x - 128: for `sdot` (int8 x int8 only) and for
    the widening multiply path (int8 x int8 products fit 16 bits: smull)."""
    return dot not in ("vnni", "pmaddwd")


def widens_to_int16(dot: str | None) -> bool:
    """Whether input and kernel are int16 (`vpmaddwd` multiplies int16 pairs; 2 input channels per
    lane): uint8 and int8 values as they are, exact."""
    return dot == "pmaddwd"


def _ints(xs) -> list[int]:
    return [int(v) for v in xs]


def conv2d_u8s8_nchwc(data, kernel, strides, padding, dilation, shift: bool = False, widen: bool = False):
    """The int32 sum over the taps of data * kernel; `shift`: of (data - 128) * kernel (int8 data for
    `sdot`, always materialized by the input stage; padding reads as -128); `widen`: the input stage
    makes the data int16 (for the int16 kernel of `vpmaddwd`)."""
    n, icb, h, w, bi = _ints(data.shape)
    ocb, icb2, kh, kw, g4, t0, t1 = _ints(kernel.shape)
    inner = t1 == BLOCK and t0 != BLOCK  # [..., 4, 16] tiles: pack_index_oc_inner
    bo, g = (t1, t0) if inner else (t0, t1)
    assert bi == BLOCK and bo == BLOCK and g in (2, 4) and g4 == BLOCK // g and icb2 == icb
    sh, sw = strides
    dh, dw = dilation
    pt, pl, pb, pr = padding
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    pad = _pad_u8(data, pt, pl, pb, pr, PAD_U8_BLOCK, shift, widen)
    rcb = te.reduce_axis((0, icb), "rcb")
    ry, rx = te.reduce_axis((0, kh), "ry"), te.reduce_axis((0, kw), "rx")
    rq, rg = te.reduce_axis((0, g4), "rq"), te.reduce_axis((0, g), "rg")
    return te.compute(
        (n, ocb, oh, ow, bo),
        lambda b, o, y, x, k: te.sum(
            pad[b, rcb, y * sh + ry * dh, x * sw + rx * dw, rq * g + rg].astype("int32")
            * (kernel[o, rcb, ry, rx, rq, rg, k] if inner else kernel[o, rcb, ry, rx, rq, k, rg]).astype("int32"),
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


def _pad_u8(data, pt, pl, pb, pr, name, shift: bool = False, widen: bool = False):
    """Zero-padded uint8 input; `shift`: as int8 x - 128 (padding -128), `widen`: as int16; either
    way a stage even without padding."""
    n, cb, h, w, b = _ints(data.shape)
    if not (pt or pl or pb or pr or shift or widen):
        return data

    def value(v):
        if widen:
            return v.astype("int16")
        return (v.astype("int32") - 128).astype("int8") if shift else v

    def f(i, j, y, x, k):
        if not (pt or pl or pb or pr):
            return value(data[i, j, y, x, k])
        inside = tirx.all(y >= pt, y < h + pt, x >= pl, x < w + pl)
        return tirx.if_then_else(inside, value(data[i, j, y - pt, x - pl, k]),
                                 tirx.const(-128 if shift else 0, "int16" if widen else "int8" if shift else data.dtype))

    return te.compute((n, cb, h + pt + pb, w + pl + pr, b), f, name=name)


def _pack_kernel(bb, w, blocked: bool, inner: bool = False, widen: bool = False):
    """The kernel (OIHW16o, or OIHW with channels padded to 16) as [OC/16, IC/16, KH, KW, 4, 16, 4]
    (`inner`: [..., 4, 4, 16], pack_index_oc_inner; `widen`: int16 [..., 8, 16, 2] for vpmaddwd)."""
    # index maps take exactly the source dims (TVM counts the parameters: no defaults)
    def pack(o, i, y, x, k):
        return pack_index(o, i, y, x, k, 2) if widen else \
            pack_index_oc_inner(o, i, y, x, k) if inner else pack_index(o, i, y, x, k)
    if blocked:
        index = pack
    else:
        def index(o, i, y, x):
            return pack(o // BLOCK, i, y, x, o % BLOCK)
    oc, ic = int(w.ty.shape[0]) * (BLOCK if blocked else 1), int(w.ty.shape[1])
    padded = oc % BLOCK or ic % BLOCK
    packed = relax.op.layout_transform(w, index_map=index, pad_value=0 if padded else None)
    return bb.normalize(relax.op.astype(packed, "int16") if widen else packed)


def legalize(bb, call, dot: str | None = "vnni"):
    """Legalize a uint8 x int8 -> int32 conv2d (dense, or depthwise: `_legalize_depthwise`) to the
    dot-product kernel of the target's instruction family `dot` ("vnni", or "sdot": shifted input,
    see the module docstring): in NCHW16c / OIHW16o directly; in NCHW / OIHW between a pack of the
    input (channels padded to 16 with zeros) and an unpack of the output. None for any other conv2d."""
    a = call.attrs
    x, w = call.args
    if (str(x.ty.dtype), str(w.ty.dtype), str(call.ty.dtype)) != ("uint8", "int8", "int32"):
        return None
    if int(a.groups) != 1:
        return _legalize_depthwise(bb, call)
    layouts = (str(a.data_layout), str(a.kernel_layout), str(a.out_layout))
    shift, inner, widen = shifts_input(dot), oc_inner(dot), widens_to_int16(dot)
    kw = {"strides": _ints(a.strides), "padding": _ints(a.padding), "dilation": _ints(a.dilation),
          "shift": shift, "widen": widen, "primfunc_name_hint": "conv2d_u8s8"}
    if layouts == (f"NCHW{BLOCK}c", f"OIHW{BLOCK}o", f"NCHW{BLOCK}c"):
        packed = bb.emit(_pack_kernel(bb, w, True, inner, widen))
        return _unshift(bb, bb.emit_te(conv2d_u8s8_nchwc, x, packed, **kw), packed) if shift else \
            bb.call_te(conv2d_u8s8_nchwc, x, packed, **kw)
    if layouts != ("NCHW", "OIHW", "NCHW"):
        return None
    ic, oc = int(x.ty.shape[1]), int(w.ty.shape[0])
    xb = bb.normalize(relax.op.layout_transform(
        x, index_map=lambda n, c, y, x_: (n, c // BLOCK, y, x_, c % BLOCK), pad_value=0 if ic % BLOCK else None))
    packed = bb.emit(_pack_kernel(bb, w, False, inner, widen))
    yb = bb.emit_te(conv2d_u8s8_nchwc, xb, packed, **kw)
    return _unpack(bb, _unshift(bb, yb, packed) if shift else yb, oc)


def _unshift(bb, yb, packed):
    """yb + 128 * (sum of the packed kernel per output channel), [1, OC/16, 1, 1, 16] int32: undoes
    the input shift of the `sdot` kernel (the sum folds to a constant with the kernel)."""
    inner = int(packed.ty.shape[-1]) == BLOCK
    wsum = relax.op.sum(relax.op.astype(packed, "int32"), axis=[1, 2, 3, 4, 5 if inner else 6])  # [OC/16, 16]
    corr = relax.op.multiply(wsum, relax.const(128, "int32"))
    ocb = int(packed.ty.shape[0])
    return bb.normalize(relax.op.add(yb, relax.op.reshape(corr, [1, ocb, 1, 1, BLOCK])))


def candidate_blocks(x_ty, blocks) -> tuple[int, ...]:
    """The channel blocks a conv2d with input type `x_ty` may take: the float ones (sized by the
    target's vector lanes), and for uint8 (dot-product) convs also the kernel's 16, whatever the
    lanes: on AArch64 (4 int32 lanes) the int8 convs then stay in NCHW16c from one to the next
    instead of packing and unpacking around each."""
    return (*blocks, BLOCK) if str(x_ty.dtype) == "uint8" and BLOCK not in blocks else tuple(blocks)


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
