"""The quantization step of each graph output of a quantized model: how `--verify` bounds the
error of a quantized model against its own QDQ graph in quantization steps, not in float ulps.

An output's step is the scale of the DequantizeLinear that produces it (the largest, when per
channel), looking through ops that only move values (Reshape, Transpose, Flatten, Squeeze,
Unsqueeze, Identity); an integer output produced by a QuantizeLinear has step 1 (one integer
unit). An output computed in float after the last DequantizeLinear (a Softmax on dequantized
logits, an unquantized tail) has no step: None, and the verifier falls back to a bound relative
to the output's magnitude (2 int8 steps of max|output|).
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.ir.constants import const_array

MOVES_VALUES = frozenset({"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Identity"})
_DOMAINS = ("", "ai.onnx", "com.microsoft")


def output_step(v: ir.Value) -> float | None:
    """The quantization step of graph output `v` (see the module doc), or None."""
    node = v.producer()
    while node is not None and node.domain in _DOMAINS and node.op_type in MOVES_VALUES:
        node = node.inputs[0].producer() if node.inputs and node.inputs[0] is not None else None
    if node is None or node.domain not in _DOMAINS:
        return None
    if node.op_type == "QuantizeLinear":
        return 1.0
    if node.op_type == "DequantizeLinear":
        s = const_array(node.inputs[1] if len(node.inputs) > 1 else None)
        if s is None or s.size == 0 or not np.all(np.isfinite(s)):
            return None
        return float(np.max(np.abs(s.astype(np.float64))))
    return None


def output_steps(model: ir.Model) -> dict[str, float | None]:
    return {v.name: output_step(v) for v in model.graph.outputs}
