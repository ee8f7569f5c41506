"""The DynamicQuantizeLSTM recurrence kernel computes what onnxruntime computes, to the bit.

H is requantized to uint8 at every step, so the recurrence is ill-conditioned: where H / scale lies
within a few ulps of a rounding tie, one ulp of difference in H moves that element by a whole
quantization step, which R spreads to every gate of the next step. With its own activations
(polynomial exp, more accurate than onnxruntime's) the kernel matched onnxruntime's result only
to ~2e-7 per step, and tashkeel_rawi_int8's second LSTM crossed such a tie at step 53 of 64 (an
H element 2e-6 of a step from .5): its output moved by 0.022. The kernel now does onnxruntime's
arithmetic (MLAS's rational sigmoid / tanh with fused multiply-adds, (X·W + H·R) + bias, C's two
products rounded before their sum); with exact integer products (`run_ort_exact`) every output is
then equal to onnxruntime's bit for bit, wherever onnxruntime runs MLAS's FMA kernels (x86 with
AVX2 + FMA: checked first, else the test is skipped)."""

from __future__ import annotations

import functools

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime import quantization

from edgec.reference import run_ort
from tests.targets.qlinear_util import run_ort_exact

S, B, IN, H = 24, 2, 16, 64


def _fma(a, b, c):
    # float32 a * b + c with one rounding (a * b is exact in float64)
    return (a.astype(np.float64) * np.float64(b) + np.float64(c)).astype(np.float32)


def _rational(x, bound, p, q):
    x = np.clip(x, np.float32(-bound), np.float32(bound))
    s = x * x
    num, den = _fma(s, np.float32(p[0]), np.float32(p[1])), _fma(s, np.float32(q[0]), np.float32(q[1]))
    for k in p[2:]:
        num = _fma(s, num, np.float32(k))
    for k in q[2:]:
        den = _fma(s, den, np.float32(k))
    return x * num / den


@functools.cache
def _ort_runs_mlas_fma_activations() -> bool:
    """Whether onnxruntime's Sigmoid and Tanh here are MLAS's FMA kernels (what the kernel copies)."""
    from edgec.targets.tvm import mathfuncs as mf

    x = np.linspace(-20, 20, 4001, dtype=np.float32)
    want = {"Sigmoid": np.maximum(_rational(x, 18.0, mf._LOGISTIC_P, mf._LOGISTIC_Q) + np.float32(0.5), np.float32(0)),
            "Tanh": _rational(x, 9.0, mf._TANH_P, mf._TANH_Q)}
    for op, w in want.items():
        g = helper.make_graph([helper.make_node(op, ["x"], ["y"])], "a",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [x.size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [x.size])])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
        m.ir_version = 8
        if not np.array_equal(run_ort(m, {"x": x})["y"], w):
            return False
    return True


def _model(path, seed):
    """A float bidirectional LSTM (with initial state) for quantize_dynamic."""
    rng = np.random.default_rng(seed)
    inits = [numpy_helper.from_array(rng.uniform(-0.5, 0.5, (2, 4 * H, IN)).astype(np.float32), "W"),
             numpy_helper.from_array(rng.uniform(-0.4, 0.4, (2, 4 * H, H)).astype(np.float32), "R"),
             numpy_helper.from_array(rng.uniform(-0.2, 0.2, (2, 8 * H)).astype(np.float32), "B")]
    ins = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [S, B, IN])] + [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, B, H]) for n in ("h0", "c0")]
    node = helper.make_node("LSTM", ["x", "W", "R", "B", "", "h0", "c0"], ["y", "yh", "yc"], hidden_size=H,
                            direction="bidirectional", name="lstm0")
    outs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [S, 2, B, H]),
            helper.make_tensor_value_info("yh", TensorProto.FLOAT, [2, B, H]),
            helper.make_tensor_value_info("yc", TensorProto.FLOAT, [2, B, H])]
    m = helper.make_model(helper.make_graph([node], "lstm", ins, outs, inits), opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)


def test_dynamic_quantize_lstm_kernel_equals_onnxruntime_bit_for_bit(tmp_path):
    from edgec.api import CompileOptions, compile_model, run_artifact

    if not _ort_runs_mlas_fma_activations():
        pytest.skip("onnxruntime's Sigmoid / Tanh here are not MLAS's FMA kernels")
    _model(tmp_path / "f.onnx", 0)
    quantization.quantize_dynamic(tmp_path / "f.onnx", tmp_path / "q.onnx", weight_type=quantization.QuantType.QInt8)
    proto = onnx.load(tmp_path / "q.onnx")
    assert [n.op_type for n in proto.graph.node] == ["DynamicQuantizeLSTM"]
    art = compile_model(tmp_path / "q.onnx", tmp_path / "art", CompileOptions(target="x86-64"))
    assert art.metadata["lowering"]["edgec"] == {"DynamicQuantizeLSTM": 1}, art.metadata["lowering"]
    for seed in range(4):
        rng = np.random.default_rng(seed)
        inputs = {"x": rng.uniform(-1, 1, (S, B, IN)).astype(np.float32),
                  "h0": rng.uniform(-0.5, 0.5, (2, B, H)).astype(np.float32),
                  "c0": rng.uniform(-0.5, 0.5, (2, B, H)).astype(np.float32)}
        got, want = run_artifact(art, inputs), run_ort_exact(proto, inputs)
        for name, w in want.items():
            diff = np.abs(got[name].astype(np.float64) - w)
            assert np.array_equal(got[name], w), (f"seed {seed}, {name}: {np.count_nonzero(diff)} of {diff.size} "
                                                  f"elements differ, by up to {diff.max():.3g}")
