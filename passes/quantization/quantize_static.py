"""quantize-static: calibrated QDQ around Conv / MatMul / Gemm (int8 weights; uint8, int8 or int16 activations).

What it does, per quantizable node (a top-level float32 Conv with a constant weight, a MatMul, or a
Gemm with a constant B; not named in `exclude`):
- weights: int8, symmetric, per output channel (Conv axis 0, MatMul B the last axis, Gemm B by
  transB), or per tensor with per_channel=0, as DequantizeLinear(constant);
- bias (Conv B, Gemm 1-D C): int32 with scale x_scale * w_scale where that fits, else left float;
- activations: every non-constant float input, and the output (after a Relu/Clip that is its only
  consumer), get one QuantizeLinear -> DequantizeLinear pair per tensor, with per-tensor
  parameters from a calibrated range (`method`: minmax, percentile, entropy, mse; _histogram.py).
The result is a QDQ model: onnxruntime runs it as written, edgec's backend fuses it into integer
kernels where it can. Q/DQ are ai.onnx ops when the model's opset has them (13; 16-bit: 21) and
com.microsoft's otherwise, so a model of any opset is quantized without changing its other ops.

Idempotent (pipelines repeat to a fixpoint): a node reading a dequantized value and a tensor
already quantized are left alone, so a QDQ model is not quantized twice.

Calibration runs the float model in onnxruntime on `samples` inputs from `data` (see _data.py;
empty: seeded random, with a warning). What it cannot prove safe ends there: a tensor that held
NaN or Inf in calibration, or that no sample reached, is left float (and logged); a node whose
weight is not a finite constant is left float."""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir

from edgec.errors import PipelineError
from edgec.infra.pass_base import Pass, PassResult, register_pass
from edgec.ir.analysis import graph_inputs
from edgec.ir.constants import const_array
from edgec.ir.domains import is_onnx_domain
from edgec.passes.cleanup._common import int_attr
from edgec.passes.quantization import _data
from edgec.passes.quantization._calibrate import collect
from edgec.passes.quantization._histogram import METHODS, pick_range
from edgec.passes.quantization._qdq import Builder, qdq_domain
from edgec.passes.quantization._qparams import QRANGE, activation_params, bias_params, weight_params

logger = logging.getLogger(__name__)

FOLLOWERS = {"Relu", "Clip"}


def weight_slot(node: ir.Node) -> tuple[int, int | None] | None:
    """(input index of the constant weight, per-channel axis) of a quantizable node, else None."""
    w = node.inputs[1] if len(node.inputs) > 1 else None
    arr = const_array(w)
    if node.op_type == "Conv":
        return (1, 0) if arr is not None and arr.ndim >= 3 else None
    if node.op_type == "Gemm":
        return (1, 0 if int_attr(node, "transB", 0) else 1) if arr is not None else None
    if node.op_type == "MatMul":
        return (1, arr.ndim - 1) if arr is not None and arr.ndim >= 2 else (-1, None)
    return None


def _float32(v: ir.Value | None) -> bool:
    return v is not None and v.dtype == ir.DataType.FLOAT


def _is_op(node: ir.Node | None, op: str) -> bool:
    return node is not None and node.op_type == op and node.domain in ("", "ai.onnx", "com.microsoft")


def already_quantized(v: ir.Value | None) -> bool:
    """A dequantized value, or one a QuantizeLinear reads: quantized already (by this pass in an
    earlier round of the pipeline, or by the tool that made the model)."""
    return v is not None and (_is_op(v.producer(), "DequantizeLinear")
                              or any(_is_op(u[0], "QuantizeLinear") for u in v.uses()))


def quantizable(model: ir.Model, exclude: set[str]) -> list[ir.Node]:
    out = []
    for n in model.graph:
        if not is_onnx_domain(n.domain) or n.name in exclude or n.op_type not in ("Conv", "MatMul", "Gemm"):
            continue
        if any(_is_op(v.producer(), "DequantizeLinear") for v in n.inputs[:2] if v is not None):
            continue
        slot = weight_slot(n)
        if slot is None or not all(_float32(v) for v in n.inputs[:2]) or not _float32(n.outputs[0]):
            continue
        if slot[0] >= 0 and not np.all(np.isfinite(const_array(n.inputs[slot[0]]))):
            continue
        out.append(n)
    return out


def output_tensor(node: ir.Node) -> ir.Value:
    """The node's output, or that of a Relu/Clip that is its only consumer (quantized after it)."""
    y = node.outputs[0]
    uses = list(y.uses())
    if len(uses) == 1 and not y.is_graph_output():
        f = uses[0][0]
        if f.op_type in FOLLOWERS and is_onnx_domain(f.domain) and _float32(f.outputs[0]):
            return f.outputs[0]
    return y


