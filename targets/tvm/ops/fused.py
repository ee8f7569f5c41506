"""edgec-domain fused ops (see docs/edgec-ops.md): the producer's lowering plus its epilogue,
emitted together so Relax FuseOps keeps them in one kernel."""

from __future__ import annotations

from tvm import relax

from edgec.targets.tvm.lower_context import attr
from edgec.targets.tvm.ops import lowers
from edgec.targets.tvm.ops.nn import conv, gemm

_R = relax.op


def scalar_like(x, v: float):
    return relax.const(float(v), str(x.ty.dtype))


def _hard_sigmoid(ctx, y, alpha, beta):
    return _R.clip(ctx.emit(_R.add(_R.multiply(y, scalar_like(y, alpha)), scalar_like(y, beta))), 0.0, 1.0)


ACTIVATIONS = {
    "": lambda ctx, y, p: y,
    "Relu": lambda ctx, y, p: _R.nn.relu(y),
    "Clip": lambda ctx, y, p: _R.clip(y, float(p[0]), float(p[1])),
    "LeakyRelu": lambda ctx, y, p: _R.nn.leakyrelu(y, float(p[0])),
    "Sigmoid": lambda ctx, y, p: _R.sigmoid(y),
    "HardSigmoid": lambda ctx, y, p: _hard_sigmoid(ctx, y, p[0], p[1]),
    "HardSwish": lambda ctx, y, p: _R.multiply(y, ctx.emit(_hard_sigmoid(ctx, y, 1 / 6, 0.5))),
    "Silu": lambda ctx, y, p: _R.multiply(y, ctx.emit(_R.sigmoid(y))),
    "Tanh": lambda ctx, y, p: _R.tanh(y),
}


def _activate(ctx, node, y):
    act = attr(node, "activation", "")
    if act not in ACTIVATIONS:
        return NotImplemented
    return ACTIVATIONS[act](ctx, ctx.emit(y), attr(node, "activation_params", []) or [])


@lowers("FusedConv", domain="edgec")
def fused_conv(ctx, node, xs):
    y = conv(ctx, node, xs[:3])
    if y is NotImplemented:
        return NotImplemented
    if len(xs) > 3 and xs[3] is not None:
        y = _R.add(ctx.emit(y), xs[3])
    return _activate(ctx, node, y)


@lowers("FusedGemm", domain="edgec")
def fused_gemm(ctx, node, xs):
    return _activate(ctx, node, gemm(ctx, node, xs))


@lowers("FusedMatMul", domain="edgec")
def fused_matmul(ctx, node, xs):
    return _activate(ctx, node, _R.matmul(xs[0], xs[1]))


@lowers("Gelu", domain="edgec")
def gelu(ctx, node, xs):
    return (_R.nn.gelu_tanh if attr(node, "approximate", "none") == "tanh" else _R.nn.gelu)(xs[0])


@lowers("Silu", domain="edgec")
def silu(ctx, node, xs):
    return _R.nn.silu(xs[0])


@lowers("RMSNormalization", domain="edgec")
def rms_norm(ctx, node, xs):
    x, scale = xs[0], xs[1]
    r = x.ty.ndim
    axis = int(attr(node, "axis", -1)) % r
    if axis != r - 1:
        return NotImplemented
    return _R.nn.rms_norm(x, scale, axes=[axis], epsilon=float(attr(node, "epsilon", 1e-5)))
