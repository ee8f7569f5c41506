"""Blocked activation layout (NCHW{c}c) carried through the Relax graph, and its conv kernels.

`convert_to_blocked(mod, block)` rewrites every dense or depthwise 2-D convolution whose channels
divide by `block` (`_conv_ok`; grouped and channel-multiplier convs keep NCHW) to
`data_layout=NCHW{block}c, kernel_layout=OIHW{block}o` with Relax's ConvertLayout, which also
moves elementwise ops, pooling and reductions between convolutions into the blocked layout, so the
layout is transformed only where the graph enters or leaves a run of blocked ops. Only ops whose
blocked form is known to be right stay blocked; the others end the blocked region
(`layout_guard`). The weight `layout_transform`s act on constants and are folded at compile time.

`legalize_map()` gives the TE computes for the blocked convolutions (TOPI has none for
OIHW{o}o on CPU). Their block names (`edgec_conv_nchwc`, `edgec_dwconv_nchwc`) are how the
schedule rules recognize them after fusion.
"""

from __future__ import annotations

import tvm
from tvm import relax, te, tirx

from edgec.targets.tvm import conv_int8, packing
from edgec.targets.tvm.layout_guard import guard_blocked, strip_barriers
from edgec.targets.tvm.legalize_math import math_legalizations

CONV_BLOCK = "edgec_conv_nchwc"
DWCONV_BLOCK = "edgec_dwconv_nchwc"
PAD_BLOCK = "edgec_pad_nchwc"
CONV_NCHW_BLOCK = "edgec_conv_nchw_acc"
UNPACK_BLOCK = "edgec_conv_nchw_unpack"
CROP_BLOCK = "edgec_conv_nchwc_crop"


def padded_blocks(ocb: int) -> int:
    """Output-channel blocks a dense blocked conv computes. A count that neither 2, 3 nor 5
    divides (7, 11, 13, 17 ...: what channel pruning leaves, 176 = 11 x 16 channels) would get a
    1-block register tile, one broadcast load per FMA; one more block of zero weights makes it
    even, and the extra block is cropped away (`CROP_BLOCK`) before the epilogue. Only constant
    weights are padded (folded at compile time)."""
    return ocb + 1 if ocb >= 7 and all(ocb % f for f in (2, 3, 5)) else ocb


def _ints(xs) -> list[int]:
    return [int(x) for x in xs]


def _pad(data, ph0, pw0, ph1, pw1):
    n, cb, h, w, c = data.shape
    if not (ph0 or pw0 or ph1 or pw1):
        return data

    def f(i, j, y, x, k):
        inside = tirx.all(y >= ph0, y < h + ph0, x >= pw0, x < w + pw0)
        return tirx.if_then_else(inside, data[i, j, y - ph0, x - pw0, k], tirx.const(0, data.dtype))

    return te.compute((n, cb, h + ph0 + ph1, w + pw0 + pw1, c), f, name=PAD_BLOCK)


def conv2d_nchwc(data, kernel, strides, padding, dilation, groups, out_blocks=None):
    """data [N, IC/b, H, W, b], kernel [OC/b, IC/groups, KH, KW, b] -> [N, OC/b, OH, OW, b].

    groups == 1 (dense) or groups == IC == OC (depthwise). `out_blocks` (dense only): the kernel
    has zero blocks past this many (`padded_blocks`); they are computed and cropped away."""
    n, icb, h, w, bi = _ints(data.shape)
    ocb, icg, kh, kw, bo = _ints(kernel.shape)
    sh, sw = strides
    dh, dw = dilation
    pt, pl, pb, pr = padding
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    pad = _pad(data, pt, pl, pb, pr)
    ry, rx = te.reduce_axis((0, kh), "ry"), te.reduce_axis((0, kw), "rx")
    if groups == 1:
        assert icg == icb * bi
        rcb, rc = te.reduce_axis((0, icb), "rcb"), te.reduce_axis((0, bi), "rc")
        conv = te.compute(
            (n, ocb, oh, ow, bo),
            lambda b, o, y, x, k: te.sum(
                pad[b, rcb, y * sh + ry * dh, x * sw + rx * dw, rc] * kernel[o, rcb * bi + rc, ry, rx, k],
                axis=[rcb, rc, ry, rx]),
            name=CONV_BLOCK)
        if out_blocks is None or out_blocks == ocb:
            return conv
        return te.compute((n, out_blocks, oh, ow, bo), lambda b, o, y, x, k: conv[b, o, y, x, k], name=CROP_BLOCK)
    assert groups == icb * bi and icg == 1 and ocb == icb and bo == bi
    return te.compute(
        (n, ocb, oh, ow, bo),
        lambda b, o, y, x, k: te.sum(pad[b, o, y * sh + ry * dh, x * sw + rx * dw, k] * kernel[o, 0, ry, rx, k],
                                     axis=[ry, rx]),
        name=DWCONV_BLOCK)


