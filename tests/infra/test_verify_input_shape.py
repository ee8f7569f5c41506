"""`edgec compile --verify --input-shape` (issue 12): the verifier's seeded inputs take the
--input-shape dims (TensorInfo is frozen: it used to crash with FrozenInstanceError, exit 1)."""

from __future__ import annotations

import numpy as np
import onnx

from edgec.artifact import load_artifact
from edgec.reference import run_ort, seeded_inputs
from tests.conftest import model_from_text
from tests.e2e.compile_check import assert_matches_ort

MODEL = """<ir_version: 8, opset_import: ["" : 13]>
agraph (float[N, 3, L] x) => (float[N, 4, L] y)
<float[4, 3, 1] w = {0.5, -1.0, 0.25, 2.0, 0.1, -0.3, 1.5, 0.7, -0.2, 0.05, 0.9, -1.1}>
{ c = Conv <kernel_shape: ints = [1]> (x, w)
  y = Relu (c) }"""


def test_compile_verify_with_input_shape(tmp_path, run_cli):
    model = tmp_path / "dyn.onnx"
    onnx.save(model_from_text(MODEL), model)
    art = tmp_path / "art"
    r = run_cli("compile", model, "-t", "x86-64", "--input-shape", "x=2,3,5", "--verify", "-o", art)
    assert r.code == 0, r
    assert "verified against onnxruntime" in r.out, r
    loaded = load_artifact(art)
    assert list(loaded.inputs[0].shape) == [2, 3, 5]
    out = tmp_path / "out.npz"
    r = run_cli("run", art, "--output", out)
    assert r.code == 0, r
    saved = dict(np.load(out))
    assert saved["y"].shape == (2, 4, 5)
    assert_matches_ort(saved, run_ort(str(model), seeded_inputs(loaded.inputs, 0)), atol=1e-5, rtol=1e-5)
