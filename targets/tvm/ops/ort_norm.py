"""onnxruntime's RMS normalizations, as onnxruntime-genai's model builder writes them for
Llama/Qwen-style models: SimplifiedLayerNormalization (registered by onnxruntime in the ONNX
domain; edgec/ir/ort_schemas.py) and com.microsoft SkipSimplifiedLayerNormalization (the residual
add fused in front, its sum an optional output)."""

from __future__ import annotations

from tvm import relax

from edgec.targets.tvm.ops import lowers
from edgec.targets.tvm.ops.norm import _axes_from, rms_normalize

_R = relax.op


@lowers("SimplifiedLayerNormalization")
def simplified_layer_norm(ctx, node, xs):
    """Y = X / sqrt(mean(X^2 over axis..) + epsilon) * scale; optional output 1: inv_std_var."""
    rank = xs[0].ty.ndim
    if rank < 0:
        return NotImplemented
    y, inv = rms_normalize(ctx, node, xs[0], xs[1], _axes_from(node, rank))
    return [y, inv]


@lowers("SkipSimplifiedLayerNormalization", domain="com.microsoft")
def skip_simplified_layer_norm(ctx, node, xs):
    """sum = input + skip [+ bias]; output = RMSNorm(sum over the last axis) * gamma. Outputs:
    output, mean (onnxruntime leaves it unused: zeros here), inv_std_var, input_skip_bias_sum."""
    x = ctx.emit(_R.add(xs[0], xs[1]))
    if len(xs) > 3 and xs[3] is not None:
        x = ctx.emit(_R.add(x, xs[3]))
    rank = x.ty.ndim
    if rank < 1:
        return NotImplemented
    y, inv = rms_normalize(ctx, node, x, xs[2], [rank - 1])
    inv = ctx.emit(inv)
    return [y, _R.zeros_like(inv), inv, x]
