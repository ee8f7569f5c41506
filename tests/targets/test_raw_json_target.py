"""`edgec compile -t '<TVM target JSON>'` artifacts run with `edgec run` on this host's
architecture; the target is rebuilt from the artifact's metadata, not looked up by name."""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import pytest

from edgec.artifact import load_artifact
from edgec.errors import ArtifactError
from edgec.reference import run_ort, seeded_inputs
from edgec.targets import registry
from edgec.targets.registry import TARGETS, get_target, host_target, spec_from_json
from edgec.targets.tvm.execute import spec_for
from tests.conftest import model_from_text
from tests.e2e.compile_check import assert_matches_ort

MODEL = """<ir_version: 8, opset_import: ["" : 18]>
g (float[2,16] x) => (float[2,16] y, float[2,1] s) {
  t = Tanh (x)
  y = Mul (t, x)
  ax = Constant <value = int64[1] {1}> ()
  s = ReduceSum (y, ax)
}"""

RAW = {"kind": "llvm", "mcpu": "x86-64"}


@pytest.fixture
def model_path(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(model_from_text(MODEL), path)
    return path


def test_run_raw_json_target(model_path, tmp_path, run_cli):
    art = tmp_path / "art"
    r = run_cli("compile", model_path, "-t", json.dumps(RAW), "-o", art)
    assert r.code == 0, r
    assert json.loads((art / "metadata.json").read_text())["target"]["name"] == "custom"
    r = run_cli("run", art, "--compare-onnx", model_path, "--output", tmp_path / "out.npz")
    assert r.code == 0, r
    errors = [float(e) for e in re.findall(r"max abs error ([0-9.e+-]+),", r.out)]
    assert len(errors) == 2 and max(errors) <= 1e-5, r.out
    proto = onnx.load(model_path)
    saved = dict(np.load(tmp_path / "out.npz"))
    inputs = seeded_inputs(load_artifact(art).inputs, 0)
    assert_matches_ort(saved, run_ort(proto, inputs), atol=1e-5, rtol=1e-5)


def test_raw_json_target_needing_missing_cpu_features_is_refused(model_path, tmp_path, run_cli, monkeypatch):
    art = tmp_path / "art"
    r = run_cli("compile", model_path, "-t", json.dumps({"kind": "llvm", "mcpu": "haswell"}), "-o", art)
    assert r.code == 0, r
    # a CPU without AVX2/FMA: the haswell code would die of an illegal instruction
    monkeypatch.setattr(registry, "_cpu_flags", lambda cpuinfo=None: {"sse4_2"})
    r = run_cli("run", art)
    assert r.code == 2, r
    assert "lacks" in r.err and "avx2" in r.err and "fma" in r.err, r.err


@pytest.mark.parametrize("spec", [*TARGETS, host_target(), get_target("x86-64", mcpu="znver3", mattr="+avx2")],
                         ids=lambda s: s.name)
def test_spec_from_metadata_roundtrip(spec):
    back = spec_from_json(json.loads(json.dumps(spec.to_json())))
    assert back.to_json() == spec.to_json()
    if spec.name in {t.name for t in TARGETS}:
        assert back == spec  # emulator, toolchain package, GPU host target come back too


def test_raw_json_spec_keeps_its_tvm_target():
    spec = spec_from_json(get_target(json.dumps(RAW)).to_json())
    assert (spec.name, spec.tvm, spec.arch, spec.runtime) == ("custom", RAW, "x86_64", "vm")


def test_artifact_without_a_target_object_is_an_artifact_error(tmp_path):
    class Art:
        path = tmp_path
        target = {"name": "custom"}

    with pytest.raises(ArtifactError, match="no TVM target"):
        spec_for(Art())
