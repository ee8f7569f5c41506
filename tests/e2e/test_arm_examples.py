"""`edgec compile --target armv8|armv7` + `edgec run --compare-onnx` under qemu, and the bundle's
runner executed outside Python (the issue's done-when)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from edgec.artifact import load_artifact
from edgec.compare import assert_outputs_match
from edgec.reference import run_ort, seeded_inputs
from tests.conftest import EXAMPLES
from tests.e2e.compile_check import run_and_check

NEEDS = {"armv8": ("aarch64-linux-gnu-g++", "qemu-aarch64"), "armv7": ("arm-linux-gnueabihf-g++", "qemu-arm")}


def _skip_without(target):
    missing = [t for t in NEEDS[target] if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt packages in .ci/apt-packages.txt)")


@pytest.mark.parametrize("target", sorted(NEEDS))
@pytest.mark.parametrize("name", ["small_cnn", "tiny_transformer"])
def test_arm_compile_and_run_under_qemu(target, name, tmp_path, run_cli):
    _skip_without(target)
    model = EXAMPLES / f"{name}.onnx"
    art = tmp_path / "art"
    r = run_cli("compile", model, "-t", target, "-o", art)
    assert r.code == 0, r
    run_and_check(run_cli, art, model, tmp_path, atol=1e-4)


def test_armv8_bundle_runner_outside_python(tmp_path, run_cli):
    _skip_without("armv8")
    model = EXAMPLES / "small_cnn.onnx"
    art = tmp_path / "art"
    assert run_cli("compile", model, "-t", "armv8", "-o", art).code == 0
    bundle = art / "bundle"
    for f in ("model.so", "edgec-runner", "libedgec_runtime.so", "libtvm_runtime.so", "libtvm_ffi.so",
              "edgec_runtime.h", "metadata.json", "README.md"):
        assert (bundle / f).is_file(), f
    meta = json.loads((bundle / "metadata.json").read_text())
    x = seeded_inputs(load_artifact(art).inputs, seed=7)["input"]
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out"
    out.mkdir()
    cmd = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", str(bundle / "edgec-runner"), str(bundle / "model.so"),
           "--input", f"input={tmp_path / 'x.npy'}", "--output-dir", str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    y = np.load(next(out.glob("*.npy")))
    expected = run_ort(str(model), {"input": x})["logits"]
    assert meta["outputs"][0]["name"] == "logits"
    assert np.abs(y - expected).max() <= 1e-4
    dis = subprocess.run(["aarch64-linux-gnu-objdump", "-d", str(bundle / "model.so")], capture_output=True,
                         text=True).stdout if shutil.which("aarch64-linux-gnu-objdump") else ""
    if dis:
        assert re.search(r"\bv\d+\.4s\b", dis), "no NEON vector instructions in the armv8 library"


def test_nhwc_io_artifact_is_verified_and_compared_in_its_layout(tmp_path, run_cli):
    """--io-layout nhwc: --verify feeds the artifact NHWC and the model NCHW; --compare-onnx too."""
    _skip_without("armv8")
    model = EXAMPLES / "small_cnn.onnx"
    art = tmp_path / "art"
    r = run_cli("compile", model, "-t", "armv8", "--io-layout", "nhwc", "--verify", "-o", art)
    assert r.code == 0 and "the compiled artifact matches" in r.out, r
    x = np.random.default_rng(3).uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x.transpose(0, 2, 3, 1))
    r = run_cli("run", art, "-i", f"input={tmp_path / 'x.npy'}", "--compare-onnx", model, "--output", tmp_path / "o.npz")
    assert r.code == 0, r
    assert_outputs_match(dict(np.load(tmp_path / "o.npz")), run_ort(str(model), {"input": x}), atol=1e-4)
