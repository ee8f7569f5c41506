"""CNN blocks on NCHW tensors [1, C, H, W]: convolutions (grouped, depthwise, strided, dilated,
padded every way), BatchNorm, pools, Resize, Pad, Concat/Split branches, squeeze-excite,
residuals. Channel counts are often odd or not multiples of the vector width (20, 37, 60)."""

from __future__ import annotations

import math

import numpy as np

from edgec.fuzz.blocks_elementwise import activation
from edgec.fuzz.graph import Graph, Value

CHANNELS = (3, 5, 7, 8, 12, 16, 20, 24, 30, 37, 45, 60, 64, 70)
MAX_CHANNELS = 70


def out_channels(g: Graph, c_in: int, group: int = 1) -> int:
    if group == c_in and g.chance(0.7):
        return c_in * int(g.pick([1, 1, 2]))     # depthwise (x multiplier)
    choices = [c for c in CHANNELS if c % group == 0] or [group]
    return int(g.pick(choices))


def _window_out(size: int, k: int, s: int, d: int, pads: tuple[int, int], ceil: bool = False) -> int:
    span = size + pads[0] + pads[1] - d * (k - 1) - 1
    if ceil:
        out = -(-span // s) + 1
        return out - 1 if (out - 1) * s >= size + pads[0] else out   # last window must start inside
    return span // s + 1


def _pads_and_auto(g: Graph, size: tuple[int, int], k: int, s: int, d: int):
    """(attrs, out spatial): explicit (maybe asymmetric) pads, or an auto_pad mode."""
    mode = g.pick(("explicit", "explicit", "SAME_UPPER", "SAME_LOWER", "VALID", "none"))
    if mode in ("SAME_UPPER", "SAME_LOWER") and d == 1:
        return {"auto_pad": mode}, tuple(-(-n // s) for n in size)
    if mode in ("VALID", "none", "SAME_UPPER", "SAME_LOWER"):
        out = tuple(_window_out(n, k, s, d, (0, 0)) for n in size)
        return ({"auto_pad": "VALID"} if mode == "VALID" else {}), out
    half = d * (k - 1) // 2
    p = [int(g.pick([half, half, 0, min(half + 1, k - 1)])) for _ in range(4)]  # h0, w0, h1, w1
    out = (_window_out(size[0], k, s, d, (p[0], p[2])), _window_out(size[1], k, s, d, (p[1], p[3])))
    return {"pads": p}, out


def conv(g: Graph, x: Value) -> Value:
    c, h, w = x.shape[1], x.shape[2], x.shape[3]
    kind = g.pick(("plain", "depthwise", "grouped", "pointwise"))
    divisors = [d for d in range(2, c) if c % d == 0]
    group = {"depthwise": c, "grouped": int(g.pick(divisors)) if divisors else 1}.get(kind, 1)
    k = 1 if kind == "pointwise" else int(g.pick([1, 3, 3, 5]))
    d = int(g.pick([1, 1, 2])) if k > 1 else 1
    s = int(g.pick([1, 1, 2]))
    while k > 1 and d * (k - 1) + 1 > min(h, w):
        k, d = (k - 2, 1) if d == 1 else (k, 1)
    attrs, (oh, ow) = _pads_and_auto(g, (h, w), k, s, d)
    if oh < 1 or ow < 1:
        attrs, (oh, ow) = {}, (h - k + 1, w - k + 1)
        s, d = 1, 1
    m = out_channels(g, c, group)
    wt = g.weight((m, c // group, k, k), fan_in=c // group * k * k)
    ins = [x, wt] + ([g.const(g.uniform((m,), -0.2, 0.2))] if g.chance(0.7) else [])
    y = g.op("Conv", ins, (1, m, oh, ow), kernel_shape=[k, k], strides=[s, s], dilations=[d, d], group=group, **attrs)
    return activation(g, y, g.pick(("Relu", "Relu", "Clip", "Sigmoid", "HardSwish", "LeakyRelu", "Identity")))


def conv_transpose(g: Graph, x: Value) -> Value:
    c, h, w = x.shape[1:]
    s, k = int(g.pick([1, 2])), int(g.pick([2, 3]))
    m = int(g.pick([c for c in CHANNELS if c <= 30]))
    p = int(g.pick([0, 1])) if k == 3 else 0
    oh, ow = ((n - 1) * s - 2 * p + k for n in (h, w))
    wt = g.weight((c, m, k, k), fan_in=c * k * k // (s * s))
    return g.op("ConvTranspose", [x, wt], (1, m, oh, ow), kernel_shape=[k, k], strides=[s, s], pads=[p] * 4)


def batchnorm(g: Graph, x: Value) -> Value:
    c = x.shape[1]
    params = [g.const(g.uniform((c,), 0.5, 1.5)), g.const(g.uniform((c,), -0.3, 0.3)),
              g.const(g.uniform((c,), -0.3, 0.3)), g.const(g.uniform((c,), 0.5, 2.0))]
    return g.same("BatchNormalization", x, *params, epsilon=float(g.pick([1e-5, 1e-3])))


def instance_norm(g: Graph, x: Value) -> Value:
    c = x.shape[1]
    return g.same("InstanceNormalization", x, g.const(g.uniform((c,), 0.5, 1.5)), g.const(g.uniform((c,), -0.3, 0.3)))


def pool(g: Graph, x: Value) -> Value:
    h, w = x.shape[2:]
    if g.chance(0.2) or min(h, w) < 2:
        return g.op(g.pick(("GlobalAveragePool", "GlobalMaxPool")), [x], x.shape[:2] + (1, 1))
    op = g.pick(("MaxPool", "AveragePool"))
    k = int(g.pick([2, 3])) if min(h, w) >= 3 else 2
    s = int(g.pick([1, 2, 2]))
    p = int(g.pick([0, 0, 1])) if k == 3 else 0
    ceil = bool(g.chance(0.25))
    oh, ow = (_window_out(n, k, s, 1, (p, p), ceil) for n in (h, w))
    attrs = {"kernel_shape": [k, k], "strides": [s, s], "pads": [p] * 4, "ceil_mode": int(ceil)}
    if op == "AveragePool":
        attrs["count_include_pad"] = int(g.chance(0.5))
    return g.op(op, [x], (1, x.shape[1], oh, ow), **attrs)


def resize(g: Graph, x: Value) -> Value:
    h, w = x.shape[2:]
    up = max(h, w) <= 8 or g.chance(0.3)
    factor = 2.0 if up else 0.5
    mode = g.pick(("nearest", "linear", "cubic"))
    coord = g.pick(("half_pixel", "asymmetric", "align_corners", "pytorch_half_pixel")) if mode != "nearest" else "asymmetric"
    oh, ow = (int(math.floor(n * factor)) for n in (h, w))
    attrs = {"mode": mode, "coordinate_transformation_mode": coord}
    if mode == "nearest":
        attrs["nearest_mode"] = "floor"
    if g.chance(0.5):
        ins = [x, "", g.const(np.array([1, 1, factor, factor], np.float32))]
    else:
        ins = [x, "", "", g.ints([1, x.shape[1], oh, ow])]
    return g.op("Resize", ins, (1, x.shape[1], oh, ow), **attrs)


def pad(g: Graph, x: Value) -> Value:
    h, w = x.shape[2:]
    mode = g.pick(("constant", "constant", "reflect", "edge"))
    limit = 2 if mode != "reflect" else max(min(h, w) - 1, 0)
    p = [0, 0] + [int(g.rng.integers(0, min(limit, 2) + 1)) for _ in range(2)] + [0, 0] + \
        [int(g.rng.integers(0, min(limit, 2) + 1)) for _ in range(2)]
    ins = [x, g.ints(p)] + ([g.const(np.float32(g.pick([0.0, 0.5])))] if mode == "constant" else [])
    return g.op("Pad", ins, (1, x.shape[1], h + p[2] + p[6], w + p[3] + p[7]), mode=mode)


def concat_branches(g: Graph, x: Value) -> Value:
    """Two pointwise branches concatenated on channels (or x itself with one branch)."""
    c = x.shape[1]
    parts = [x] if g.chance(0.4) else []
    while len(parts) < 2:
        m = int(g.pick([n for n in CHANNELS if n <= 40]))
        y = g.op("Conv", [x, g.weight((m, c, 1, 1), c)], (1, m) + x.shape[2:], kernel_shape=[1, 1])
        parts.append(activation(g, y, "Relu"))
    total = sum(p.shape[1] for p in parts)
    y = g.op("Concat", parts, (1, total) + x.shape[2:], axis=1)
    if total > MAX_CHANNELS:
        m = int(g.pick(CHANNELS))
        y = g.op("Conv", [y, g.weight((m, total, 1, 1), total)], (1, m) + x.shape[2:], kernel_shape=[1, 1])
    return y


def split_merge(g: Graph, x: Value) -> Value:
    """Split channels, transform the parts differently, concatenate them in another order."""
    c = x.shape[1]
    if c < 2:
        return activation(g, x)
    cut = int(g.rng.integers(1, c))
    parts = g.op("Split", [x, g.ints([cut, c - cut])], [(1, cut) + x.shape[2:], (1, c - cut) + x.shape[2:]],
                 n_out=2, axis=1)
    parts = [activation(g, p) for p in parts]
    if g.chance(0.5):
        parts.reverse()
    return g.op("Concat", parts, x.shape, axis=1)


def residual(g: Graph, x: Value) -> Value:
    c = x.shape[1]
    y = x
    for _ in range(int(g.pick([1, 2]))):
        k = 3 if min(x.shape[2:]) >= 3 else 1
        y = g.op("Conv", [y, g.weight((c, c, k, k), c * k * k), g.const(g.uniform((c,), -0.1, 0.1))], x.shape,
                 kernel_shape=[k, k], pads=[k // 2] * 4)
        y = batchnorm(g, y) if g.chance(0.5) else y
        y = activation(g, y, "Relu")
    return g.same("Add", x, y)


def squeeze_excite(g: Graph, x: Value) -> Value:
    c = x.shape[1]
    r = max(c // 4, 2)
    s = g.op("GlobalAveragePool", [x], (1, c, 1, 1))
    s = g.op("Conv", [s, g.weight((r, c, 1, 1), c), g.const(np.zeros(r, np.float32))], (1, r, 1, 1), kernel_shape=[1, 1])
    s = activation(g, s, "Relu")
    s = g.op("Conv", [s, g.weight((c, r, 1, 1), r)], (1, c, 1, 1), kernel_shape=[1, 1])
    return g.same("Mul", x, activation(g, s, g.pick(("Sigmoid", "HardSigmoid"))))


def channel_affine(g: Graph, x: Value) -> Value:
    c = x.shape[1]
    y = g.same("Mul", x, g.const(g.uniform((1, c, 1, 1), 0.5, 1.5)))
    return g.same("Add", y, g.const(g.uniform((c, 1, 1), -0.5, 0.5)))


def space_depth(g: Graph, x: Value) -> Value:
    c, h, w = x.shape[1:]
    if h % 2 == 0 and w % 2 == 0 and c * 4 <= MAX_CHANNELS * 2 and g.chance(0.5):
        return g.op("SpaceToDepth", [x], (1, c * 4, h // 2, w // 2), blocksize=2)
    if c % 4 == 0:
        return g.op("DepthToSpace", [x], (1, c // 4, h * 2, w * 2), blocksize=2, mode=g.pick(("DCR", "CRD")))
    return pool(g, x)


CNN_BLOCKS = {  # name: (builder, weight, applies to x)
    "conv": (conv, 6, lambda x: True),
    "conv_transpose": (conv_transpose, 1, lambda x: max(x.shape[2:]) <= 8),
    "batchnorm": (batchnorm, 2, lambda x: True),
    "instance_norm": (instance_norm, 1, lambda x: x.shape[2] * x.shape[3] > 1),
    "pool": (pool, 2, lambda x: min(x.shape[2:]) >= 2),
    "resize": (resize, 1, lambda x: min(x.shape[2:]) >= 2 and max(x.shape[2:]) <= 16),
    "pad": (pad, 1, lambda x: max(x.shape[2:]) <= 14),
    "concat_branches": (concat_branches, 2, lambda x: True),
    "split_merge": (split_merge, 1, lambda x: x.shape[1] >= 2),
    "residual": (residual, 2, lambda x: True),
    "squeeze_excite": (squeeze_excite, 1, lambda x: True),
    "channel_affine": (channel_affine, 1, lambda x: True),
    "space_depth": (space_depth, 1, lambda x: min(x.shape[2:]) >= 2 and max(x.shape[2:]) <= 8),
}


def cnn_input(g: Graph) -> Value:
    c = int(g.pick(CHANNELS[:10]))
    h = int(g.rng.integers(5, 17))
    w = h if g.chance(0.6) else int(g.rng.integers(5, 17))
    return g.input((1, c, h, w), prefix="image")


def cnn_head(g: Graph, x: Value) -> Value:
    """Optional classifier head: global pool, Flatten, Gemm."""
    c = x.shape[1]
    y = g.op("Flatten", [g.op("GlobalAveragePool", [x], (1, c, 1, 1))], (1, c), axis=1)
    n = int(g.pick([10, 7, 16]))
    return g.op("Gemm", [y, g.weight((n, c), c), g.const(g.uniform((n,), -0.1, 0.1))], (1, n), transB=1)
