"""Compile an ONNX model with edgec (the real -O pipeline), run it, and compare every output with
onnxruntime on the original model: same output names, shapes and dtypes, all finite, within
explicit tolerances."""

from __future__ import annotations

import numpy as np
import onnx

from edgec.api import CompileOptions, compile_model, run_artifact
from edgec.reference import run_ort, seeded_inputs


def assert_matches_ort(actual: dict, expected: dict, *, atol: float, rtol: float) -> None:
    assert set(actual) == set(expected), f"outputs {sorted(actual)} != onnxruntime's {sorted(expected)}"
    for name, e in expected.items():
        a = np.asarray(actual[name])
        assert a.shape == e.shape, (name, a.shape, e.shape)
        assert a.dtype == e.dtype, (name, a.dtype, e.dtype)
        assert np.isfinite(e).all(), f"onnxruntime's {name} is not finite: the test model is broken"
        assert np.isfinite(a).all(), f"{name}: non-finite values"
        np.testing.assert_allclose(a, e, atol=atol, rtol=rtol, equal_nan=False, err_msg=name)


def compile_and_compare(proto: onnx.ModelProto, tmp_path, *, opt_level: int = 2, atol: float, rtol: float,
                        target: str = "x86-64", seed: int = 0):
    """Returns the artifact's op histogram after optimization (pipeline `ops_after`)."""
    path = tmp_path / "model.onnx"
    onnx.save(proto, path)
    art = compile_model(path, tmp_path / f"art_O{opt_level}", CompileOptions(target=target, opt_level=opt_level))
    inputs = seeded_inputs(art.inputs, seed)
    assert_matches_ort(run_artifact(art, inputs), run_ort(proto, inputs), atol=atol, rtol=rtol)
    return art.metadata["pipeline"]["ops_after"]