def activation_tensors(nodes: list[ir.Node]) -> list[ir.Value]:
    seen: dict[int, ir.Value] = {}
    for n in nodes:
        slot = weight_slot(n)
        for i, v in enumerate(n.inputs[:2]):
            if v is not None and i != slot[0] and const_array(v) is None and not already_quantized(v):
                seen.setdefault(id(v), v)
        y = output_tensor(n)
        if y.uses() and not already_quantized(y):
            seen.setdefault(id(y), y)
    return [v for v in seen.values() if v.name]


def _source_scale(x: ir.Value, scales: dict[int, np.float32]) -> np.float32 | None:
    """The activation scale of x = DequantizeLinear(QuantizeLinear(v)) inserted by this pass."""
    dq = x.producer()
    q = dq.inputs[0].producer() if dq is not None and dq.op_type == "DequantizeLinear" else None
    return scales.get(id(q.inputs[0])) if q is not None and q.op_type == "QuantizeLinear" else None


@register_pass
class QuantizeStatic(Pass):
    """Calibrated QDQ around Conv/MatMul/Gemm: int8 per-channel weights, uint8/int8/int16 activations."""

    name = "quantize-static"
    changes_numerics = True
    # calibration_cache (API only, not pipeline text): a dict {tensor name: TensorStats} reused
    # across runs on the same model and data (the accuracy-budget search re-quantizes many times)
    options = {"activations": "uint8", "symmetric": False, "per_channel": True, "method": "minmax",
               "percentile": 99.99, "data": "", "preprocess": "", "samples": 64, "exclude": "", "seed": 0,
               "calibration_cache": None}

    def run(self, model: ir.Model, ctx) -> PassResult:
        o = self.opts  # data, preprocess, exclude: usually from the context (paths, lists)
        qtype = o["activations"]
        if qtype not in QRANGE:
            raise PipelineError(f"quantize-static: activations must be one of {sorted(QRANGE)}, got '{qtype}'")
        if o["method"] not in METHODS:
            raise PipelineError(f"quantize-static: method must be one of {', '.join(METHODS)}, got '{o['method']}'")
        nodes = quantizable(model, {s for s in o["exclude"].split(",") if s})
        if not nodes:
            return PassResult(model, False)
        acts = activation_tensors(nodes)
        if not o["data"] and not o["calibration_cache"]:
            logger.warning("quantize-static: no calibration data: ranges come from seeded random inputs in [-1, 1), "
                           "rarely those of real data (give --calibration-data)")
        cache = o["calibration_cache"] if isinstance(o["calibration_cache"], dict) else {}
        todo = [v.name for v in acts if v.name not in cache]
        if todo:
            feeds = _data.samples(graph_inputs(model), o["data"] or None, o["samples"], o["seed"], o["preprocess"])
            stats, n = collect(model, todo, feeds)
            if n == 0:
                raise PipelineError(f"quantize-static: no calibration samples in '{o['data']}'")
            cache.update(stats)
        stats = cache
        b = Builder(model, qdq_domain(model, {qtype}))
        levels = QRANGE[qtype][1] - QRANGE[qtype][0] + 1
        scales: dict[int, np.float32] = {}
        for v in acts:
            st = stats[v.name]
            if st.empty or st.nonfinite:
                logger.info("quantize-static: '%s' left float (%s in calibration)", v.name,
                            "non-finite values" if st.nonfinite else "no values")
                continue
            lo, hi = pick_range(st, o["method"], o["symmetric"], levels, o["percentile"])
            scale, zp = activation_params(lo, hi, qtype, o["symmetric"])
            b.qdq_after(v, scale, zp)
            scales[id(v)] = scale
        for n in nodes:
            self._weights(b, n, scales, o["per_channel"])
        return PassResult(model, True)

    def _weights(self, b: Builder, node: ir.Node, scales: dict[int, np.float32], per_channel: bool) -> None:
        wi, axis = weight_slot(node)
        if wi < 0:
            return
        x_scale = _source_scale(node.inputs[0], scales)
        w = const_array(node.inputs[wi])
        q, s, z = weight_params(w, axis if per_channel else None)
        base = node.inputs[wi].name or f"{node.name}_W"
        b.dequantized_const(node, wi, q, s, z, axis, base)
        bias_idx = 2
        bias = const_array(node.inputs[bias_idx]) if len(node.inputs) > bias_idx else None
        if bias is None or bias.ndim != 1 or x_scale is None or bias.dtype != np.float32:
            return
        if node.op_type == "Gemm" and bias.shape[0] != (s.shape[0] if s.ndim else bias.shape[0]):
            return
        qb = bias_params(bias, x_scale, s)
        if qb is None:
            return
        bq, bs = qb
        b.dequantized_const(node, bias_idx, bq, bs, np.zeros(bs.shape, np.int32), 0,
                            node.inputs[bias_idx].name or f"{node.name}_B")
