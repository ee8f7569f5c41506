"""The pass author's path end to end (docs/writing-a-pass.md): examples/custom_pass pip-installed
(no venv: `pip install --target` plus PYTHONPATH), listed by `edgec passes` / `edgec targets`
through its entry points, run in a pipeline (with the single-file `--plugin` example) on its own
board under qemu; the board file examples/boards/rpi3-a53.toml compiled and run under qemu,
with the board in the depfile and in the compile cache key. (The guide's own commands, host
target, run in tests/test_pass_author_docs.py.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import onnx
import pytest

from tests.conftest import EXAMPLES, require_target_tools
from tests.e2e.compile_check import run_and_check

EDGEC = shutil.which("edgec", path=os.path.dirname(sys.executable)) or "edgec"
PLUGIN = EXAMPLES / "plugins" / "div_to_mul.py"
BOARD = EXAMPLES / "boards" / "rpi3-a53.toml"
PIPELINE = "infer-shapes,recognize-mish,div-to-mul"


def _mish_model(path):
    sys.path.insert(0, str(EXAMPLES / "custom_pass"))
    try:
        from make_mish_model import mish_model
    finally:
        sys.path.pop(0)
    onnx.save(mish_model(), path)
    return path


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """examples/custom_pass installed into a private directory (a copy: pip writes build files)."""
    tmp = tmp_path_factory.mktemp("plugin")
    src = tmp / "src"
    shutil.copytree(EXAMPLES / "custom_pass", src, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    site = tmp / "site"
    p = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--no-index", "--target", str(site), str(src)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "EDGEC_COMPILE_CACHE": "off"}
    return env


def _edgec(env, *args, cwd=None):
    return subprocess.run([EDGEC, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def test_installed_plugin_is_listed(installed):
    r = _edgec(installed, "passes")
    assert r.returncode == 0, r.stderr
    assert any(line.split()[0] == "recognize-mish" and "Mish" in line for line in r.stdout.splitlines())
    r = _edgec(installed, "targets")
    assert r.returncode == 0, r.stderr
    line = next(line for line in r.stdout.splitlines() if line.startswith("rpi3-plugin "))
    assert "aarch64" in line and "rpi3.toml" in line
    # not installed: neither is there
    plain = {**os.environ, "EDGEC_COMPILE_CACHE": "off"}
    assert "recognize-mish" not in _edgec(plain, "passes").stdout


def test_installed_plugin_runs_in_a_pipeline_on_its_board(installed, tmp_path, run_cli):
    require_target_tools("armv8")
    model = _mish_model(tmp_path / "mish.onnx")
    art = tmp_path / "art"
    r = _edgec(installed, "compile", model, "-o", art, "-t", "rpi3-plugin", "--plugin", PLUGIN, "--passes", PIPELINE)
    assert r.returncode == 0, r.stderr
    meta = json.loads((art / "metadata.json").read_text())
    assert meta["pipeline"]["ops_after"] == {"Conv": 1, "Mish": 1, "Mul": 1}
    assert meta["target"]["name"] == "rpi3-plugin" and meta["target"]["tvm"]["mcpu"] == "cortex-a53"
    run_and_check(run_cli, art, model, tmp_path, atol=1e-4)  # under qemu-aarch64


def test_board_file_compiles_runs_and_is_a_dependency(tmp_path, run_cli):
    require_target_tools("armv8")
    model = EXAMPLES / "small_cnn.onnx"
    board = tmp_path / "board.toml"
    shutil.copy(BOARD, board)
    cache, dep = tmp_path / "cache", tmp_path / "art.d"
    r = run_cli("compile", model, "-o", tmp_path / "art", "-t", board, "--cache-dir", cache, "--depfile", dep)
    assert r.code == 0, r
    meta = json.loads((tmp_path / "art" / "metadata.json").read_text())
    assert meta["target"]["name"] == "rpi3-a53"
    assert meta["target"]["tvm"] == {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"],
                                     "mcpu": "cortex-a53", "num-cores": 4}
    assert str(board) in dep.read_text().split()
    run_and_check(run_cli, tmp_path / "art", model, tmp_path, atol=1e-4)  # under qemu-aarch64
    r = run_cli("compile", model, "-o", tmp_path / "again", "-t", board, "--cache-dir", cache)
    assert r.code == 0 and "cache hit" in r.out, r
    board.write_text(BOARD.read_text().replace("num_cores = 4", "num_cores = 2"))
    r = run_cli("compile", model, "-o", tmp_path / "changed", "-t", board, "--cache-dir", cache)
    assert r.code == 0 and "cache hit" not in r.out, r
    assert json.loads((tmp_path / "changed" / "metadata.json").read_text())["target"]["tvm"]["num-cores"] == 2
