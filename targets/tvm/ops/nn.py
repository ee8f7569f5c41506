"""Convolution, pooling, dense layers and normalization."""

from __future__ import annotations

import numpy as np
from tvm import relax

from edgec.ir.domains import is_onnx_domain
from edgec.targets.lowerable import conv_lowerable, conv_pads, conv_rank
from edgec.targets.tvm.lower_context import attr, shape_of
from edgec.targets.tvm.ops import lowers
from edgec.targets.tvm.ops.reduce import staged_mean

_R = relax.op


def _static_rank(x) -> int | None:
    return x.ty.ndim if hasattr(x.ty, "ndim") and x.ty.ndim >= 0 else None


_CONV = {4: (_R.nn.conv2d, "NCHW", "OIHW"), 5: (_R.nn.conv3d, "NCDHW", "OIDHW")}


@lowers("Conv")
def conv(ctx, node, xs):
    """Conv of rank 3/4/5 (1-D/2-D/3-D); what it takes is `conv_lowerable` (edgec/targets/lowerable.py),
    which fuse-activation asks too before it makes an edgec.FusedConv. A float16 Conv gets float32
    inputs (targets/tvm/half.py): a float16 accumulator over K = 1280 products put the slovorez zoo
    model 7e-3 off."""
    x, w = xs[0], xs[1]
    b = xs[2] if len(xs) > 2 else None
    r = _static_rank(x)
    if conv_lowerable(node) or r != conv_rank(node):
        return NotImplemented
    nd = r - 2
    strides, pads = attr(node, "strides", [1] * nd), conv_pads(node)
    dilations, groups = attr(node, "dilations", [1] * nd), int(attr(node, "group", 1))
    if r == 3:  # 1-D as 2-D with height 1: the 2-D convolutions have schedules, conv1d has none
        y = ctx.emit(_R.nn.conv2d(ctx.emit(_R.expand_dims(x, 2)), ctx.emit(_R.expand_dims(w, 2)),
                                  strides=[1, strides[0]], padding=[0, pads[0], 0, pads[1]],
                                  dilation=[1, dilations[0]], groups=groups))
        y = ctx.emit(_R.squeeze(y, [2]))
    else:
        fn, data_layout, kernel_layout = _CONV[r]
        y = ctx.emit(fn(x, w, strides=strides, padding=pads, dilation=dilations, groups=groups,
                        data_layout=data_layout, kernel_layout=kernel_layout))
    if b is not None:
        y = ctx.emit(_R.add(y, _R.reshape(b, [1, -1] + [1] * nd)))
    return y


def _pool_args(node):
    k = attr(node, "kernel_shape")
    return dict(pool_size=k, strides=attr(node, "strides", [1] * len(k)),
                padding=attr(node, "pads", [0] * (2 * len(k))), ceil_mode=bool(attr(node, "ceil_mode", 0)))


@lowers("MaxPool")
def max_pool(ctx, node, xs):
    if (_static_rank(xs[0]) != 4 or attr(node, "auto_pad", "NOTSET") not in ("NOTSET", "VALID")
            or len(node.outputs) > 1 or attr(node, "storage_order", 0)):
        return NotImplemented
    return _R.nn.max_pool2d(xs[0], dilation=attr(node, "dilations", [1, 1]), **_pool_args(node))


