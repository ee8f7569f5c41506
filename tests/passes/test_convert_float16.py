"""convert-float16: float32 compute -> float16 / bfloat16 with Casts at region edges; Softmax, norms
and summing reductions stay float32 (the `keep` list changes that); graph I/O keeps float32.

float16 results are checked in onnxruntime against the float32 model (every output compared:
NaN/Inf, missing outputs, shape or dtype changes are mismatches); bfloat16 models do not run in
onnxruntime (no CPU kernels): they are checked with the ONNX checker here and compiled and run by
edgec in tests/cli/test_quantize_float16_cli.py."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest

from edgec.infra.context import PassContext
from edgec.passes.quantization.convert_float16 import FP16_MAX, MARK, ConvertFloat16
from edgec.rewrite.testing import assert_model_outputs_match, op_types, parse_proto, run_pipeline

MLP = """<ir_version: 8, opset_import: ["" : 17]>
mlp (float[4,16] x) => (float[4,8] y, float[4,8] h) {
  w1 = Constant <value = float[16,8] {%s}> ()
  b1 = Constant <value = float[8] {0.1, -0.2, 0.3, 0.0, 0.05, -0.1, 0.2, 0.15}> ()
  gamma = Constant <value = float[8] {1, 1, 1, 1, 1, 1, 1, 1}> ()
  beta = Constant <value = float[8] {0, 0, 0, 0, 0, 0, 0, 0}> ()
  m = MatMul(x, w1)
  a = Add(m, b1)
  h = Relu(a)
  n = LayerNormalization <axis = -1> (h, gamma, beta)
  s = Mul(n, b1)
  y = Softmax <axis = -1> (s)
}""" % ", ".join(f"{v:.4f}" for v in np.random.default_rng(0).normal(0, 0.4, 128))

FP16, BF16 = ir.DataType.FLOAT16, ir.DataType.BFLOAT16


def _convert(proto, **opts):
    """(model, whether convert-float16 changed it) after infer-shapes."""
    model, _ = run_pipeline(proto, "infer-shapes")
    result = ConvertFloat16()(model, PassContext(options={"convert-float16": opts}))
    return result.model, result.modified


def _dtypes(model):
    return {v.name: v.dtype for n in model.graph for v in n.outputs}


def test_float16_compute_with_float32_softmax_layernorm_and_io():
    proto = parse_proto(MLP)
    model, modified = _convert(proto)
    assert modified and model.metadata_props[MARK] == "float16"
    d = _dtypes(model)
    assert d["m"] == d["a"] == d["s"] == FP16, d
    assert d["n"] == d["y"] == ir.DataType.FLOAT, "LayerNormalization and Softmax stay float32"
    assert [v.dtype for v in model.graph.inputs] == [ir.DataType.FLOAT]
    assert [(v.name, v.dtype) for v in model.graph.outputs] == [("y", ir.DataType.FLOAT), ("h", ir.DataType.FLOAT)]
    w = [v for v in model.graph.initializers.values() if v.dtype == FP16]
    assert {tuple(v.shape) for v in w} >= {(16, 8), (8,)}, "weights are stored in float16"
    assert not any(v.dtype == ir.DataType.FLOAT and tuple(v.shape) == (16, 8) for v in model.graph.initializers.values())
    # x -> fp16; h -> fp32 (LayerNorm reads it, graph output), n -> fp16 (Mul), s -> fp32 (Softmax)
    assert op_types(model).count("Cast") == 4, op_types(model)
    assert_model_outputs_match(proto, model, atol=2e-3, rtol=2e-3)  # float16: 11-bit mantissa, K = 16


def test_keep_list_is_the_users():
    proto = parse_proto(MLP)
    model, _ = _convert(proto, keep="")
    d = _dtypes(model)
    assert d["n"] == d["y_fp16"] == FP16, "with an empty keep list Softmax and LayerNormalization convert too"
    assert_model_outputs_match(proto, model, atol=5e-3, rtol=5e-3)
    model, _ = _convert(proto, keep="Relu,Softmax")
    d = _dtypes(model)
    assert d["h"] == ir.DataType.FLOAT and d["n"] == FP16 and d["y"] == ir.DataType.FLOAT, d
    assert_model_outputs_match(proto, model, atol=5e-3, rtol=5e-3)


def test_exclude_by_node_name():
    proto = parse_proto(MLP.replace("m = MatMul", "[mm] m = MatMul"))
    model, _ = _convert(proto, exclude="mm")
    d = _dtypes(model)
    assert d["m"] == ir.DataType.FLOAT and d["a"] == FP16, "the excluded MatMul stays; Add starts from its bias"


def test_bfloat16_follows_the_schema_of_the_opset():
    """bfloat16 is in MatMul/Add/Relu's schemas at opset 17 but not in Conv's (until 22): Conv and
    the Relu/Add that only read float32 tensors stay float32, MatMul converts."""
    from tests.passes.quant_models import cnn

    proto = cnn()
    model, modified = _convert(proto, dtype="bfloat16")
    assert modified and model.metadata_props[MARK] == "bfloat16"
    d = _dtypes(model)
    assert d["c1"] == d["r1"] == d["c2"] == d["s"] == ir.DataType.FLOAT, d
    assert d["g"] == BF16 and model.graph.outputs[0].dtype == ir.DataType.FLOAT
    assert op_types(model).count("Cast") == 2, op_types(model)  # f -> bf16 before Gemm, y back to float32
    onnx.checker.check_model(ir.serde.serialize_model(model), full_check=True)
    model16, _ = _convert(proto)
    assert all(t == FP16 for k, t in _dtypes(model16).items() if k in ("c1", "r1", "c2", "s", "g")), \
        "float16 is in every schema: the whole CNN converts"
    assert_model_outputs_match(proto, model16, atol=5e-3, rtol=5e-3)


def test_weights_beyond_float16_range_are_clipped_not_inf():
    proto = parse_proto("""<ir_version: 8, opset_import: ["" : 17]>
