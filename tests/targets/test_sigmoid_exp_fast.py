"""float32 Sigmoid (and Exp) are legalized with TOPI's polynomial exp, vectorized, instead of
libm's scalar expf per element; they match onnxruntime over the whole float range, and NaN stays
NaN (fast_exp clamps its input, which alone would turn NaN into a number)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h

from edgec.api import CompileOptions, compile_model, run_artifact
from edgec.compare import assert_outputs_match
from edgec.reference import run_ort

SPECIAL = [0, -0.0, 1e-30, -1e-30, 88.0, 88.8, -87.0, -88.8, -103.0, 200.0, -200.0, 3.4e38, -3.4e38,
           np.inf, -np.inf, np.nan]


@pytest.mark.parametrize("op", ["Sigmoid", "Exp"])
def test_matches_onnxruntime_with_special_values(tmp_path, op):
    n = 4096 + len(SPECIAL)
    g = h.make_graph([h.make_node(op, ["x"], ["y"])], "f", [h.make_tensor_value_info("x", TP.FLOAT, [n])],
                     [h.make_tensor_value_info("y", TP.FLOAT, [n])])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, tmp_path / "f.onnx")
    art = compile_model(tmp_path / "f.onnx", tmp_path / "art", CompileOptions(target="x86-64"))
    x = np.concatenate([np.linspace(-30, 30, 4096, dtype=np.float32), np.array(SPECIAL, np.float32)])
    got, ref = run_artifact(art, {"x": x}), run_ort(m, {"x": x})
    assert_outputs_match(got, ref, atol=1e-6, rtol=2e-6)
