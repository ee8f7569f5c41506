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
