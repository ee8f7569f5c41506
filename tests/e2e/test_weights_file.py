"""`edgec compile --weights-file`: big initializers in weights.bin beside a small library, mapped
at run time; small models unchanged under "auto"; one-line errors where it cannot apply."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require_target_tools
from tests.e2e.compile_check import run_and_check

ROOT = Path(__file__).resolve().parents[2]


def _write_model(out_dir, vocab=4096, hidden=256):
    spec = importlib.util.spec_from_file_location("edgec_large_model", ROOT / "benchmarks" / "large_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.write_large_model(out_dir, vocab, hidden)


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    """The large-model skeleton at 2 x 4 MiB of external weights."""
    return _write_model(tmp_path_factory.mktemp("lm") / "m")


def test_always_puts_big_weights_beside_a_small_library(lm, tmp_path, run_cli):
    art = tmp_path / "art"
    r = run_cli("compile", lm, "-t", "x86-64", "-o", art, "--weights-file", "always")
    assert r.code == 0 and "2 weights in weights.bin" in r.out, r
    meta = json.loads((art / "metadata.json").read_text())
    entries = meta["weights"]["tensors"]
    # the Gather table as is; the MatMul head packed at compile time into [N/jt, K, jt] panels
    assert [(e["name"], e["dtype"]) for e in entries] == [
        ("embedding", "float32"), ("head/te_layout_transform", "float32")]
    assert entries[0]["shape"] == [4096, 256]
    nj, k, jt = entries[1]["shape"]
    assert k == 256 and nj * jt == 4096
    assert all(e["offset"] % 4096 == 0 for e in entries)
    assert meta["lowering"]["weight_params"] == 2
    assert (art / "model.so").stat().st_size < 4 << 20  # 8 MiB of weights are not in it
    src = np.fromfile(lm.parent / "weights.bin", dtype=np.float32)
    out = np.fromfile(art / "weights.bin", dtype=np.float32)
    assert np.array_equal(out[:4096 * 256], src[:4096 * 256])
    head = src[4096 * 256:].reshape(256, 4096)
    packed = out[entries[1]["offset"] // 4:].reshape(nj, k, jt)
    assert np.array_equal(packed.transpose(1, 0, 2).reshape(256, 4096), head)
    ids = np.array([[0, 4095, 17, 2048, 5, 6, 7, 4000]], dtype=np.int64)
    np.save(tmp_path / "ids.npy", ids)
    run_and_check(run_cli, art, lm, tmp_path, atol=1e-4, inputs={"ids": ids}, extra=("-i", f"ids={tmp_path / 'ids.npy'}"))
    r = run_cli("bench", art, "-n", "2", "--warmup", "1")
    assert r.code == 0 and "median" in r.out, r


def test_auto_keeps_small_models_in_the_library(lm, tmp_path, run_cli):
    art = tmp_path / "art"
    r = run_cli("compile", lm, "-t", "x86-64", "-o", art)
    assert r.code == 0 and "weights in" not in r.out, r
    assert not (art / "weights.bin").exists()
    assert "weights" not in json.loads((art / "metadata.json").read_text())
    assert (art / "model.so").stat().st_size > 8 << 20
    run_and_check(run_cli, art, lm, tmp_path, atol=1e-4)


def test_missing_weights_file_is_a_one_line_error(lm, tmp_path, run_cli):
    art = tmp_path / "art"
    assert run_cli("compile", lm, "-t", "x86-64", "-o", art, "--weights-file", "always").code == 0
    (art / "weights.bin").unlink()
    r = run_cli("run", art)
    assert r.code == 2 and "weights.bin is missing" in r.err and str(art) in r.err and r.err.count("\n") == 1, r


def test_truncated_weights_file_is_a_one_line_error(lm, tmp_path, run_cli):
    art = tmp_path / "art"
    assert run_cli("compile", lm, "-t", "x86-64", "-o", art, "--weights-file", "always").code == 0
    with open(art / "weights.bin", "r+b") as f:
        f.truncate(1 << 20)
    r = run_cli("run", art)
    assert r.code == 2 and "weights.bin has 1,048,576 bytes" in r.err and "truncated" in r.err, r
    assert r.err.count("\n") == 1, r


def test_bundles_map_the_weights_file(lm, tmp_path, run_cli):
    """A bundle carries weights.bin beside model.so (hard-linked, not a second copy) and its C API
    maps it: the armv8 bundle under qemu matches onnxruntime. armv7 (the call plan) refuses."""
    require_target_tools("armv8")
    art = tmp_path / "art"
    r = run_cli("compile", lm, "-t", "armv8", "-o", art, "--weights-file", "always")
    assert r.code == 0 and "2 weights in weights.bin" in r.out, r
    bundle = art / "bundle"
    assert (bundle / "weights.bin").stat().st_ino == (art / "weights.bin").stat().st_ino
    assert (bundle / "model.so").stat().st_size < 4 << 20
    ids = np.array([[0, 4095, 17, 2048, 5, 6, 7, 4000]], dtype=np.int64)
    np.save(tmp_path / "ids.npy", ids)
    run_and_check(run_cli, art, lm, tmp_path, atol=1e-4, inputs={"ids": ids}, extra=("-i", f"ids={tmp_path / 'ids.npy'}"))
    r = run_cli("compile", lm, "-t", "armv7", "-o", tmp_path / "art7", "--weights-file", "always")
    assert r.code == 2 and "--weights-file always" in r.err and "armv7" in r.err, r


def test_packed_weight_from_unaligned_external_data(tmp_path, run_cli):
    """A MatMul weight at an odd offset of its data file is packed at compile time (through an
    aligned copy: TVM takes only 64-byte aligned DLPack data) and the result matches onnxruntime."""
    import onnx
    from onnx import TensorProto, helper

    w = np.random.default_rng(3).standard_normal((256, 1024)).astype(np.float32)
    (tmp_path / "w.bin").write_bytes(b"\x01" * 100 + w.tobytes())
    t = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[256, 1024], data_location=TensorProto.EXTERNAL)
    for k, v in {"location": "w.bin", "offset": "100", "length": str(w.nbytes)}.items():
        t.external_data.add(key=k, value=v)
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "mm",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 256])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 1024])], [t])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, tmp_path / "mm.onnx")
    art = tmp_path / "art"
    r = run_cli("compile", tmp_path / "mm.onnx", "-t", "x86-64", "-o", art, "--weights-file", "always")
    assert r.code == 0, r
    assert [e["name"] for e in json.loads((art / "metadata.json").read_text())["weights"]["tensors"]] == [
        "w/te_layout_transform"]
    run_and_check(run_cli, art, tmp_path / "mm.onnx", tmp_path, atol=1e-4)
