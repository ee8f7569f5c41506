"""float32 GELU (erf form, as torch exports it and recognize-gelu fuses it) is legalized with the
polynomial erf, vectorized, instead of libm's scalar erf per element (PP-OCRv6's conv + GELU
kernels: 11.6 -> 1.2 ms); it still matches onnxruntime's unfused graph, special values included."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from edgec.api import CompileOptions, compile_model, run_artifact
from edgec.compare import assert_outputs_match
from edgec.reference import run_ort


def test_gelu_from_the_erf_pattern_matches_onnxruntime(tmp_path):
    n = 4099
    nodes = [h.make_node("Div", ["x", "sqrt2"], ["d"]), h.make_node("Erf", ["d"], ["e"]),
             h.make_node("Add", ["e", "one"], ["a"]), h.make_node("Mul", ["x", "a"], ["m"]),
             h.make_node("Mul", ["m", "half"], ["y"])]
    inits = [nh.from_array(np.float32(np.sqrt(2)), "sqrt2"), nh.from_array(np.float32(1), "one"),
             nh.from_array(np.float32(0.5), "half")]
    g = h.make_graph(nodes, "gelu", [h.make_tensor_value_info("x", TP.FLOAT, [n])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [n])], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, tmp_path / "gelu.onnx")
    art = compile_model(tmp_path / "gelu.onnx", tmp_path / "art", CompileOptions(target="x86-64"))
    assert art.metadata["lowering"]["edgec"].get("Gelu") == 1, art.metadata["lowering"]  # fused, then lowered
    x = np.concatenate([np.linspace(-12, 12, n - 9, dtype=np.float32),
                        np.array([0, -0.0, 1e-30, -1e-30, 3.4e38, -3.4e38, np.inf, -np.inf, np.nan], np.float32)])
    got, ref = run_artifact(art, {"x": x}), run_ort(m, {"x": x})
    assert_outputs_match(got, ref, atol=1e-6, rtol=1e-6)


def _gelu_tanh_model(n, cube_coef: float = 0.044715) -> onnx.ModelProto:
    """GPT-2's GELU as torch exports it: (0.5 x) (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), x [batch, seq, n]."""
    nodes = [h.make_node("Mul", ["x", "half"], ["hx"]), h.make_node("Pow", ["x", "three"], ["p"]),
             h.make_node("Mul", ["p", "coef"], ["q"]), h.make_node("Add", ["x", "q"], ["r"]),
             h.make_node("Mul", ["r", "c"], ["s"]), h.make_node("Tanh", ["s"], ["t"]),
             h.make_node("Add", ["t", "one"], ["u"]), h.make_node("Mul", ["hx", "u"], ["y"])]
    inits = [nh.from_array(np.float32(v), name) for v, name in
             ((0.5, "half"), (3.0, "three"), (cube_coef, "coef"), (np.sqrt(2 / np.pi), "c"), (1.0, "one"))]
    g = h.make_graph(nodes, "gelu_tanh", [h.make_tensor_value_info("x", TP.FLOAT, ["batch", "seq", n])],
                     [h.make_tensor_value_info("y", TP.FLOAT, ["batch", "seq", n])], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def _special_inputs(n: int, rows: int) -> np.ndarray:
    rng = np.random.default_rng(5)
    special = np.array([0, -0.0, 1e-30, -1e-30, 1e-4, -1e-4, 0.6, -0.6, 1e4, -1e4, 3.4e38, -3.4e38,
                        np.inf, -np.inf, np.nan], np.float32)
    x = np.concatenate([np.linspace(-12, 12, n * rows - special.size - 300, dtype=np.float32),
                        (rng.standard_normal(300) * 100).astype(np.float32), special])
    return x.reshape(1, rows, n)


def test_gelu_tanh_form_is_recognized_and_matches_onnxruntime(tmp_path):
    """The tanh form (GPT-2's MLP) becomes one Gelu, lowered with the polynomial tanh (vectorized, symbolic
    rows as a decoder's); within 1e-5 of onnxruntime's unfused graph, NaN and infinities as it gives them
    (+inf -> inf, -inf -> NaN: -inf times 0)."""
    n = 3072
    m = _gelu_tanh_model(n)
    onnx.save(m, tmp_path / "gelu.onnx")
    art = compile_model(tmp_path / "gelu.onnx", tmp_path / "art", CompileOptions(target="host", symbolic_dims=True))
    assert art.metadata["lowering"]["edgec"].get("Gelu") == 1, art.metadata["lowering"]
    for rows in (1, 3):
        x = _special_inputs(n, rows)
        got, ref = run_artifact(art, {"x": x}), run_ort(m, {"x": x})
        assert_outputs_match(got, ref, atol=1e-5, rtol=1e-6)


def test_near_gelu_tanh_is_not_fused(tmp_path):
    """Another cube coefficient is not GELU: the chain stays as it is, and still matches onnxruntime."""
    m = _gelu_tanh_model(64, cube_coef=0.05)
    onnx.save(m, tmp_path / "g.onnx")
    art = compile_model(tmp_path / "g.onnx", tmp_path / "art", CompileOptions(target="host", symbolic_dims=True))
    assert not art.metadata["lowering"]["edgec"].get("Gelu"), art.metadata["lowering"]
    x = np.random.default_rng(1).standard_normal((1, 2, 64)).astype(np.float32) * 3
    assert_outputs_match(run_artifact(art, {"x": x}), run_ort(m, {"x": x}), atol=1e-5, rtol=1e-5)
