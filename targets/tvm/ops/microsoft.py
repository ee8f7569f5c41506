"""Common `com.microsoft` contrib ops found in models exported for or optimized by onnxruntime."""

from __future__ import annotations

from tvm import relax

from edgec.targets.tvm.lower_context import attr
from edgec.targets.tvm.ops import lowers
from edgec.targets.tvm.ops.fused import fused_conv, scalar_like

_R = relax.op
MS = "com.microsoft"


@lowers("FusedConv", domain=MS)
def ms_fused_conv(ctx, node, xs):
    """Y = activation(Conv(X, W, B) + Z): the same contract as edgec.FusedConv."""
    return fused_conv(ctx, node, xs)


@lowers("Gelu", domain=MS)
def ms_gelu(ctx, node, xs):
    return _R.nn.gelu(xs[0])


@lowers("BiasGelu", domain=MS)
def ms_bias_gelu(ctx, node, xs):
    return _R.nn.gelu(ctx.emit(_R.add(xs[0], xs[1])))


@lowers("FastGelu", domain=MS)
def ms_fast_gelu(ctx, node, xs):
    x = xs[0] if len(xs) < 2 or xs[1] is None else ctx.emit(_R.add(xs[0], xs[1]))
    return _R.nn.gelu_tanh(x)


@lowers("QuickGelu", domain=MS)
def ms_quick_gelu(ctx, node, xs):
    x = xs[0]
    alpha = float(attr(node, "alpha", 1.702))
    return _R.multiply(x, ctx.emit(_R.sigmoid(ctx.emit(_R.multiply(x, scalar_like(x, alpha))))))


@lowers("SkipLayerNormalization", domain=MS)
def ms_skip_layer_norm(ctx, node, xs):
    """Y = LayerNorm(input + skip [+ bias]) over the last axis; only the first output."""
    if len([o for o in node.outputs if o.name]) > 1:
        return NotImplemented
    x = ctx.emit(_R.add(xs[0], xs[1]))
    if len(xs) > 4 and xs[4] is not None:
        x = ctx.emit(_R.add(x, xs[4]))
    gamma = xs[2]
    beta = xs[3] if len(xs) > 3 and xs[3] is not None else _R.zeros_like(gamma)
    eps = float(attr(node, "epsilon", 1e-12))
    return _R.nn.layer_norm(x, gamma, beta, axes=[-1], epsilon=eps)


