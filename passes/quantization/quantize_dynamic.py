"""quantize-dynamic: MatMul / Gemm by constant float weights -> int8 weights, activations quantized at run time.

    y = MatMul(x, W)          ->  xq, sx, zx = DynamicQuantizeLinear(x)
                                  y = Cast(MatMulInteger(xq, Wq, zx, 0), float) * (sx * sW)
    y = Gemm(x, W, C)         ->  the same, + C (alpha = beta = 1, transA = 0; transB is folded into Wq)

Weights: int8, symmetric, per output column (per_channel=1) or per tensor, in [-127, 127]. The
activation's uint8 range is computed per call by DynamicQuantizeLinear (ONNX standard ops only:
any runtime runs the result). For MatMul-heavy models (transformers, RNN projections) where
activation ranges vary too much between inputs for calibration.

Taken in: float32 top-level MatMul with a constant 2-D B, Gemm with constant B, alpha = beta = 1,
transA = 0 and C absent or a constant broadcasting along the output's last axis; opset >= 11
(DynamicQuantizeLinear); not named in `exclude`. A MatMul of two activations (attention scores)
stays float. Idempotent: weights already integer are not matched again."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.errors import PipelineError
from edgec.infra.pass_base import Pass, PassResult, register_pass
from edgec.ir.constants import const_array
from edgec.ir.domains import is_onnx_domain, onnx_opset
from edgec.passes.cleanup._common import int_attr
from edgec.passes.quantization._qdq import Builder
from edgec.passes.quantization._qparams import weight_params


def _float_attr(node: ir.Node, name: str, default: float) -> float:
    a = node.attributes.get(name)
    return default if a is None or a.is_ref() else float(a.as_float())


def matmul_weight(node: ir.Node) -> np.ndarray | None:
    """The [K, N] float32 weight of a node this pass takes, or None."""
    if not is_onnx_domain(node.domain) or len(node.inputs) < 2 or node.inputs[0] is None:
        return None
    if node.inputs[0].dtype != ir.DataType.FLOAT or node.outputs[0].dtype not in (ir.DataType.FLOAT, None):
        return None
    w = const_array(node.inputs[1])
    if w is None or w.dtype != np.float32 or w.ndim != 2 or not np.all(np.isfinite(w)):
        return None
    if node.op_type == "MatMul":
        return w
    if node.op_type == "Gemm":
        if int_attr(node, "transA", 0) or _float_attr(node, "alpha", 1.0) != 1.0 or _float_attr(node, "beta", 1.0) != 1.0:
            return None
        w = w.T if int_attr(node, "transB", 0) else w
        c = node.inputs[2] if len(node.inputs) > 2 else None
        if c is not None:
            cv = const_array(c)
            if cv is None or cv.dtype != np.float32 or cv.size not in (1, w.shape[1]) or cv.ndim > 2 \
                    or (cv.ndim == 2 and cv.shape[0] != 1):
                return None
        return w
    return None


@register_pass
class QuantizeDynamic(Pass):
    """MatMul/Gemm by constant weights -> per-channel int8 weights, uint8 activations quantized at run time."""

    name = "quantize-dynamic"
    changes_numerics = True
    options = {"per_channel": True, "exclude": ""}

    def run(self, model: ir.Model, ctx) -> PassResult:
        o = self.opts
        if onnx_opset(model, 1) < 11:
            raise PipelineError("quantize-dynamic needs opset >= 11 (DynamicQuantizeLinear)")
        exclude = {s for s in o["exclude"].split(",") if s}
        todo = [(n, w) for n in list(model.graph) if n.op_type in ("MatMul", "Gemm") and n.name not in exclude
                for w in [matmul_weight(n)] if w is not None]
        if not todo:
            return PassResult(model, False)
        b = Builder(model, "")
        for node, w in todo:
            self._rewrite(b, node, w, o["per_channel"])
        return PassResult(model, True)

    def _rewrite(self, b: Builder, node: ir.Node, w: np.ndarray, per_channel: bool) -> None:
        x, y = node.inputs[0], node.outputs[0]
        c = node.inputs[2] if node.op_type == "Gemm" and len(node.inputs) > 2 else None
        q, s, _ = weight_params(w, 1 if per_channel else None)
        base = node.name or y.name
        wq = b.const(f"{base}_W_quantized", q)
        zw = b.const(f"{base}_W_zero_point", np.zeros(s.shape, np.int8))
        sw = b.const(f"{base}_W_scale", s)
        dq = ir.node("DynamicQuantizeLinear", [x], num_outputs=3, name=b.namer.fresh(f"{base}_quantize_input"))
        for o, (suffix, dt) in zip(dq.outputs, (("q", ir.DataType.UINT8), ("scale", ir.DataType.FLOAT),
                                               ("zero_point", ir.DataType.UINT8))):
            o.name, o.type = b.namer.fresh(f"{base}_x_{suffix}"), ir.TensorType(dt)
        dq.outputs[0].shape = x.shape
        dq.outputs[1].shape = dq.outputs[2].shape = ir.Shape([])
        out_shape = y.shape
        mm = self._node(b, "MatMulInteger", [dq.outputs[0], wq, dq.outputs[2], zw], base, "acc", ir.DataType.INT32, out_shape)
        cast = self._node(b, "Cast", [mm.outputs[0]], base, "acc_float", ir.DataType.FLOAT, out_shape, {"to": 1})
        scale = self._node(b, "Mul", [dq.outputs[1], sw], base, "scale", ir.DataType.FLOAT, ir.Shape([s.size]))
        nodes = [dq, mm, cast, scale]
        last = self._node(b, "Mul", [cast.outputs[0], scale.outputs[0]], base, "y", ir.DataType.FLOAT, out_shape)
        nodes.append(last)
        if c is not None:
            last = self._node(b, "Add", [last.outputs[0], c], base, "y_bias", ir.DataType.FLOAT, out_shape)
            nodes.append(last)
        b.replace_node(node, nodes, last.outputs[0])

    @staticmethod
    def _node(b: Builder, op, inputs, base, suffix, dtype, shape, attrs=None) -> ir.Node:
        n = ir.node(op, inputs, attrs or {}, name=b.namer.fresh(f"{base}_{suffix}"))
        n.outputs[0].name = b.namer.fresh(f"{base}_{suffix}")
        n.outputs[0].type = ir.TensorType(dtype)
        n.outputs[0].shape = shape
        return n
