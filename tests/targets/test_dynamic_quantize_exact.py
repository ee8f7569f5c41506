"""DynamicQuantizeLinear -> MatMulInteger (the int8 T5 models of issue 12) against an exact numpy
model of the ONNX spec, with values on the rounding and saturation edges.

The spec: y_scale = (max(x, 0) - min(x, 0)) / 255, y_zero_point = saturate(round(0 - min(x, 0) / y_scale)),
y = saturate(round(x / y_scale) + y_zero_point), rounding half to even; MatMulInteger is the exact
integer product of (a - a_zero_point) and (b - b_zero_point).

The data: scale 0.125 (exactly 31.875 / 255), -min / scale = 101.5 (a zero point tie, rounded to
102), x / scale on every half step (ties to even both ways) and the maximum 153.5 -> 154 + 102 = 256,
saturated to 255. The products then pair 255 · 127 twice (64770), which onnxruntime's u8s8 GEMM
saturates to 32767 on x86 without VNNI: onnxruntime as written is only a reference where it is
exact (`ort_u8s8_exact`); with the weights re-encoded as uint8 it always is."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgec.reference import run_ort
from tests.targets.lowering_util import edgec_run
from tests.targets.qlinear_util import ort_u8s8_exact, run_ort_exact

OUTS = ["q", "scale", "zp", "acc"]


def _model(b: np.ndarray, b_zp: np.int8, rows: int):
    k = b.shape[0]
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "scale", "zp"]),
             helper.make_node("MatMulInteger", ["q", "b", "zp", "b_zp"], ["acc"])]
    g = helper.make_graph(
        nodes, "dql_mmi", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, rows, k])],
        [helper.make_tensor_value_info("q", TensorProto.UINT8, [2, rows, k]),
         helper.make_tensor_value_info("scale", TensorProto.FLOAT, []),
         helper.make_tensor_value_info("zp", TensorProto.UINT8, []),
         helper.make_tensor_value_info("acc", TensorProto.INT32, [2, rows, b.shape[1]])],
        [numpy_helper.from_array(b, "b"), numpy_helper.from_array(np.asarray(b_zp, np.int8), "b_zp")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def _reference(x: np.ndarray, b: np.ndarray, b_zp) -> dict[str, np.ndarray]:
    """The ONNX spec in numpy: float32 arithmetic as written, np.round (half to even), exact integers."""
    hi, lo = np.maximum(x.max(), np.float32(0)), np.minimum(x.min(), np.float32(0))
    scale = np.float32((hi - lo) / np.float32(255))
    zp = np.uint8(np.clip(np.round(np.float32(0) - lo / scale), 0, 255))
    q = np.clip(np.round(x / scale) + np.float32(zp), 0, 255).astype(np.uint8)
    acc = np.matmul(q.astype(np.int64) - int(zp), b.astype(np.int64) - int(b_zp))
    assert np.abs(acc).max() < 2**31
    return {"q": q, "scale": scale, "zp": zp, "acc": acc.astype(np.int32)}


def _edge_inputs(k: int, rows: int, seed: int) -> np.ndarray:
    """x with min -12.6875 and max 19.1875 (scale 0.125, -min / scale = 101.5), every other element
    on a half step (k + 0.5) · 0.125 or a whole one; rows of the maximum so that 255 meets 127."""
    rng = np.random.default_rng(seed)
    steps = rng.integers(-101, 154, size=(2, rows, k)).astype(np.float32)
    halves = rng.integers(0, 2, size=steps.shape).astype(np.float32) * np.float32(0.5)
    x = (steps + halves) * np.float32(0.125)
    x[0, 0, :] = 19.1875                 # 153.5 -> 154 (even) + 102 = 256 -> 255
    x[1, 0, :] = -12.6875                # -101.5 -> -102 (even) + 102 = 0
    x[0, 1, :4] = [0.0625, -0.0625, 0.1875, -0.1875]  # 0.5 -> 0, -0.5 -> -0, 1.5 -> 2, -1.5 -> -2
    return x


@pytest.mark.parametrize("k", [8, 640])  # 8: edgec's exact float32 product; 640: its int32 product
def test_dynamic_quantize_matmul_integer_is_exact_on_the_edges(k, tmp_path):
    rows, n = 3, 5
    b = np.full((k, n), 127, np.int8)
    b[:, 1] = -128
    b[:, 2:] = np.random.default_rng(k).integers(-128, 128, size=(k, n - 2)).astype(np.int8)
    b_zp = np.int8(-1)
    proto = _model(b, b_zp, rows)
    for seed in range(2):
        x = _edge_inputs(k, rows, seed)
        want = _reference(x, b, b_zp)
        assert want["scale"] == np.float32(0.125) and want["zp"] == 102
        assert want["q"][0, 0, 0] == 255 and want["q"][1, 0, 0] == 0
        assert list(want["q"][0, 1, :4]) == [102, 102, 104, 100]
        (tmp_path / f"s{seed}").mkdir()
        got, report = edgec_run(proto, {"x": x}, tmp_path / f"s{seed}")
        assert {"DynamicQuantizeLinear", "MatMulInteger"} <= set(report.by_edgec), report.to_json()
        for name in OUTS:
            assert got[name].dtype == want[name].dtype and got[name].shape == want[name].shape, name
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"edgec: {name}")
        # onnxruntime with exact (u8u8) products agrees with the numpy spec bit for bit
        exact = run_ort_exact(proto, {"x": x})
        for name in OUTS:
            np.testing.assert_array_equal(exact[name], want[name], err_msg=f"onnxruntime, uint8 weights: {name}")
        # as written, its u8s8 products are exact only with VNNI; elsewhere the 255 · 127 pairs saturate
        as_written = run_ort(proto, {"x": x})["acc"]
        if ort_u8s8_exact():
            np.testing.assert_array_equal(as_written, want["acc"])
        else:
            assert as_written[0, 0, 0] != want["acc"][0, 0, 0]
