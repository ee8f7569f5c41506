"""`edgec compile --config FILE`: settings from edgec.toml or [tool.edgec] of pyproject.toml, the
command line overriding them; the file in the depfile and the compile-cache key; misuse is one
line naming the file and the key, exit 2 (issue 16, item 4)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgec
from edgec.compare import assert_outputs_match
from edgec.depfile import escape
from edgec.reference import run_ort


def _model(d: Path) -> Path:
    """MatMul + Relu with a dynamic batch (input-shapes fixes it)."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((32, 16)).astype(np.float32), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
                          "cfg", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 32])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 16])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    path = d / "model.onnx"
    onnx.save(m, path)
    return path


def _meta(art: Path) -> dict:
    return json.loads((art / "metadata.json").read_text())


PLUGIN = '''
from edgec.infra.pass_base import Pass, PassResult, register_pass


@register_pass
class ConfigNoop(Pass):
    """Does nothing (a plugin named by the config file)."""

    name = "config-noop"

    def run(self, model, ctx):
        return PassResult(model, False)
'''


def test_edgec_toml_settings_apply_and_the_command_line_overrides(tmp_path, run_cli, monkeypatch):
    model = _model(tmp_path)
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "noop.py").write_text(PLUGIN)
    cfg = tmp_path / "edgec.toml"
    cfg.write_text('target = "host"\npasses = ["fix-input-shapes", "config-noop", "fold-constants", "eliminate-dead-code"]\n'
                   'opt-level = 1\nplugins = ["plugins/noop.py"]\n'
                   'input-shapes = { x = [3, 32] }\nemit = ["library", "metadata"]\n')
    art = tmp_path / "art"
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the plugin is found beside the file, not in the cwd
    r = run_cli("compile", model, "-o", art, "--config", cfg, "--no-cache")
    assert r.code == 0, r
    m = _meta(art)
    assert m["pipeline"]["text"] == "fix-input-shapes,config-noop,fold-constants,eliminate-dead-code"
    assert m["pipeline"]["opt_level"] == 1
    assert m["inputs"][0]["shape"] == [3, 32]
    assert sorted(p.name for p in art.iterdir()) == ["metadata.json", "model.so"]  # emit: no model.h
    x = np.random.default_rng(1).standard_normal((3, 32)).astype(np.float32)
    assert_outputs_match(edgec.load(art).run({"x": x}), run_ort(str(model), {"x": x}), atol=1e-5, rtol=1e-5)
    # flags override the file, key by key
    art2 = tmp_path / "art2"
    r = run_cli("compile", model, "-o", art2, "--config", cfg, "--no-cache", "--passes", "fix-input-shapes,fold-constants",
                "--input-shape", "x=5,32")
    assert r.code == 0, r
    m = _meta(art2)
    assert m["pipeline"]["text"] == "fix-input-shapes,fold-constants" and m["pipeline"]["opt_level"] == 1
    assert m["inputs"][0]["shape"] == [5, 32]


def test_pyproject_quantize_table_relative_paths_depfile_and_cache_key(tmp_path, run_cli, monkeypatch):
    model = _model(tmp_path)
    proj = tmp_path / "proj"
    (proj / "calib").mkdir(parents=True)
    rng = np.random.default_rng(2)
    for i in range(4):
        np.save(proj / "calib" / f"{i}.npy", rng.standard_normal((2, 32)).astype(np.float32))
    cfg = proj / "pyproject.toml"
    cfg.write_text('[project]\nname = "app"\n\n[tool.edgec]\ntarget = "host"\ninput-shapes = { x = [2, 32] }\n\n'
                   '[tool.edgec.quantize]\nmode = "int8"\ncalibration-data = "calib"\nsamples = 4\n')
    dep = tmp_path / "art.d"
    cache = tmp_path / "cache"
    monkeypatch.chdir(tmp_path)  # the calibration directory is found beside the file, not in the cwd

    def compile_(out):
        return run_cli("compile", model, "-o", tmp_path / out, "--config", cfg, "--depfile", dep, "--cache-dir", cache)

    r = compile_("art")
    assert r.code == 0 and "cache hit" not in r.out, r
    text = _meta(tmp_path / "art")["pipeline"]["text"]
    assert "quantize-static" in text, text
    deps = dep.read_text().replace("\\\n", " ")
    for p in (model, cfg, proj / "calib" / "0.npy", proj / "calib" / "3.npy"):
        assert escape(str(p)) in deps, (p, deps)
    x = np.load(proj / "calib" / "0.npy")  # within the calibrated ranges
    ref = run_ort(str(model), {"x": x})
    # int8 (uint8 activations, int8 weights) against the float model: within 5% of the output's range
    assert_outputs_match(edgec.load(tmp_path / "art").run({"x": x}), ref, atol=0.05 * float(np.abs(ref["y"]).max()))
    # same file: a hit; the file changed (a setting or just its text): a new key
    assert "cache hit" in compile_("art2").out
    cfg.write_text(cfg.read_text().replace("samples = 4", "samples = 3"))
    r = compile_("art3")
    assert r.code == 0 and "cache hit" not in r.out, r


