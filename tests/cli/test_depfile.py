"""`edgec compile --depfile`: a Make/Ninja depfile naming every file the compile read. A real Ninja
build reruns edgec when the model, its external data or a plugin changes, and does nothing when
nothing changed."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgec.depfile import escape

PLUGIN = '''
from edgec.infra.pass_base import Pass, PassResult, register_pass


@register_pass
class DepfileNoop(Pass):
    """Does nothing (a plugin the build depends on)."""

    name = "depfile-noop"

    def run(self, model, ctx):
        return PassResult(model, False)
'''


def _model(d: Path, external: bool = False) -> Path:
    w = numpy_helper.from_array(np.arange(64 * 64, dtype=np.float32).reshape(64, 64) / 4096, "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "dep",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    path = d / "my model.onnx"
    if external:
        onnx.save_model(m, path, save_as_external_data=True, location="my model.data", size_threshold=0)
    else:
        onnx.save(m, path)
    return path


def test_depfile_lists_model_external_data_and_plugin(tmp_path, run_cli):
    model = _model(tmp_path, external=True)
    plugin = tmp_path / "plugin.py"
    plugin.write_text(PLUGIN)
    dep = tmp_path / "out.d"
    r = run_cli("compile", model, "-o", tmp_path / "art", "--plugin", plugin, "--depfile", dep,
                "--passes", "depfile-noop,fold-constants")
    assert r.code == 0, r
    text = dep.read_text()
    target, _, deps = text.partition(":")
    assert target == escape(str(tmp_path / "art" / "metadata.json"))
    words = deps.replace("\\\n", " ").split()
    joined = " ".join(words)
    for p in (model, tmp_path / "my model.data", plugin):
        assert escape(str(p)) in joined, (p, text)


def test_depfile_refused_inside_the_artifact(tmp_path, run_cli):
    model = _model(tmp_path)
    r = run_cli("compile", model, "-o", tmp_path / "art", "--depfile", tmp_path / "art" / "x.d")
    assert r.code == 2 and "depfile" in r.err and "\n" not in r.err.strip(), r
    assert not (tmp_path / "art").exists()


@pytest.mark.skipif(shutil.which("ninja") is None, reason="needs ninja (apt-get install -y $(cat .ci/apt-packages.txt))")
def test_ninja_rebuilds_exactly_when_an_input_changes(tmp_path):
    model = _model(tmp_path, external=True)
    plugin = tmp_path / "plugin.py"
    plugin.write_text(PLUGIN)
    edgec = f"{sys.executable} -m edgec.cli"
    (tmp_path / "build.ninja").write_text(
        "rule edgec\n"
        f"  command = {edgec} compile $in -o art --plugin plugin.py --passes depfile-noop,fold-constants --depfile art.d\n"
        "  depfile = art.d\n  deps = gcc\n"
        "build art/metadata.json: edgec my$ model.onnx\n")

    def ninja() -> str:
        out = subprocess.run(["ninja", "-d", "explain"], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                             env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
        assert out.returncode == 0, out.stdout + out.stderr
        return out.stdout

    def touch(p: Path) -> None:
        t = time.time() + 2  # past the artifact's mtime, whatever the file system's resolution
        os.utime(p, (t, t))

    assert "edgec" in ninja() and (tmp_path / "art" / "model.so").exists()
    assert "no work to do" in ninja()
    touch(plugin)
    assert "no work to do" not in ninja(), "a changed plugin rebuilds"
    assert "no work to do" in ninja()
    touch(tmp_path / "my model.data")
    assert "no work to do" not in ninja(), "changed external data rebuilds"
    touch(model)
    assert "no work to do" not in ninja(), "a changed model rebuilds"
    assert "no work to do" in ninja()
