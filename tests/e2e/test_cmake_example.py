"""examples/cmake: `find_package(edgec)` + `edgec_add_model` in a real CMake build, cross-compiled
for aarch64 with the example's toolchain file; the program runs under qemu and prints outputs
matching onnxruntime. Rebuilds: a touched model reruns edgec, a changed option recompiles, an
unchanged tree is "no work to do" (issue 16, items 3)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgec.compare import assert_outputs_match
from edgec.reference import run_ort
from tests.conftest import EXAMPLES

REPO = Path(__file__).resolve().parents[2]
CMAKE_EXAMPLE = REPO / "examples" / "cmake"
EDGEC = Path(sys.executable).with_name("edgec")
QEMU = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"]
ATOL, RTOL = 1e-4, 1e-4  # armv8 kernels vs onnxruntime on x86 (float32; different summation order)


def example_input(shape: list[int]) -> np.ndarray:
    """The input examples/cmake/main.cpp and examples/make/main.cpp feed: element k is
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


def _needs(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install -y $(cat .ci/apt-packages.txt))")


def _run(cmd, env, cwd=None) -> str:
    p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=env, cwd=cwd, timeout=900)
    assert p.returncode == 0, f"{cmd}\n{p.stdout}\n{p.stderr}"
    return p.stdout + p.stderr


def test_edgec_cmake_dir_holds_the_package(run_cli):
    r = run_cli("--cmake-dir")
    assert r.code == 0, r
    d = Path(r.out.strip())
    assert (d / "edgecConfig.cmake").is_file() and (d / "edgecConfigVersion.cmake").is_file()
    from edgec import __version__

    assert f'set(PACKAGE_VERSION "{__version__}")' in (d / "edgecConfigVersion.cmake").read_text()
    assert f'set(edgec_VERSION "{__version__}")' in (d / "edgecConfig.cmake").read_text()


def test_cmake_example_cross_built_for_aarch64_runs_under_qemu_and_rebuilds(tmp_path):
    _needs("cmake", "ninja", "aarch64-linux-gnu-g++", "qemu-aarch64")
    model = tmp_path / "model.onnx"
    shutil.copy(EXAMPLES / "small_cnn.onnx", model)
    env = dict(os.environ)
    env.pop("EDGEC_COMPILE_CACHE", None)  # tests turn the compile cache off; this one uses its own
    cache = f"--cache-dir={tmp_path / 'compile-cache'}"
    build = tmp_path / "build"
    cmake_dir = _run([EDGEC, "--cmake-dir"], env).strip()

    def configure(options=cache):
        _run(["cmake", "-S", CMAKE_EXAMPLE, "-B", build, "-G", "Ninja", f"-Dedgec_DIR={cmake_dir}",
              f"-DCMAKE_TOOLCHAIN_FILE={CMAKE_EXAMPLE / 'aarch64-toolchain.cmake'}", f"-DEDGEC_EXECUTABLE={EDGEC}",
              f"-DEDGEC_EXAMPLE_MODEL={model}", f"-DEDGEC_EXAMPLE_OPTIONS={options}"], env)

    configure()
    log = _run(["cmake", "--build", build], env)
    assert "edgec: compiling" in log, log
    app = build / "edgec_app"
    header = app.read_bytes()[:20]
    assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == 183, "not an aarch64 ELF"  # EM_AARCH64
    out = _run([*QEMU, app], env)
    check_against_onnxruntime(out, model)

    # nothing changed: nothing to do
    assert "no work to do" in _run(["cmake", "--build", build], env)
    # the model changed (its time): edgec runs again (a cache hit: same content) and the app is rebuilt
    model.touch()
    log = _run(["cmake", "--build", build], env)
    assert "edgec: compiling" in log and "cache hit" in log, log
    assert "no work to do" in _run(["cmake", "--build", build], env)
    # an option changed: a new compile (not a cache hit) whose artifact still matches
    configure(f"{cache};-O1")
    log = _run(["cmake", "--build", build], env)
    assert "edgec: compiling" in log and "cache hit" not in log, log
    assert "-O1" in (build / "cnn.edgec.options").read_text()
    check_against_onnxruntime(_run([*QEMU, app], env), model)
    assert "no work to do" in _run(["cmake", "--build", build], env)