@pytest.mark.parametrize("text, key", [
    ('target = "host"\nfoo = 1\n', "'foo'"),
    ('opt-level = "2"\n', "'opt-level'"),
    ('opt-level = 7\n', "'opt-level'"),
    ('io-layout = "nchx"\n', "'io-layout'"),
    ('verify = "yes"\n', "'verify'"),
    ('input-shapes = { x = [1, "a"] }\n', "'input-shapes.x'"),
    ('dims = { batch = 3 }\n', "'dims.batch'"),
    ('passes = [1, 2]\n', "'passes'"),
    ('[quantize]\nmod = "int8"\n', "'quantize.mod'"),
    ('report = "r.html"\n', "'report'"),  # where outputs go is not a setting of the compile
    ('input-shape = { x = [1, 32] }\n', "'input-shape'"),  # the option's name, not the key's
    ('target = \n', "not valid TOML"),
])
def test_misuse_is_one_line_naming_file_and_key(tmp_path, run_cli, text, key):
    model = _model(tmp_path)
    cfg = tmp_path / "edgec.toml"
    cfg.write_text(text)
    r = run_cli("compile", model, "-o", tmp_path / "art", "--config", cfg, "--no-cache")
    assert r.code == 2, r
    line = r.err.strip()
    assert "\n" not in line and str(cfg) in line and key in line and "Traceback" not in r.err, r
    assert not (tmp_path / "art").exists()


def test_pyproject_without_tool_edgec_and_missing_file(tmp_path, run_cli):
    model = _model(tmp_path)
    cfg = tmp_path / "pyproject.toml"
    cfg.write_text('[project]\nname = "app"\n')
    for path, words in ((cfg, "[tool.edgec]"), (tmp_path / "none.toml", "cannot read")):
        r = run_cli("compile", model, "-o", tmp_path / "art", "--config", path, "--no-cache")
        assert r.code == 2 and words in r.err and str(path) in r.err and "\n" not in r.err.strip(), r


def test_symbolic_dims_and_their_bounds_from_the_file(tmp_path, run_cli):
    model = _model(tmp_path)
    cfg = tmp_path / "edgec.toml"
    cfg.write_text('symbolic-dims = true\ndims = { batch = [1, 8] }\n')
    art = tmp_path / "art"
    r = run_cli("compile", model, "-o", art, "--config", cfg, "--no-cache")
    assert r.code == 0, r
    m = _meta(art)
    assert m["inputs"][0]["shape"] == ["batch", 32] and m["dim_bounds"] == {"batch": [1, 8]}
    x = np.random.default_rng(4).standard_normal((5, 32)).astype(np.float32)
    assert_outputs_match(edgec.load(art).run({"x": x}), run_ort(str(model), {"x": x}), atol=1e-5, rtol=1e-5)


def test_board_file_target_is_relative_to_the_config_file(tmp_path, run_cli, monkeypatch):
    proj = tmp_path / "proj"
    (proj / "boards").mkdir(parents=True)
    (proj / "boards" / "b.toml").write_text('name = "cfg-board"\nbase = "armv8"\nmcpu = "cortex-a72"\n')
    (proj / "edgec.toml").write_text('target = "boards/b.toml"\n')
    monkeypatch.chdir(tmp_path)
    r = run_cli("compile", _model(tmp_path), "--config", proj / "edgec.toml", "--print-pipeline")
    assert r.code == 0, r
    assert "to-nhwc" in r.out  # armv8's layout: the board was found and derived from its base
