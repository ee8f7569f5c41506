"""The example programs of examples/cmake and examples/make (both build examples/cmake/main.cpp):
the input they feed, their printed outputs parsed, and the check against onnxruntime."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgec.compare import assert_outputs_match
from edgec.reference import run_ort

REPO = Path(__file__).resolve().parents[2]
EDGEC = Path(sys.executable).with_name("edgec")
QEMU = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"]
ATOL, RTOL = 1e-4, 1e-4  # armv8 kernels vs onnxruntime on x86 (float32; different summation order)


def example_input(shape: list[int]) -> np.ndarray:
    """The input examples/cmake/main.cpp feeds: element k is
    ((k * 37) % 101) / 50 - 1, in float32."""
    k = np.arange(int(np.prod(shape)), dtype=np.int64)
    return (((k * 37) % 101).astype(np.float32) / np.float32(50) - np.float32(1)).reshape(shape)


def parse_outputs(stdout: str) -> dict[str, np.ndarray]:
    """`output 0 'logits' float32 [1,10]: v v ...` lines -> {name: array of that shape}."""
    out = {}
    for m in re.finditer(r"^output \d+ '([^']+)' float32 \[([\d,]*)\]:(.*)$", stdout, re.M):
        shape = [int(d) for d in m.group(2).split(",") if d]
        out[m.group(1)] = np.array([float(v) for v in m.group(3).split()], dtype=np.float32).reshape(shape)
    return out


def check_against_onnxruntime(stdout: str, model: Path) -> None:
    import onnx

    proto = onnx.load(str(model), load_external_data=False)
    feeds = {i.name: example_input([d.dim_value for d in i.type.tensor_type.shape.dim]) for i in proto.graph.input}
    expected = run_ort(str(model), feeds)
    assert_outputs_match(parse_outputs(stdout), expected, atol=ATOL, rtol=RTOL)


def needs(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install -y $(cat .ci/apt-packages.txt))")


def run(cmd, env, cwd=None) -> str:
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, cwd=cwd, timeout=900)
    assert p.returncode == 0, f"{cmd}\n{p.stdout}\n{p.stderr}"
    return p.stdout + p.stderr