def _pad_nchw(data, pt, pl, pb, pr):
    n, c, h, w = data.shape
    if not (pt or pl or pb or pr):
        return data

    def f(i, j, y, x):
        inside = tirx.all(y >= pt, y < h + pt, x >= pl, x < w + pl)
        return tirx.if_then_else(inside, data[i, j, y - pt, x - pl], tirx.const(0, data.dtype))

    return te.compute((n, c, h + pt + pb, w + pl + pr), f, name=PAD_BLOCK)


def conv2d_nchw_packed(data, kernel, oc, strides, padding, dilation, owp=None, blocked_out=False):
    """Dense NCHW conv with a packed kernel [ceil(OC/b), IC, KH, KW, b] (zero-padded channels):
    accumulates into [N, OC/b, OH, OWp, b] (`edgec_conv_nchw_acc`; OWp >= OW: whole pixel tiles,
    the extra columns read the zero padding), then unpacks to NCHW, or with `blocked_out` (an
    image stem feeding blocked convs; OC a multiple of b) crops to NCHW{b}c [N, OC/b, OH, OW, b]."""
    n, ic, h, w = _ints(data.shape)
    ocb, _, kh, kw, b = _ints(kernel.shape)
    sh, sw = strides
    dh, dw = dilation
    pt, pl, pb, pr = padding
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    owp = max(owp or ow, ow)
    pr = max(pr, (owp - 1) * sw + dw * (kw - 1) + 1 - w - pl)
    pad = _pad_nchw(data, pt, pl, pb, pr)
    rc, ry, rx = te.reduce_axis((0, ic), "rc"), te.reduce_axis((0, kh), "ry"), te.reduce_axis((0, kw), "rx")
    acc = te.compute(
        (n, ocb, oh, owp, b),
        lambda i, o, y, x, k: te.sum(pad[i, rc, y * sh + ry * dh, x * sw + rx * dw] * kernel[o, rc, ry, rx, k],
                                     axis=[rc, ry, rx]),
        name=CONV_NCHW_BLOCK)
    if blocked_out:
        assert oc == ocb * b
        return te.compute((n, ocb, oh, ow, b), lambda i, o, y, x, k: acc[i, o, y, x, k], name=UNPACK_BLOCK)
    return te.compute((n, oc, oh, ow), lambda i, c, y, x: acc[i, c // b, y, x, c % b], name=UNPACK_BLOCK)


def conv_tiles(ocb: int, ow: int, registers: int, lanes: int = 0) -> tuple[int, int]:
    """(ot, cap): output-channel vectors per register tile and the most pixels beside them.

    With 16-lane vectors (AVX-512's 32 registers) the tile leaves 16 registers free, not 8: LLVM
    keeps the broadcast input pixels live across the kernel window's columns (a stride-2 stem's
    pixel x at column 2 is pixel x + 1 at column 0), and 24 accumulators then spilled them to the
    stack. 2 x 8 instead of 2 x 12 (which also padded 112-pixel rows to 120): MobileNetV2's 3x3
    stem 0.213 -> 0.192 ms, ResNet-18's 7x7 stem 0.878 -> 0.829 ms (2 threads, per-kernel minimums,
    medians of 3 processes; one thread 0.29 -> 0.25 and 1.63 -> 1.57 ms)."""
    ot = 4 if ocb % 4 == 0 and ow <= 8 else 2 if ocb % 2 == 0 else 1
    spare = 16 if lanes >= 16 and registers >= 32 else 8
    return ot, max((registers - spare) // ot, 1)


def padded_width(ow: int, cap: int) -> int:
    """The fewest pixel tiles of at most `cap` covering a row, balanced: their total width."""
    tiles = -(-ow // cap)
    return tiles * -(-ow // tiles)


def _registers(lanes: int) -> int:
    t = tvm.target.Target.current(allow_none=True)
    aarch64 = t is not None and "aarch64" in str(t.attrs.get("mtriple", ""))
    return 32 if lanes >= 16 or aarch64 else 16


def _legalize_conv2d_nchw(bb, call, lanes, out_block=None):
    a = call.attrs
    w = call.args[1]
    oc = int(w.ty.shape[0])
    b = out_block or (lanes if oc >= lanes else max(4, 1 << (oc - 1).bit_length()))
    ocp = -(-oc // b) * b
    packed = relax.op.layout_transform(w, index_map=lambda o, i, y, x: (o // b, i, y, x, o % b),
                                       pad_value=(0 if "int" in str(w.ty.dtype) else 0.0) if ocp != oc else None)
    packed = bb.normalize(packed)
    ow = int(call.ty.shape[3])
    _, cap = conv_tiles(ocp // b, ow, _registers(lanes), lanes)
    return bb.call_te(conv2d_nchw_packed, call.args[0], packed, oc=oc, strides=_ints(a.strides),
                      padding=_ints(a.padding), dilation=_ints(a.dilation), owp=padded_width(ow, cap),
                      blocked_out=out_block is not None, primfunc_name_hint="conv2d_nchw")


def _blocked(layout: str) -> int | None:
    if layout.startswith("NCHW") and layout.endswith("c") and layout[4:-1].isdigit():
        return int(layout[4:-1])
    return None


def _legalize_conv2d(bb: relax.BlockBuilder, call: relax.Call) -> relax.Expr:
    a = call.attrs
    b = _blocked(str(a.data_layout))
    out = conv_int8.legalize(bb, call, _DOT[0])  # uint8 x int8: the dot-product kernel
    if out is not None:
        return out
    if b is None:
        from tvm.relax.transform.legalize_ops.nn import _nn_conv2d

        out_block = _blocked(str(a.out_layout))
        if (str(a.data_layout), str(a.kernel_layout)) == ("NCHW", "OIHW") and \
                (str(a.out_layout) == "NCHW" or out_block) and _packable_nchw(call, _WEIGHTS[0]) and _LANES[0]:
            return _legalize_conv2d_nchw(bb, call, _LANES[0], out_block)
        out = packing.legalize_dwconv_nchw(bb, call, _LANES[0])
        return out if out is not None else _nn_conv2d(bb, call)
    if str(a.kernel_layout) != f"OIHW{b}o" or str(a.out_layout) != str(a.data_layout):
        raise ValueError(f"edgec: unsupported blocked conv2d layouts {a.data_layout}/{a.kernel_layout}/{a.out_layout}")
    kernel, ocb = call.args[1], int(call.args[1].ty.shape[0])
    ocp = padded_blocks(ocb) if int(a.groups) == 1 and isinstance(kernel, tvm.ir.expr.Constant) else ocb
    if ocp != ocb:  # zero blocks, folded into the constant
        kernel = bb.normalize(relax.op.nn.pad(kernel, [0, ocp - ocb] + [0, 0] * (kernel.ty.ndim - 1)))
    return bb.call_te(conv2d_nchwc, call.args[0], kernel, strides=_ints(a.strides),
                      padding=_ints(a.padding), dilation=_ints(a.dilation), groups=int(a.groups),
                      out_blocks=ocb, primfunc_name_hint="conv2d_nchwc")


_LANES = [0]
_WEIGHTS: list[frozenset[str]] = [frozenset()]
_DOT: list[str | None] = ["vnni"]


def legalize_map(lanes: int = 0, weights: frozenset[str] = frozenset(), dot: str | None = "vnni") -> dict:
    """Legalizations for convs; `lanes` > 0 also packs constant-weight NCHW convs' kernels and
    constant matmul B operands. `weights`: names of weight parameters packed like constants.
    `dot`: the target's dot-product instructions (uint8 x int8 convs: conv_int8.legalize)."""
    _LANES[0] = lanes
    _WEIGHTS[0] = frozenset(weights)
    _DOT[0] = dot
    out = {"relax.nn.conv2d": _legalize_conv2d, **math_legalizations(vectorized=bool(lanes))}
    if lanes:
        out["relax.take"] = _legalize_take
        out["relax.matmul"] = _legalize_matmul
    return out


def _legalize_take(bb, call):
    out = packing.legalize_take_columns(bb, call, _LANES[0], _WEIGHTS[0])
    if out is None:
        from tvm.relax.transform.legalize_ops.index import _take

        return _take(bb, call)
    return out


def _legalize_matmul(bb, call):
    out = packing.legalize_matmul(bb, call, _LANES[0], _WEIGHTS[0])
    if out is None:
        from tvm.relax.transform.legalize_ops.linear_algebra import _matmul

        return _matmul(bb, call)
    return out


def _packable_nchw(call: relax.Call, weights: frozenset[str]) -> bool:
    """A dense NCHW conv the packed-kernel legalization takes: constant (or packable parameter)
    weights, static shapes."""
    return int(call.attrs.groups) == 1 and packing.is_weight(call.args[1], weights) and \
        _static(call.ty) and _static(call.args[0].ty)


def stem_layouts(call: relax.Call, block: int, weights: frozenset[str]) -> list[str] | None:
    """ConvertLayout's layouts for a float image stem (input channels the block does not divide,
    output channels it does, packable weights): NCHW in, NCHW{block}c out. The packed NCHW kernel
    then writes the blocked layout the next convs read (its accumulator cropped per row) instead
    of NCHW followed by a layout_transform kernel (MobileNetV2: 0.065 of 3.1 ms)."""
    x, w = call.args[0].ty, call.args[1].ty
    if str(x.dtype) != "float32" or x.ndim != 4 or w.ndim != 4 or \
            not _packable_nchw(call, weights):
        return None
    ic, oc = int(x.shape[1]), int(w.shape[0])
    return ["NCHW", "OIHW", f"NCHW{block}c"] if ic % block and oc % block == 0 else None


def _conv_ok(call: relax.Call, block: int) -> bool:
    """Which convolutions to block: dense ones with IC, OC divisible by `block`, or depthwise."""
    a = call.attrs
    if str(a.data_layout) != "NCHW" or str(a.kernel_layout) != "OIHW":
        return False
    x, w = call.args[0].ty, call.args[1].ty
    if x.ndim != 4 or w.ndim != 4:
        return False
    ic, oc = int(x.shape[1]), int(w.shape[0])
    g = int(a.groups)
    if g == 1:
        return ic % block == 0 and oc % block == 0 and conv_int8.block_ok(x, block)
    return g == ic == oc and ic % block == 0 and int(w.shape[1]) == 1


def _convs(mod: tvm.IRModule) -> list[relax.Call]:
    found = []

    @relax.expr_functor.visitor
    class _Scan(relax.PyExprVisitor):
        def visit_call_(self, call):  # noqa: N802
            if isinstance(call.op, tvm.ir.Op) and call.op.name == "relax.nn.conv2d":
                found.append(call)
            super().visit_call_(call)

    for _, f in mod.functions.items():
        if isinstance(f, relax.Function):
            _Scan().visit_expr(f)
    return found


def _static(ty) -> bool:
    """A tensor type whose dims are all known integers (not symbolic)."""
    s = getattr(ty, "shape", None)
    return isinstance(s, relax.ShapeExpr) and all(isinstance(d, tirx.IntImm) for d in s.values)


def choose_block(mod: tvm.IRModule, lanes: int) -> int | None:
    """The channel block: the widest power of two <= the vector lanes (down to a quarter) that
    blocks nearly all the conv FLOPs any candidate blocks; None when too few FLOPs would be, or
    when a convolution has symbolic dims (its blocked kernels and schedules need static ones)."""
    work: dict[int, float] = {}
    total = 0.0
    convs = _convs(mod)
    if not all(_static(c.args[0].ty) and _static(c.args[1].ty) and _static(c.ty) for c in convs):
        return None
    for c in convs:
        w, y = c.args[1].ty, c.ty
        flops = float(_prod(w.shape) * _prod(list(y.shape)[2:]))
        total += flops
        for b in conv_int8.candidate_blocks(c.args[0].ty, (lanes, lanes // 2, lanes // 4)):
            if b >= 4 and _conv_ok(c, b):
                work[b] = work.get(b, 0.0) + flops
    if not work or total == 0:
        return None
    # every conv left out of the blocked layout costs a layout transform on each side, which
    # measured more than the narrower vectors: the widest block covering (nearly) all the work
    # that any block covers (MobileNetV2: 8, because of its 24-channel layers; 16 left them NCHW
    # with 4 transforms per block: 9.5 -> 8.8 ms summed kernel minimums)
    most = max(work.values())
    best = max(b for b in work if work[b] >= 0.98 * most)
    return best if work[best] >= 0.3 * total else None


def _prod(xs) -> int:
    out = 1
    for x in xs:
        out *= int(x)
    return out


def _clip_to_minmax(mod: tvm.IRModule) -> tvm.IRModule:
    """clip(x, lo, hi) -> minimum(maximum(x, lo), hi): ConvertLayout has no layout rule for clip,
    and would otherwise transform back to NCHW around every ReLU6."""

    @relax.expr_functor.mutator
    class _M(relax.PyExprMutator):
        def visit_call_(self, call):  # noqa: N802
            call = super().visit_call_(call)
            if isinstance(call.op, tvm.ir.Op) and call.op.name == "relax.clip":
                dt = str(call.ty.dtype)
                lo, hi = (float(a.value) for a in call.args[1:3])
                return relax.op.minimum(relax.op.maximum(call.args[0], relax.const(lo, dt)), relax.const(hi, dt))
            return call

    for gv, f in list(mod.functions.items()):
        if isinstance(f, relax.Function):
            mod[gv] = _M().visit_expr(f)
    return mod


def _conv_layouts(block: int, weights: frozenset[str]):
    """ConvertLayout's per-call desired layouts: the blocked layout for the convs `_conv_ok`
    accepts; every other conv keeps its own layouts (its input leaves the blocked layout)."""

    def layouts(call: relax.Call) -> dict:
        if not (isinstance(call.op, tvm.ir.Op) and call.op.name == "relax.nn.conv2d"):
            return {}
        if _conv_ok(call, block):
            return {"relax.nn.conv2d": [f"NCHW{block}c", f"OIHW{block}o"]}
        a = call.attrs
        nchw = str(a.data_layout) == "NCHW" and str(a.kernel_layout) == "OIHW"
        stem = (conv_int8.stem_layouts(call, block) or stem_layouts(call, block, weights)) if nchw else None
        if stem is not None:
            return {"relax.nn.conv2d": stem}
        return {"relax.nn.conv2d": [str(a.data_layout), str(a.kernel_layout), str(a.out_layout)]}

    return layouts


def convert_to_blocked(mod: tvm.IRModule, lanes: int, weights: frozenset[str] = frozenset()) -> tvm.IRModule:
    """Blocked layout for eligible convolutions; image stems (3-channel input) read NCHW and
    write the blocked layout; others (grouped convs, channel counts no block divides) keep NCHW,
    and so do ops whose blocked form is not known to be right (layout_guard). `weights`: weight
    parameters the legalization packs like constants."""
    block = choose_block(mod, lanes)
    if block is None:
        return mod
    mod = guard_blocked(_clip_to_minmax(mod))
    mod = relax.transform.ConvertLayout({}, _conv_layouts(block, frozenset(weights)))(mod)
    mod = strip_barriers(mod)
    # ConvertLayout emits one layout_transform per consumer (ResNet's stem output fed two blocked
    # convs through two identical transforms): keep one
    return relax.transform.EliminateCommonSubexpr()(mod)
