"""quantize-static: calibrated QDQ around Conv/MatMul/Gemm, checked against onnxruntime.

ONNX in, op list out, numerical check (the QDQ model against the float model in onnxruntime, and
edgec's compiled QDQ model against onnxruntime on the same QDQ model), cases where it must not
fire, opset-12 and int16 models."""

from __future__ import annotations

import collections

import numpy as np
import onnx
import onnx_ir as ir
import pytest

from edgec.infra.context import PassContext
from edgec.ir.loader import to_proto
from edgec.passes.quantization.quantize_static import QuantizeStatic
from edgec.reference import run_ort
from tests.passes.quant_models import cnn, samples, write_npy_dir


def _quantize(proto, tmp_path, **opts) -> ir.Model:
    model = ir.serde.deserialize_model(onnx.shape_inference.infer_shapes(proto, strict_mode=True))
    opts.setdefault("data", write_npy_dir(tmp_path / "calib", samples(16)))
    result = QuantizeStatic()(model, PassContext(options={"quantize-static": opts}))
    assert result.modified
    return result.model


def _ops(model) -> collections.Counter:
    return collections.Counter(f"{n.domain + '.' if n.domain else ''}{n.op_type}" for n in model.graph)


def _cos(a, b) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_int8_qdq_model_runs_in_onnxruntime_close_to_float(tmp_path):
    proto = cnn()
    q = to_proto(_quantize(proto, tmp_path))
    ops = _ops(ir.serde.deserialize_model(q))
    # activations: x, r1, r2 (after Relu), s (Add output, input of nothing quantizable -> no),
    # f (Gemm input), g (Gemm output = MatMul input); weights w1, w2, wg, wm; biases b2, bg
    assert ops["QuantizeLinear"] == 5 and ops["DequantizeLinear"] == 5 + 4 + 2, ops
    assert ops["Conv"] == 2 and ops["Gemm"] == 1 and ops["MatMul"] == 1
    dq_w = {n.input[0]: n for n in q.graph.node if n.op_type == "DequantizeLinear"}
    w1 = next(n for k, n in dq_w.items() if k.startswith("w1"))
    assert [a.i for a in w1.attribute if a.name == "axis"] == [0], "Conv weight is per output channel"
    types = {t.name: t.data_type for t in q.graph.initializer}
    assert types[next(k for k in dq_w if k.startswith("w1"))] == onnx.TensorProto.INT8
    assert types[next(k for k in dq_w if k.startswith("b2"))] == onnx.TensorProto.INT32
    onnx.checker.check_model(q, full_check=True)
    for x in samples(4, seed=7):
        ref, got = run_ort(proto, {"x": x})["y"], run_ort(q, {"x": x})["y"]
        assert got.shape == ref.shape and np.all(np.isfinite(got))
        assert _cos(ref, got) > 0.999, _cos(ref, got)


def test_edgec_runs_the_qdq_model_as_onnxruntime_does(tmp_path):
    from tests.targets.lowering_util import edgec_run

    q = to_proto(_quantize(cnn(), tmp_path))
    x = samples(1, seed=9)[0]
    (tmp_path / "build").mkdir()
    actual, _ = edgec_run(q, {"x": x}, tmp_path / "build")
    expected = run_ort(q, {"x": x})["y"]
    step = float(np.abs(expected).max()) / 127  # the last Q before the MatMul: about one step of its scale
    np.testing.assert_allclose(actual["y"], expected, atol=step, rtol=0, equal_nan=False)


def test_int16_activations_are_more_accurate_than_int8(tmp_path):
    proto = cnn()
    q8 = to_proto(_quantize(proto, tmp_path))
    q16 = to_proto(_quantize(proto, tmp_path / "b", activations="int16", symmetric=True))
    qtypes = {i.data_type for i in q16.graph.initializer if i.name.endswith("zero_point")}
    assert onnx.TensorProto.INT16 in qtypes
    assert any(o.domain == "com.microsoft" for o in q16.opset_import), "16-bit Q/DQ at opset 17: com.microsoft"
    e8, e16 = [], []  # mean over inputs: the int8 weights' error, common to both, dominates one sample
    for x in samples(10, seed=3):
        ref = run_ort(proto, {"x": x})["y"]
        e8.append(np.abs(run_ort(q8, {"x": x})["y"] - ref).max())
        e16.append(np.abs(run_ort(q16, {"x": x})["y"] - ref).max())
    assert np.mean(e16) < 0.9 * np.mean(e8), (np.mean(e16), np.mean(e8))


def test_opset_12_model_gets_per_channel_qdq_without_touching_its_opset(tmp_path):
    proto = cnn(opset=12)
    q = to_proto(_quantize(proto, tmp_path))
    assert [o.version for o in q.opset_import if o.domain in ("", "ai.onnx")] == [12]
    dq = [n for n in q.graph.node if n.op_type == "DequantizeLinear"]
    assert dq and all(n.domain == "com.microsoft" for n in dq)
    assert any(a.name == "axis" for n in dq for a in n.attribute)
    x = samples(1, seed=5)[0]
    assert _cos(run_ort(proto, {"x": x})["y"], run_ort(q, {"x": x})["y"]) > 0.999


@pytest.mark.parametrize("method", ["percentile", "entropy", "mse"])
def test_every_calibration_method_gives_a_working_model(tmp_path, method):
    proto = cnn()
    q = to_proto(_quantize(proto, tmp_path, method=method))
    x = samples(1, seed=11)[0]
    assert _cos(run_ort(proto, {"x": x})["y"], run_ort(q, {"x": x})["y"]) > 0.99


def test_a_second_run_changes_nothing(tmp_path):
    model = _quantize(cnn(), tmp_path)
    again = QuantizeStatic()(model, PassContext(options={"quantize-static": {"data": str(tmp_path / "calib")}}))
    assert not again.modified


def test_does_not_fire_without_quantizable_float_ops(tmp_path):
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    m = ir.serde.deserialize_model(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    assert not QuantizeStatic()(m, PassContext()).modified
    m64 = ir.serde.deserialize_model(_double(cnn()))
    assert not QuantizeStatic()(m64, PassContext()).modified, "float64 ops are not quantized"


def _double(proto):
    """The cnn with float64 weights and I/O."""
    from onnx import numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(proto)
    for i, t in enumerate(m.graph.initializer):
        m.graph.initializer[i].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float64), t.name))
    for v in [*m.graph.input, *m.graph.output]:
        v.type.tensor_type.elem_type = onnx.TensorProto.DOUBLE
    return m


def test_excluded_node_and_nonfinite_tensor_stay_float(tmp_path):
    data = samples(8)
    data[3][0, 0, 0, 0] = np.nan  # the input held NaN in calibration: its range is unknown
    model = _quantize(cnn(), tmp_path, data=write_npy_dir(tmp_path / "nan", data), exclude="matmul")
    q = to_proto(model)
    quantized = {n.input[0] for n in q.graph.node if n.op_type == "QuantizeLinear"}
    assert "x" not in quantized, "a tensor with NaN in calibration must stay float"
    mm = next(n for n in q.graph.node if n.op_type == "MatMul")
    assert mm.input[1] == "wm", "the excluded MatMul keeps its float weight"
    x = samples(1, seed=2)[0]
    out = run_ort(q, {"x": x})["y"]
    assert np.all(np.isfinite(out))
