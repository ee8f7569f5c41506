"""onnxruntime as edgec's reference computes uint8 x int8 products exactly on every CPU.

MLAS's u8s8 GEMM on x86 without VNNI saturates pairs of products at int16 (edgec.reference_exact):
on such a machine (AMD Zen 3) `--verify` blamed fuse-qdq for onnxruntime's own error. run_ort and
run_reference_model re-encode such operands; on a VNNI or ARM host the results are the same, and
the re-encoding itself is checked everywhere."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgec.reference import run_ort, run_reference_model
from edgec.reference_exact import exact_reference

K = 8


def _qmatmul() -> onnx.ModelProto:
    """y = QLinearMatMul(x uint8 [1, K], w int8 [K, 1] all 127): x = 255 everywhere gives
    255 * 127 * 8 = 259080, which pairwise int16 saturation would cut to 4 * 32767."""
    inits = [numpy_helper.from_array(np.full((K, 1), 127, np.int8), "w"),
             numpy_helper.from_array(np.float32(1.0), "sx"), numpy_helper.from_array(np.uint8(0), "zx"),
             numpy_helper.from_array(np.float32(1.0), "sw"), numpy_helper.from_array(np.int8(0), "zw"),
             numpy_helper.from_array(np.float32(259080 / 200), "sy"), numpy_helper.from_array(np.uint8(0), "zy")]
    node = helper.make_node("QLinearMatMul", ["x", "sx", "zx", "w", "sw", "zw", "sy", "zy"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, K])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 1])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def _exact(x: np.ndarray) -> np.ndarray:
    acc = x.astype(np.int64) @ np.full((K, 1), 127, np.int64)
    return np.clip(np.rint(acc / (259080 / 200)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("form", ["proto", "bytes", "path"])
def test_uint8_by_int8_products_are_exact_in_the_reference(form, tmp_path):
    model = _qmatmul()
    x = np.full((1, K), 255, np.uint8)
    arg = {"proto": model, "bytes": model.SerializeToString(), "path": str(tmp_path / "m.onnx")}[form]
    onnx.save(model, tmp_path / "m.onnx")
    got = run_ort(arg, {"x": x})["y"]
    assert got.shape == (1, 1) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, _exact(x))  # 200, not about 101
    np.testing.assert_array_equal(run_reference_model(str(tmp_path / "m.onnx"), {"x": x})["y"], _exact(x))


def test_the_int8_operand_is_re_encoded_and_a_float_model_left_as_given(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_qmatmul(), path)
    proto, feed = exact_reference(str(path), {"x": np.zeros((1, K), np.uint8)})
    node = proto.graph.node[0]
    w = next(t for t in proto.graph.initializer if t.name == node.input[3])
    assert w.data_type == TensorProto.UINT8 and numpy_helper.to_array(w).min() == 255  # 127 + 128
    assert numpy_helper.to_array(next(t for t in proto.graph.initializer if t.name == node.input[5])) == 128
    float_model = helper.make_model(helper.make_graph(
        [helper.make_node("Relu", ["a"], ["b"])], "f", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [2])]), ir_version=8)
    onnx.save(float_model, tmp_path / "f.onnx")
    assert exact_reference(str(tmp_path / "f.onnx"), {})[0] == str(tmp_path / "f.onnx")
