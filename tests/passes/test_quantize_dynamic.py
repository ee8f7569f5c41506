"""quantize-dynamic: MatMul/Gemm weights to int8, activations quantized at run time (standard ops).

Checked against the float model in onnxruntime (exact integer products), edgec against
onnxruntime on the quantized model, and the cases where it must not fire."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgec.errors import PipelineError
from edgec.infra.context import PassContext
from edgec.ir.loader import to_proto
from edgec.passes.quantization.quantize_dynamic import QuantizeDynamic
from edgec.reference import run_ort
from edgec.reference_exact import exact_ort_model


def _model(opset=17, alpha=1.0):
    r = np.random.default_rng(0)
    inits = [numpy_helper.from_array(r.normal(0, 0.2, (32, 48)).astype(np.float32), "w1"),
             numpy_helper.from_array(r.normal(0, 0.2, (24, 48)).astype(np.float32), "w2"),
             numpy_helper.from_array(r.normal(0, 0.1, 24).astype(np.float32), "b2")]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="proj"),          # [2,10,48]
             helper.make_node("Relu", ["h"], ["hr"]),
             helper.make_node("Gemm", ["hr2", "w2", "b2"], ["g"], transB=1, alpha=alpha, name="fc"),
             helper.make_node("Reshape", ["hr", "shape"], ["hr2"]),
             helper.make_node("Reshape", ["g", "shape_out"], ["gg"]),
             helper.make_node("Transpose", ["gg"], ["gt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["gg", "gt"], ["y"], name="scores")]          # act x act
    inits += [numpy_helper.from_array(np.array([20, 48], np.int64), "shape"),
              numpy_helper.from_array(np.array([2, 10, 24], np.int64), "shape_out")]
    nodes = [nodes[0], nodes[1], nodes[3], nodes[2], nodes[4], nodes[5], nodes[6]]
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 10, 32])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 10, 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return onnx.shape_inference.infer_shapes(m, strict_mode=True)


def _run_pass(proto):
    m = ir.serde.deserialize_model(proto)
    r = QuantizeDynamic()(m, PassContext())
    return to_proto(r.model), r.modified


def _x(seed):
    return np.random.default_rng(seed).normal(0, 1, (2, 10, 32)).astype(np.float32)


def test_weights_int8_activations_at_run_time_close_to_float():
    proto = _model()
    q, modified = _run_pass(proto)
    assert modified
    ops = [n.op_type for n in q.graph.node]
    assert ops.count("MatMulInteger") == 2 and ops.count("DynamicQuantizeLinear") == 2
    assert "Gemm" not in ops and ops.count("MatMul") == 1, "the activation x activation MatMul stays float"
    assert [o.name for o in q.graph.output] == ["y"]
    onnx.checker.check_model(q, full_check=True)
    for s in range(3):
        ref = run_ort(proto, {"x": _x(s)})["y"].ravel().astype(np.float64)
        got = run_ort(*exact_ort_model(q, {"x": _x(s)}))["y"].ravel().astype(np.float64)
        assert np.all(np.isfinite(got))
        assert ref @ got / np.linalg.norm(ref) / np.linalg.norm(got) > 0.999


def test_edgec_matches_onnxruntime_on_the_dynamic_model(tmp_path):
    from tests.targets.lowering_util import edgec_run

    q, _ = _run_pass(_model())
    got, report = edgec_run(q, {"x": _x(4)}, tmp_path)
    assert not report.by_frontend.get("MatMulInteger") and not report.by_frontend.get("DynamicQuantizeLinear")
    exp = run_ort(*exact_ort_model(q, {"x": _x(4)}))["y"]
    np.testing.assert_allclose(got["y"], exp, atol=1e-4, rtol=1e-5, equal_nan=False)


def test_gemm_with_alpha_is_left_float_and_second_run_changes_nothing():
    q, _ = _run_pass(_model(alpha=0.5))
    ops = [n.op_type for n in q.graph.node]
    assert ops.count("Gemm") == 1 and ops.count("MatMulInteger") == 1
    assert not _run_pass(q)[1]


def test_opset_10_is_an_error():
    with pytest.raises(PipelineError, match="opset >= 11"):
        _run_pass(_model(opset=10))