@lowers("AveragePool")
def avg_pool(ctx, node, xs):
    if _static_rank(xs[0]) != 4 or attr(node, "auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        return NotImplemented
    if attr(node, "dilations", [1, 1]) != [1, 1]:
        return NotImplemented
    return _R.nn.avg_pool2d(xs[0], count_include_pad=bool(attr(node, "count_include_pad", 0)), **_pool_args(node))


@lowers("GlobalAveragePool", "GlobalMaxPool")
def global_pool(ctx, node, xs):
    r = _static_rank(xs[0])
    if r is None or r < 3:
        return NotImplemented
    axes = list(range(2, r))
    s = shape_of(xs[0])
    if node.op_type == "GlobalAveragePool" and s is not None and str(xs[0].ty.dtype).startswith("float"):
        return staged_mean(ctx, xs[0], s, axes, True)  # staged when the plane is long (ops/reduce.py)
    fn = _R.mean if node.op_type == "GlobalAveragePool" else _R.max
    return fn(xs[0], axis=axes, keepdims=True)


@lowers("Gemm")
def gemm(ctx, node, xs):
    a, b = xs[0], xs[1]
    c = xs[2] if len(xs) > 2 else None
    alpha, beta = float(attr(node, "alpha", 1.0)), float(attr(node, "beta", 1.0))
    if attr(node, "transA", 0):
        a = _R.permute_dims(a, [1, 0])
    if attr(node, "transB", 0):
        b = _R.permute_dims(b, [1, 0])
    y = ctx.emit(_R.matmul(a, b))
    dt = str(y.ty.dtype)
    if alpha != 1.0:
        y = ctx.emit(_R.multiply(y, relax.const(alpha, dt)))
    if c is not None:
        if beta != 1.0:
            c = _R.multiply(c, relax.const(beta, dt))
        y = _R.add(y, c)
    return y


@lowers("MatMul")
def matmul(ctx, node, xs):
    a, b = xs  # float16 comes as float32 (targets/tvm/half.py): products accumulate in float32
    padded = _pad_columns(ctx, node, a)
    if padded is not None:
        return padded
    k = _transposed_keys(ctx, node)
    if k is not None:  # q @ Transpose(k): attention scores read the cache rows directly
        from edgec.targets.tvm.ops.attention import scores

        return scores(ctx, a, k)
    return _R.matmul(a, b)


def _transposed_keys(ctx, node):
    """k when the MatMul's second input is Transpose(k, perm=[0, 1, 3, 2]) of a 4-D k with
    symbolic dims (exporters write attention scores as q @ k^T): None otherwise."""
    from edgec.targets.tvm.symbolic import dims_of

    producer = node.inputs[1].producer() if node.inputs[1] is not None else None
    if producer is None or producer.op_type != "Transpose" or not is_onnx_domain(producer.domain):
        return None
    if list(attr(producer, "perm", []) or []) != [0, 1, 3, 2]:
        return None
    k = ctx.values.get(producer.inputs[0].name)
    dims = dims_of(k) if k is not None else None
    if dims is None or len(dims) != 4 or all(isinstance(d, int) for d in dims):
        return None
    return k


COLUMN_BLOCK = 64  # output columns: a multiple of the schedules' column vectors and panels


def _pad_columns(ctx, node, a):
    """x[..., k] @ w[k, n] with symbolic rows and a constant w whose n is no multiple of
    COLUMN_BLOCK (a vocabulary of 50257): w padded with zero columns and the result sliced back,
    so the kernels run whole vectors and panels instead of a masked tail. Measured on GPT-2's
    768 x 50257 head (2 threads, loaded machine): 1 row 11.6 vs 16.0 ms, 17 rows 49 vs 102 ms.
    None when not such a MatMul."""
    from edgec.targets.tvm.symbolic import has_symbolic_dim

    w = ctx.const_array(node.inputs[1])
    if w is None or w.ndim != 2 or w.dtype != np.float32 or not has_symbolic_dim(a):
        return None
    k, n = w.shape
    if n % COLUMN_BLOCK == 0 or n < 8 * COLUMN_BLOCK:
        return None
    pad = np.zeros((k, -n % COLUMN_BLOCK), np.float32)
    y = ctx.emit(_R.matmul(a, relax.const(np.concatenate([w, pad], axis=1))))
    rank = len(y.ty.shape)
    return _R.strided_slice(y, axes=[rank - 1], begin=[0], end=[n])


@lowers("BatchNormalization")
def batch_norm(ctx, node, xs):
    if len(node.outputs) > 1 or attr(node, "training_mode", 0):
        return NotImplemented
    x, scale, bias, mean, var = xs
    eps = float(attr(node, "epsilon", 1e-5))
    out = _R.nn.batch_norm(x, scale, bias, mean, var, axis=1, epsilon=eps, training=False)
    return ctx.emit(relax.TupleGetItem(ctx.emit(out), 0))


@lowers("Softmax")
def softmax(ctx, node, xs):
    r = _static_rank(xs[0])
    axis = int(attr(node, "axis", -1 if ctx.opset >= 13 else 1))
    if ctx.opset < 13 and r is not None and axis % r != r - 1:
        return NotImplemented  # old Softmax flattens to 2-D at `axis`
    return _R.nn.softmax(xs[0], axis=axis)


@lowers("Gelu")
def gelu(ctx, node, xs):
    return (_R.nn.gelu_tanh if attr(node, "approximate", "none") == "tanh" else _R.nn.gelu)(xs[0])
