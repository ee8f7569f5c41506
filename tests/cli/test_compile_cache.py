"""The compile cache: unchanged inputs and options reuse the artifact (reported, byte-identical,
without importing onnx or TVM); any change of model, external data, option or plugin compiles;
a damaged entry is a miss; --no-cache and EDGEC_COMPILE_CACHE=off turn it off; eviction keeps the
store under EDGEC_CACHE_MAX_MB."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[2]


def _model(path: Path, scale: float = 1.0, external: bool = False) -> Path:
    w = numpy_helper.from_array((np.arange(32 * 32, dtype=np.float32).reshape(32, 32) / 1024 * scale), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["y"])],
                          "cache", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    if external:
        onnx.save_model(m, path, save_as_external_data=True, location=path.name + ".data", size_threshold=0)
    else:
        onnx.save(m, path)
    return path


def _hashes(art: Path) -> dict[str, str]:
    return {str(p.relative_to(art)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(art.rglob("*"))
            if p.is_file()}


def test_hit_is_reported_identical_and_many_changes_miss(tmp_path, run_cli):
    model = _model(tmp_path / "m.onnx", external=True)
    cache = tmp_path / "cache"
    first = run_cli("compile", model, "-o", tmp_path / "a", "--cache-dir", cache)
    assert first.code == 0 and "cache hit" not in first.out, first
    hit = run_cli("compile", model, "-o", tmp_path / "b", "--cache-dir", cache)
    assert hit.code == 0 and "cache hit" in hit.out, hit
    assert _hashes(tmp_path / "a") == _hashes(tmp_path / "b")
    # an option that changes the artifact: a miss
    assert "cache hit" not in run_cli("compile", model, "-o", tmp_path / "c", "--cache-dir", cache, "-O", "1").out
    # the model's external data changed (same .onnx bytes): a miss, and the output differs
    _model(tmp_path / "m.onnx", scale=2.0, external=True)
    changed = run_cli("compile", model, "-o", tmp_path / "d", "--cache-dir", cache)
    assert changed.code == 0 and "cache hit" not in changed.out, changed
    # --no-cache: compiles although an entry exists
    again = run_cli("compile", model, "-o", tmp_path / "e", "--cache-dir", cache, "--no-cache")
    assert again.code == 0 and "cache hit" not in again.out


def test_damaged_entry_is_a_miss_and_is_replaced(tmp_path, run_cli):
    model = _model(tmp_path / "m.onnx")
    cache = tmp_path / "cache"
    assert run_cli("compile", model, "-o", tmp_path / "a", "--cache-dir", cache).code == 0
    libs = list(cache.rglob("model.so"))
    assert len(libs) == 1
    libs[0].write_bytes(b"junk")
    r = run_cli("compile", model, "-o", tmp_path / "b", "--cache-dir", cache)
    assert r.code == 0 and "cache hit" not in r.out, r
    assert run_cli("compile", model, "-o", tmp_path / "c", "--cache-dir", cache).out.count("cache hit") == 1
    assert _hashes(tmp_path / "a") == _hashes(tmp_path / "c")


def test_a_changed_plugin_misses(tmp_path, run_cli):
    model = _model(tmp_path / "m.onnx")
    plugin = tmp_path / "p.py"
    src = ('from edgec.infra.pass_base import Pass, PassResult, register_pass\n\n\n@register_pass\n'
           'class CacheNoop(Pass):\n    """Nothing."""\n\n    name = "cache-noop"\n\n'
           '    def run(self, model, ctx):\n        return PassResult(model, False)\n')
    plugin.write_text(src)
    args = ["--plugin", plugin, "--passes", "cache-noop,fold-constants", "--cache-dir", tmp_path / "cache"]
    assert run_cli("compile", model, "-o", tmp_path / "a", *args).code == 0
    assert "cache hit" in run_cli("compile", model, "-o", tmp_path / "b", *args).out
    plugin.write_text(src + "# changed\n")
    assert "cache hit" not in run_cli("compile", model, "-o", tmp_path / "c", *args).out


def test_a_hit_imports_neither_onnx_nor_tvm(tmp_path, run_cli):
    model = _model(tmp_path / "m.onnx")
    cache = tmp_path / "cache"
    assert run_cli("compile", model, "-o", tmp_path / "a", "--cache-dir", cache).code == 0
    code = ("import sys\nfrom edgec.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
            "    assert not e.code, e.code\nprint('heavy:', sorted(m for m in ('onnx', 'tvm', 'onnx_ir', 'onnxruntime') "
            "if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code, "compile", str(model), "-o", str(tmp_path / "b"),
                          "--cache-dir", str(cache)], capture_output=True, text=True, timeout=300, cwd=ROOT,
                         env={**os.environ, "EDGEC_COMPILE_CACHE": "on"})
    assert out.returncode == 0, out.stderr
    assert "cache hit" in out.stdout and "heavy: []" in out.stdout, out.stdout


def test_default_cache_dir_and_the_off_switch(tmp_path, run_cli, monkeypatch):
    model = _model(tmp_path / "m.onnx")
    monkeypatch.setenv("EDGEC_CACHE", str(tmp_path / "user-cache"))
    monkeypatch.setenv("EDGEC_COMPILE_CACHE", "on")
    assert run_cli("compile", model, "-o", tmp_path / "a").code == 0
    assert "cache hit" in run_cli("compile", model, "-o", tmp_path / "b").out
    assert list((tmp_path / "user-cache" / "compile").glob("*/*/artifact/metadata.json"))
    monkeypatch.setenv("EDGEC_COMPILE_CACHE", "off")
    assert "cache hit" not in run_cli("compile", model, "-o", tmp_path / "c").out


def test_eviction_keeps_the_store_small(tmp_path, run_cli, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("EDGEC_CACHE_MAX_MB", "0")  # every store evicts all but nothing newer
    for i in range(2):
        model = _model(tmp_path / f"m{i}.onnx", scale=1.0 + i)
        assert run_cli("compile", model, "-o", tmp_path / f"a{i}", "--cache-dir", cache).code == 0
    assert len([e for e in (cache / "compile").glob("*/*") if e.is_dir()]) == 0


def test_host_key_holds_what_host_means_here(tmp_path, monkeypatch):
    """`-t host` keys by the host's resolved target (CPU features, L2 size): a cache directory
    shared by two machines does not hand one's host code to the other."""
    from dataclasses import replace

    from edgec import compile_cache
    from edgec.targets import registry

    model = tmp_path / "m.onnx"
    model.write_bytes(b"not read for the key beyond its digest")
    params = {"model": str(model), "target": "host", "out": "o"}
    real = registry.host_target

    def key(**changes):
        monkeypatch.setattr(registry, "host_target", lambda: replace(real(), **changes))
        return compile_cache.cli_key(params, {})[0]

    base = key()
    assert key() == base
    assert key(l2_bytes=real().l2_bytes * 2) != base
    assert key(l1d_bytes=real().l1d_bytes * 2) != base
    assert key(features=("avx2",)) != base
