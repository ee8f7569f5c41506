"""Schemas of the ops onnxruntime registers in the *ONNX* domain although ONNX does not define
them, so that onnx's checker accepts models that use them.

onnxruntime-genai's model builder writes `SimplifiedLayerNormalization` (RMS normalization) in the
default domain, where onnxruntime registers it (since version 1) next to its com.microsoft
contrib ops; onnx's checker refuses an op it has no schema for in the default domain ("No Op
registered for SimplifiedLayerNormalization"), while it skips ops of other domains. Registering
the schema (inputs, outputs, types and attributes as onnxruntime declares them; no shape inference,
as for any contrib op) lets such a model through validation; the lowering is
targets/tvm/ops/ort_norm.py.
"""

from __future__ import annotations

import onnx
from onnx.defs import OpSchema

_FLOATS = ["tensor(float)", "tensor(float16)", "tensor(double)", "tensor(bfloat16)"]


def _simplified_layer_norm() -> OpSchema:
    fp = OpSchema.FormalParameter
    optional = OpSchema.FormalParameterOption.Optional
    attr = OpSchema.Attribute
    return OpSchema(
        "SimplifiedLayerNormalization", "", 1,
        "onnxruntime's RMS normalization: Y = X / sqrt(mean(X^2 over axis..) + epsilon) * scale.",
        inputs=[fp("X", "T"), fp("scale", "V")],
        outputs=[fp("Y", "V"), fp("inv_std_var", "U", param_option=optional)],
        type_constraints=[("T", _FLOATS, ""), ("U", ["tensor(float)", "tensor(double)"], ""), ("V", _FLOATS, "")],
        attributes=[attr("axis", onnx.helper.make_attribute("axis", -1), ""),
                    attr("epsilon", onnx.helper.make_attribute("epsilon", 1e-5), ""),
                    attr("stash_type", onnx.helper.make_attribute("stash_type", 1), "")])


def register_onnxruntime_onnx_domain_ops() -> None:
    """Register the schemas once per process (a second call, or onnx defining the op one day,
    leaves the existing schema)."""
    for schema in (_simplified_layer_norm(),):
        if onnx.defs.has(schema.name, schema.domain):
            continue
        onnx.defs.register_schema(schema)
