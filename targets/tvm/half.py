"""float16 ops computed in float32, rounded to float16 once where a chain of them ends.

onnxruntime's CPU provider (the reference) has no float16 kernel for arithmetic ops (Add, Mul,
Conv, MatMul, Softmax, Relu, Sigmoid, reductions, pools, ...; measured with onnxruntime 1.31). Its
InsertCastTransformer runs them in float32 with Casts around them and drops the Cast pairs
between two of them (and around a data-movement node between two), so a chain such as
Conv -> Squeeze -> Add -> Relu -> Conv -> ... -> Softmax is computed in float32 and rounded once,
at its end. Rounding every op's result to float16 instead put the slovorez zoo model's logits
2e-2 off (1.5e-3 after its Softmax; onnxruntime: 8e-6, its final rounding 2.4e-4).

So, while lowering (`targets/tvm/lower.py`):
- an op of `WIDE` with float16 inputs is lowered on their float32 values (`wide_inputs`);
- an op of `MOVES` (data movement, exact in any precision) is too when one of its inputs has a
  float32 value, which it then passes on;
- the float16 outputs of such an op are its float32 results rounded (`round_outputs`), what
  every other op and the graph outputs read; the float32 results stay in `ctx.wide` for the next
  op of the chain. A rounding no op reads is removed by Relax's dead-code elimination.
Ops onnxruntime has float16 kernels for (Max/Min/Clip/Round, exact on float16 inputs;
LayerNormalization) and all others read the rounded value, as there. float32 models are untouched.

Native float16 (`ctx.native_half`, `native_float16`): on a target with float16 arithmetic
(AArch64 `fullfp16`, CUDA) and a model edgec converted itself (`--quantize fp16`, marked by the
convert-float16 pass), the ops of `NATIVE` (Conv/MatMul/Gemm, element-wise arithmetic, pools:
what maps to float16 vector instructions such as `fmla v.8h`) are computed in float16, products
accumulated in float16 too; transcendental ops, reductions and normalizations keep the float32
chains above. An imported float16 model is always computed as onnxruntime does (float32 chains):
its outputs match onnxruntime, and it did not ask for float16 arithmetic.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from tvm import relax

from edgec.ir.domains import is_onnx_domain
from edgec.targets.tvm.lower_context import LowerContext, const

_R = relax.op

# ops computing new values, lowered in float32 (onnxruntime's CPU provider has no float16 kernel)
WIDE = {
    "Add", "Sub", "Mul", "Div", "Pow", "Sum", "Mean", "Neg", "Abs", "Reciprocal", "Sqrt", "Exp", "Log",
    "Erf", "Floor", "Ceil", "Sin", "Cos", "Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "Elu", "Selu",
    "Celu", "Softplus", "Mish", "Swish", "Gelu", "HardSigmoid", "HardSwish", "Softmax", "LogSoftmax",
    "Conv", "ConvTranspose", "MatMul", "Gemm", "BatchNormalization", "InstanceNormalization",
    "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Resize", "ReduceMean", "ReduceSum",
    "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMin",
}
# edgec's fused and layout ops, made by its passes from ops of WIDE
WIDE_EDGEC = {"FusedConv", "FusedGemm", "FusedMatMul", "Gelu", "Silu", "RMSNormalization", "Attention", "ConvNHWC",
              "MaxPoolNHWC", "AveragePoolNHWC"}
# computed in float16 with ctx.native_half (the rest of WIDE / WIDE_EDGEC stays float32)
NATIVE = {"Add", "Sub", "Mul", "Div", "Neg", "Abs", "Relu", "LeakyRelu", "PRelu", "Conv", "ConvTranspose", "MatMul",
          "Gemm", "MaxPool", "AveragePool", "GlobalMaxPool", "FusedConv", "FusedGemm", "FusedMatMul", "ConvNHWC",
          "MaxPoolNHWC", "AveragePoolNHWC"}
# data movement: a float32 value passes through unchanged
MOVES = {"Identity", "Dropout", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Concat", "Slice",
         "Split", "Gather", "Expand", "Tile", "Pad", "Where", "DepthToSpace", "SpaceToDepth"}


def native_float16(features: tuple[str, ...], arch: str, metadata: dict) -> bool:
    """Whether float16 is computed natively (`ctx.native_half`): the target has float16
    arithmetic and the model was converted to float16 by edgec (the convert-float16 pass's mark)."""
    from edgec.passes.quantization.convert_float16 import MARK

    return ("fullfp16" in features or arch == "cuda") and metadata.get(MARK) == "float16"


def _half(x) -> bool:
    return isinstance(getattr(x, "ty", None), relax.TensorType) and str(x.ty.dtype) == "float16"


def _widens(ctx: LowerContext, node: ir.Node, xs: list) -> bool:
    if is_onnx_domain(node.domain):
        wide = node.op_type in WIDE
    else:
        wide = node.domain == "edgec" and node.op_type in WIDE_EDGEC
    if not wide and not (is_onnx_domain(node.domain) and node.op_type in MOVES):
        return False
    if ctx.native_half and node.op_type in NATIVE:
        return False
    halves = [v.name for v, x in zip(node.inputs, xs) if v is not None and _half(x)]
    return bool(halves) and (wide or any(n in ctx.wide for n in halves))


def wide_inputs(ctx: LowerContext, node: ir.Node, xs: list) -> list | None:
    """`xs` with every float16 input as float32 (its unrounded value where the chain has one) when
    `node` is computed in float32, else None."""
    if not _widens(ctx, node, xs):
        return None
    out = []
    for v, x in zip(node.inputs, xs):
        if v is None or not _half(x):
            out.append(x)
        elif v.name in ctx.wide:
            out.append(ctx.wide[v.name])
        elif v.name in ctx.constants:  # a constant stays a constant (lowerings look for them)
            out.append(const(ctx.constants[v.name].astype(np.float32)))
        else:
            out.append(ctx.emit(_R.astype(x, "float32")))
    return out


def _float32_input(ctx: LowerContext, node: ir.Node) -> bool:
    """Whether `node` reads a float32 tensor of the model's own (e.g. Pow's exponent)."""
    return any(v is not None and v.dtype == ir.DataType.FLOAT and v.name not in ctx.constants for v in node.inputs)


def round_outputs(ctx: LowerContext, node: ir.Node) -> None:
    """After a node lowered on `wide_inputs`: its float32 outputs that are float16 in the model
    (or of unknown type, when the node reads no float32 tensor) are kept in ctx.wide and rounded
    to float16 in ctx.values."""
    for v in node.outputs:
        x = ctx.values.get(v.name) if v.name else None
        if x is None or not isinstance(getattr(x, "ty", None), relax.TensorType) or str(x.ty.dtype) != "float32":
            continue
        if v.dtype != ir.DataType.FLOAT16 and (v.dtype is not None or _float32_input(ctx, node)):
            continue
        ctx.wide[v.name] = x
        ctx.values[v.name] = ctx.bb.emit(_R.astype(x, "float16"))
