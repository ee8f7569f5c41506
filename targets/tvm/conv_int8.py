"""int8 convolution for dot-product instructions: uint8 activations x int8 weights -> int32.

`conv2d_u8s8_nchwc(data, kernel, ...)`: data [N, IC/16, H, W, 16] uint8, kernel packed
[OC/16, IC/16, KH, KW, 4, 16, 4] int8 (`PACK_INDEX`: for 4 consecutive input channels and 16
output channels, the 16x4 tile `vpdpbusd` reads) -> [N, OC/16, OH, OW, 16] int32, the plain sum
of x * w (zero padding; the zero-point correction and requantization are the caller's epilogue).
Dense 2-D, groups 1, channels multiples of 16. The block `edgec_conv_u8s8_nchwc` is what the
`conv2d-int8` schedule rule tensorizes with `VNNI_16x4`.
"""

from __future__ import annotations

from tvm import te, tirx

CONV_U8_BLOCK = "edgec_conv_u8s8_nchwc"
PAD_U8_BLOCK = "edgec_pad_u8_nchwc"
BLOCK = 16  # output channels per vpdpbusd
GROUP = 4   # input channels per int32 lane


def pack_index(o, i, y, x, k):
    """OIHW16o kernel index -> packed [OC/16, IC/16, KH, KW, 4, 16, 4] index."""
    return (o, i // BLOCK, y, x, (i % BLOCK) // GROUP, k, i % GROUP)


def _ints(xs) -> list[int]:
    return [int(v) for v in xs]


def conv2d_u8s8_nchwc(data, kernel, strides, padding, dilation):
    n, icb, h, w, bi = _ints(data.shape)
    ocb, icb2, kh, kw, g4, bo, g = _ints(kernel.shape)
    assert bi == BLOCK and bo == BLOCK and g == GROUP and g4 == BLOCK // GROUP and icb2 == icb
    sh, sw = strides
    dh, dw = dilation
    pt, pl, pb, pr = padding
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    if pt or pl or pb or pr:
        def f(i, j, y, x, k):
            inside = tirx.all(y >= pt, y < h + pt, x >= pl, x < w + pl)
            return tirx.if_then_else(inside, data[i, j, y - pt, x - pl, k], tirx.const(0, "uint8"))

        pad = te.compute((n, icb, h + pt + pb, w + pl + pr, bi), f, name=PAD_U8_BLOCK)
    else:
        pad = data
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