g (float[2,2] x) => (float[2,2] y) {
  w = Constant <value = float[2,2] {1e6, -1e6, 2.0, 3.0}> ()
  y = MatMul(x, w)
}""")
    model, _ = _convert(proto)
    w = next(v for v in model.graph.initializers.values() if v.dtype == FP16).const_value.numpy()
    assert np.all(np.isfinite(w)) and w.max() == FP16_MAX and w.min() == -FP16_MAX


@pytest.mark.parametrize("text", [
    """<ir_version: 8, opset_import: ["" : 17]>
g (float16[2,4] x) => (float16[2,4] y) {
  w = Constant <value = float[4,4] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}> ()
  r = Relu(x)
  f = Cast <to = 1> (r)
  m = MatMul(f, w)
  y = Cast <to = 10> (m)
}""",
    """<ir_version: 8, opset_import: ["" : 17]>
g (int64[2,4] x) => (int64[2,4] y) {
  a = Add(x, x)
  y = Mul(a, x)
}""",
    """<ir_version: 8, opset_import: ["" : 17]>
g (float[2,4] x) => (float[2,4] y) {
  y = Softmax(x)
}""",
    """<ir_version: 8, opset_import: ["" : 17]>
g (float[2,4] x, float[2,4] z) => (float[2,4] y) {
  y = Add(x, z)
}""",
], ids=["already-float16", "integer-only", "only-kept-ops", "no-weight-to-start-from"])
def test_does_not_fire(text):
    """An already float16 model (its float32 MatMul is float32 on purpose), an integer graph, a
    graph of kept ops, and an Add of two float32 inputs (rounding them would only lose precision)."""
    proto = parse_proto(text)
    model, modified = _convert(proto)
    assert not modified and MARK not in model.metadata_props
    assert op_types(model) == [n.op_type for n in proto.graph.node]


ATTENTION = """<ir_version: 8, opset_import: ["" : 17]>
g (float[1,2,4,16] x) => (float[1,2,4,8] y) <float s = {0.3535534}> {
  wq = Constant <value = float[16,8] {%s}> ()
  q = MatMul (x, wq)
  k = MatMul (x, wq)
  v = MatMul (x, wq)
  kt = Transpose <perm = [0, 1, 3, 2]> (k)
  qk = MatMul (q, kt)
  sc = Mul (qk, s)
  p = Softmax <axis = -1> (sc)
  y = MatMul (p, v)
}""" % ", ".join(f"{v:.4f}" for v in np.random.default_rng(1).normal(0, 0.3, 128))


def test_compile_quantize_keeps_attention_fused_and_float32():
    """compile --quantize fp16 recognizes attention first: its Softmax stays float32 inside one
    edgec.Attention (converted alone, the Casts around Softmax would break the fusion), while
    the projections compute in float16."""
    from edgec.api import CompileOptions, optimize
    from edgec.quantize import QuantizeOptions, quantize_options

    opts = CompileOptions(target=None, passes="eliminate-dead-code", quantize=quantize_options(QuantizeOptions(mode="fp16")))
    model, _ = optimize(ir.serde.deserialize_model(parse_proto(ATTENTION)), None, opts)
    att = [n for n in model.graph if n.op_type == "Attention"]
    assert len(att) == 1 and att[0].domain == "edgec", op_types(model)
    assert att[0].outputs[0].dtype == ir.DataType.FLOAT
    assert sum(n.op_type == "MatMul" and n.outputs[0].dtype == FP16 for n in model.graph) == 3, op_types(model)
