"""ONNX ops as torch functions for `edgec.distill_torch.OnnxModule`: one function per op (or op
family), each taking the module, the node and its input tensors and returning its outputs, plus
the shared helpers (attributes, quantization rounding with a straight-through gradient).

Each function follows the op's ONNX semantics at the opsets edgec reads; `edgec distill` checks
the converted student against onnxruntime before training."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import torch
import torch.nn.functional as F

from edgec.distill_torch_upsample import conv_transpose, resize
from edgec.errors import UnsupportedOpError

INT_RANGE = {np.dtype(t): (np.iinfo(t).min, np.iinfo(t).max) for t in (np.uint8, np.int8, np.uint16, np.int16, np.int32)}


def round_ste(x):
    """Round half to even (as QuantizeLinear) with the gradient of the identity (straight through)."""
    return x + (torch.round(x) - x).detach()


def along(t, axis: int, rank: int):
    """A per-axis scale / zero point [C] shaped to broadcast along `axis` of a rank-`rank` tensor."""
    if t.dim() == 0 or rank == 0:
        return t
    shape = [1] * rank
    shape[axis % rank] = -1
    return t.reshape(shape)


def attr(node: ir.Node, name: str, default=None):
    a = node.attributes.get(name)
    return default if a is None else a.value


def _ints(t) -> list[int]:
    return [int(x) for x in (t.tolist() if isinstance(t, torch.Tensor) else t)]


def _pads(node, x, kernel, strides, dilations) -> list[int]:
    """ONNX pads [x1_begin, x2_begin, ..., x1_end, ...] for the spatial dims (auto_pad resolved)."""
    k = len(kernel)
    auto = attr(node, "auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for i in range(k):
            size = x.shape[2 + i]
            out = -(-size // strides[i])
            total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size)
            small, big = total // 2, total - total // 2
            begin.append(small if auto == "SAME_UPPER" else big)
            end.append(big if auto == "SAME_UPPER" else small)
        return begin + end
    if auto == "VALID":
        return [0] * (2 * k)
    return list(attr(node, "pads", [0] * (2 * k)))


def _pad_input(x, pads, value=0.0):
    """(x padded where begin != end, symmetric pads left for the op)."""
    k = len(pads) // 2
    begin, end = pads[:k], pads[k:]
    if begin == end:
        return x, begin
    torch_pads = []
    for i in reversed(range(k)):
        torch_pads += [begin[i], end[i]]
    return F.pad(x, torch_pads, value=value), [0] * k


def _conv(m, node, a):
    x, w = a[0], a[1]
    b = a[2] if len(a) > 2 else None
    k = w.dim() - 2
    kernel = list(attr(node, "kernel_shape", w.shape[2:]))
    strides = list(attr(node, "strides", [1] * k))
    dil = list(attr(node, "dilations", [1] * k))
    x, pad = _pad_input(x, _pads(node, x, kernel, strides, dil))
    fn = (F.conv1d, F.conv2d, F.conv3d)[k - 1]
    return fn(x, w, b, strides, pad, dil, attr(node, "group", 1))


def _gemm(m, node, a):
    x, w = a[0], a[1]
    if attr(node, "transA", 0):
        x = x.t()
    if attr(node, "transB", 0):
        w = w.t()
    y = attr(node, "alpha", 1.0) * (x @ w)
    if len(a) > 2 and a[2] is not None:
        y = y + attr(node, "beta", 1.0) * a[2]
    return y


def _pool(kind):
    def run(m, node, a):
        x = a[0]
        kernel = list(attr(node, "kernel_shape"))
        k = len(kernel)
        strides = list(attr(node, "strides", [1] * k))
        dil = list(attr(node, "dilations", [1] * k))
        ceil = bool(attr(node, "ceil_mode", 0))
        pads = _pads(node, x, kernel, strides, dil)
        if kind == "max":
            x, pad = _pad_input(x, pads, float("-inf"))
            fn = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[k - 1]
            return fn(x, kernel, strides, pad, dil, ceil_mode=ceil), None
        include = bool(attr(node, "count_include_pad", 0))
        x, pad = _pad_input(x, pads) if include else (x, pads[:k])
        if not include and pads[:k] != pads[k:]:
            raise UnsupportedOpError(node.name or "", node.op_type, node.domain, m.opset, m.file,
                                     "asymmetric pads without count_include_pad")
        fn = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[k - 1]
        return fn(x, kernel, strides, pad, ceil_mode=ceil, count_include_pad=include)
    return run


def _softmax(log: bool):
    def run(m, node, a):
        x = a[0]
        axis = attr(node, "axis", -1 if m.opset >= 13 else 1)
        fn = torch.log_softmax if log else torch.softmax
        if m.opset >= 13:
            return fn(x, axis)
        shape = x.shape
        return fn(x.reshape(int(np.prod(shape[:axis])), -1), 1).reshape(shape)
    return run


def _reshape(m, node, a):
    x, shape = a[0], _ints(a[1])
    if not attr(node, "allowzero", 0):
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    if m.batch1 and m.batch > 1 and shape and shape[0] == 1 and x.shape[0] == m.batch:
        shape[0] = m.batch  # a model of static batch 1 trains on batches: its leading 1 is the batch
    return x.reshape(shape)


def _axes(m, node, a, slot=1):
    if len(a) > slot and a[slot] is not None:
        return _ints(a[slot])
    ax = attr(node, "axes")
    return None if ax is None else list(ax)


def _squeeze(m, node, a):
    axes = _axes(m, node, a)
    x = a[0]
    if axes is None:
        return x.squeeze()
    for ax in sorted((d % x.dim() for d in axes), reverse=True):
        x = x.squeeze(ax)
    return x


def _unsqueeze(m, node, a):
    x = a[0]
    axes = _axes(m, node, a)
    rank = x.dim() + len(axes)
    for ax in sorted(d % rank for d in axes):
        x = x.unsqueeze(ax)
    return x


def _reduce(fn):
    def run(m, node, a):
        x = a[0]
        axes = _axes(m, node, a)
        keep = bool(attr(node, "keepdims", 1))
        if axes is None or not axes:
            if attr(node, "noop_with_empty_axes", 0):
                return x
            axes = list(range(x.dim()))
        return fn(x, [d % x.dim() for d in axes], keep)
    return run


def _slice(m, node, a):
    x = a[0]
    starts, ends = _ints(a[1]), _ints(a[2])
    axes = _ints(a[3]) if len(a) > 3 and a[3] is not None else list(range(len(starts)))
    steps = _ints(a[4]) if len(a) > 4 and a[4] is not None else [1] * len(starts)
    idx = [slice(None)] * x.dim()
    for s, e, ax, st in zip(starts, ends, axes, steps):
        if st < 0:
            raise UnsupportedOpError(node.name or "", "Slice", node.domain, m.opset, m.file, "negative steps")
        idx[ax % x.dim()] = slice(s, e, st)
    return x[tuple(idx)]


def _split(m, node, a):
    x = a[0]
    axis = attr(node, "axis", 0)
    sizes = _ints(a[1]) if len(a) > 1 and a[1] is not None else attr(node, "split")
    if sizes is None:
        n = attr(node, "num_outputs", len(node.outputs))
        sizes = [-(-x.shape[axis] // n)] * n
        sizes[-1] = x.shape[axis] - sum(sizes[:-1])
    return tuple(torch.split(x, list(sizes), axis))


def _clip(m, node, a):
    lo = a[1] if len(a) > 1 and a[1] is not None else attr(node, "min")
    hi = a[2] if len(a) > 2 and a[2] is not None else attr(node, "max")
    return torch.clamp(a[0], lo, hi)


def _batchnorm(m, node, a):
    x, scale, b, mean, var = a[:5]
    return F.batch_norm(x, mean, var, scale, b, False, 0.0, attr(node, "epsilon", 1e-5))


def _layernorm(m, node, a):
    x = a[0]
    axis = attr(node, "axis", -1) % x.dim()
    y = F.layer_norm(x, x.shape[axis:], None, None, attr(node, "epsilon", 1e-5))
    y = y * a[1]
    return y + a[2] if len(a) > 2 and a[2] is not None else y


def _gelu(m, node, a):
    approx = attr(node, "approximate", "none")
    return F.gelu(a[0], approximate=approx.decode() if isinstance(approx, bytes) else approx)


def _const(m, node, a):
    return torch.from_numpy(np.array(node.attributes["value"].value.numpy()))


def _cast(m, node, a):
    return a[0].to(torch.from_numpy(np.zeros(1, ir.DataType(attr(node, "to")).numpy())).dtype)


def _pad(m, node, a):
    pads = _ints(a[1]) if len(a) > 1 else list(attr(node, "pads"))
    mode = attr(node, "mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    value = float(a[2].reshape(-1)[0]) if len(a) > 2 and a[2] is not None else 0.0
    k = len(pads) // 2
    tp = []
    for i in reversed(range(k)):
        tp += [pads[i], pads[k + i]]
    return F.pad(a[0], tp, mode=mode, value=value) if mode == "constant" else F.pad(a[0], tp, mode=mode)


def _flatten(m, node, a):
    x = a[0]
    axis = attr(node, "axis", 1) % (x.dim() + 1)
    return x.reshape(int(np.prod(x.shape[:axis])), -1)


def _gather(m, node, a):
    x, idx = a[0], a[1].long()
    axis = attr(node, "axis", 0) % x.dim()
    flat = torch.index_select(x, axis, idx.reshape(-1) % x.shape[axis])
    return flat.reshape(list(x.shape[:axis]) + list(idx.shape) + list(x.shape[axis + 1:]))


def _quantize(m, node, a):
    x, scale = a[0], a[1]
    zp_value = node.inputs[2] if len(node.inputs) > 2 else None
    dt = zp_value.dtype if zp_value is not None else node.outputs[0].dtype
    lo, hi = INT_RANGE.get(np.dtype(dt.numpy()) if dt is not None else np.dtype(np.uint8), (0, 255))
    axis = attr(node, "axis", 1)
    zp = along(a[2].float(), axis, x.dim()) if len(a) > 2 and a[2] is not None else 0.0
    return torch.clamp(round_ste(x / along(scale, axis, x.dim())) + zp, lo, hi)


def _dequantize(m, node, a):
    name = node.inputs[0].name
    if name in m.quant:
        return m.quant[name].fake(a[0])
    axis = attr(node, "axis", 1)
    zp = along(a[2].float(), axis, a[0].dim()) if len(a) > 2 and a[2] is not None else 0.0
    return (a[0].float() - zp) * along(a[1], axis, a[0].dim())


def _fold(fn, args):
    out = args[0]
    for t in args[1:]:
        out = fn(out, t)
    return out


def _unary(fn):
    return lambda m, node, a: fn(a[0])


OPS = {
    "Conv": _conv, "ConvTranspose": conv_transpose, "Resize": resize, "Gemm": _gemm, "MatMul": lambda m, n, a: torch.matmul(a[0], a[1]),
    "Add": lambda m, n, a: a[0] + a[1], "Sub": lambda m, n, a: a[0] - a[1],
    "Mul": lambda m, n, a: a[0] * a[1], "Div": lambda m, n, a: a[0] / a[1],
    "Pow": lambda m, n, a: torch.pow(a[0], a[1]),
    "Where": lambda m, n, a: torch.where(a[0].bool(), a[1], a[2]),
    "Max": lambda m, n, a: _fold(torch.maximum, a), "Min": lambda m, n, a: _fold(torch.minimum, a),
    "Relu": _unary(torch.relu), "Sigmoid": _unary(torch.sigmoid), "Tanh": _unary(torch.tanh),
    "Exp": _unary(torch.exp), "Log": _unary(torch.log), "Sqrt": _unary(torch.sqrt), "Neg": _unary(torch.neg),
    "Abs": _unary(torch.abs), "Reciprocal": _unary(torch.reciprocal), "Erf": _unary(torch.erf),
    "Softplus": _unary(F.softplus), "HardSwish": _unary(F.hardswish), "Identity": _unary(lambda x: x),
    "LeakyRelu": lambda m, n, a: F.leaky_relu(a[0], attr(n, "alpha", 0.01)),
    "Elu": lambda m, n, a: F.elu(a[0], attr(n, "alpha", 1.0)),
    "HardSigmoid": lambda m, n, a: torch.clamp(attr(n, "alpha", 0.2) * a[0] + attr(n, "beta", 0.5), 0, 1),
    "PRelu": lambda m, n, a: torch.where(a[0] >= 0, a[0], a[0] * a[1]),
    "Gelu": _gelu, "Clip": _clip, "Softmax": _softmax(False), "LogSoftmax": _softmax(True),
    "MaxPool": _pool("max"), "AveragePool": _pool("avg"),
    "GlobalAveragePool": lambda m, n, a: a[0].mean(list(range(2, a[0].dim())), keepdim=True),
    "GlobalMaxPool": lambda m, n, a: a[0].amax(list(range(2, a[0].dim())), keepdim=True),
    "Flatten": _flatten,
    "Reshape": _reshape, "Squeeze": _squeeze, "Unsqueeze": _unsqueeze,
    "Transpose": lambda m, n, a: a[0].permute(list(attr(n, "perm", reversed(range(a[0].dim()))))),
    "Concat": lambda m, n, a: torch.cat([t for t in a if t is not None], attr(n, "axis")),
    "Split": _split, "Slice": _slice, "Pad": _pad,
    "BatchNormalization": _batchnorm, "LayerNormalization": _layernorm,
    "Dropout": lambda m, n, a: a[0], "Constant": _const, "Cast": _cast,
    "QuantizeLinear": _quantize, "DequantizeLinear": _dequantize,
    "Shape": lambda m, n, a: torch.tensor(list(a[0].shape), dtype=torch.int64),
    "Gather": _gather,
    "ReduceMean": _reduce(lambda x, ax, k: x.mean(ax, keepdim=k)),
    "ReduceSum": _reduce(lambda x, ax, k: x.sum(ax, keepdim=k)),
    "ReduceMax": _reduce(lambda x, ax, k: x.amax(ax, keepdim=k)),
}
