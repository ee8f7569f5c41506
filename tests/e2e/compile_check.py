"""Compile an ONNX model with edgec (the real -O pipeline), run it, and compare every output with
onnxruntime on the original model: same output names, shapes and dtypes, all finite, within
explicit tolerances. `run_and_check` does the same for `edgec run --compare-onnx` (its printed
errors and its saved outputs, not just the "OK: matches" line)."""

from __future__ import annotations

import re

import numpy as np
import onnx

from edgec.api import CompileOptions, compile_model, run_artifact
from edgec.artifact import load_artifact
from edgec.compare import assert_outputs_match
from edgec.reference import run_ort, seeded_inputs


def assert_matches_ort(actual: dict, expected: dict, *, atol: float, rtol: float) -> None:
    """edgec.compare's sound check (names, shapes, dtypes, NaN/Inf, error bound) plus numpy's
    elementwise bound; the test models are built to give finite outputs."""
    for name, e in expected.items():
        assert np.isfinite(e).all(), f"onnxruntime's {name} is not finite: the test model is broken"
    assert_outputs_match(actual, expected, atol, rtol)


def compile_and_compare(proto: onnx.ModelProto, tmp_path, *, opt_level: int = 2, atol: float, rtol: float,
                        target: str = "x86-64", seed: int = 0):
    """Returns the artifact's op histogram after optimization (pipeline `ops_after`)."""
    path = tmp_path / "model.onnx"
    onnx.save(proto, path)
    art = compile_model(path, tmp_path / f"art_O{opt_level}", CompileOptions(target=target, opt_level=opt_level))
    inputs = seeded_inputs(art.inputs, seed)
    assert_matches_ort(run_artifact(art, inputs), run_ort(proto, inputs), atol=atol, rtol=rtol)
    return art.metadata["pipeline"]["ops_after"]


def compare_onnx_errors(out: str, output_names) -> dict[str, float]:
    """The per-output max abs errors `edgec run --compare-onnx` printed: one finite number for
    each of `output_names` and for no other output."""
    found = dict(re.findall(r"^compare (\S+): max abs error (\S+?),", out, re.M))
    assert set(found) == set(output_names), f"compared {sorted(found)}, expected {sorted(output_names)}:\n{out}"
    errors = {k: float(v) for k, v in found.items()}
    assert all(np.isfinite(v) for v in errors.values()), errors
    return errors


def run_and_check(run_cli, art, model, tmp_path, *, atol: float, rtol: float = 0.0, inputs: dict | None = None,
                  extra: tuple = ()) -> dict:
    """`edgec run ART --compare-onnx MODEL --output out.npz`: exit 0, every output's printed error
    finite and <= atol, and the saved outputs checked against onnxruntime here (names, shapes,
    dtypes, finite, assert_allclose). `inputs`: the arrays behind `extra`'s -i options (None:
    the run's seeded inputs). Returns the saved outputs."""
    npz = tmp_path / "run_outputs.npz"
    r = run_cli("run", art, "--compare-onnx", model, "--output", npz, *extra)
    assert r.code == 0, r
    names = [o.name for o in onnx.load(str(model), load_external_data=False).graph.output]
    errors = compare_onnx_errors(r.out, names)
    assert max(errors.values()) <= atol, errors
    saved = dict(np.load(npz))
    feeds = inputs if inputs is not None else seeded_inputs(load_artifact(art).inputs, 0)
    assert_matches_ort(saved, run_ort(str(model), feeds), atol=atol, rtol=rtol)
    return saved
