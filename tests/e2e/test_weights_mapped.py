"""Weights in weights.bin are mapped once, never copied: loading a weights-file artifact adds far
less resident memory than its weights, running it adds file pages (the weights it reads) but no
private copies, and arrays a lowering computes at compile time (MatMulNBits' repacked int4
weights) go to weights.bin as well, so the library stays code. Each measurement runs in a fresh
process (its own /proc/self/status figures)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20

_PROBE = r"""
import json, sys
import numpy as np
import edgec.targets.tvm.runtime
from edgec.artifact import load_artifact
from edgec.memory import status_mib
from edgec.targets.tvm.execute import load
art = load_artifact(sys.argv[1])
s0 = status_mib()
m = load(art, 1)
s1 = status_mib()
ids = np.arange(0, 4096, 512, dtype=np.int64).reshape(1, 8)
m.run({"ids": ids})
s2 = status_mib()
print(json.dumps([s0, s1, s2]))
"""


def _write_model(out_dir, vocab, hidden):
    spec = importlib.util.spec_from_file_location("edgec_large_model", ROOT / "benchmarks" / "large_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.write_large_model(out_dir, vocab, hidden)


def _probe(art: Path) -> list[dict]:
    out = subprocess.run([sys.executable, "-c", _PROBE, str(art)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_weights_file_arrays_are_mapped_not_copied(tmp_path, run_cli):
    """32 MiB of weights (a 4096 x 1024 embedding and head): loading maps them (RSS grows by far
    less than 32 MiB); a run reads the head whole and 8 rows of the table: file pages of
    weights.bin, while private memory grows by far less than the weights (an embedded library
    deserialized all 32 MiB into private copies at load)."""
    model = _write_model(tmp_path / "m", 4096, 1024)
    weights = 2 * 4096 * 1024 * 4
    art = tmp_path / "art"
    r = run_cli("compile", model, "-t", "x86-64", "-o", art, "--weights-file", "always")
    assert r.code == 0, r
    assert (art / "model.so").stat().st_size < 4 * MiB
    before, loaded, ran = _probe(art)
    assert (loaded["VmRSS"] - before["VmRSS"]) * MiB < 0.15 * weights, (before, loaded)
    assert (ran["RssAnon"] - before["RssAnon"]) * MiB < 0.35 * weights, (before, ran)
    # the head (16 MiB) is read whole from the file's pages: the weights are really used from the mapping
    assert (ran["RssFile"] - before["RssFile"]) * MiB > 0.4 * weights, (before, ran)

    embedded = tmp_path / "embedded"
    assert run_cli("compile", model, "-t", "x86-64", "-o", embedded, "--weights-file", "never").code == 0
    before, loaded, _ = _probe(embedded)  # the check above can fail: constants are copied at load
    assert (loaded["RssAnon"] - before["RssAnon"]) * MiB > 0.9 * weights, (before, loaded)


def test_repacked_matmulnbits_weights_go_to_the_weights_file(tmp_path, run_cli):
    """A MatMulNBits model (int4, 1024 x 1024): its repacked weights (computed by the lowering at
    compile time) are written to weights.bin, not embedded, and the result still matches
    onnxruntime; --weights-file never keeps them in the library."""
    from tests.passes.test_quantize_weights import matmul_model

    src, q = tmp_path / "mm.onnx", tmp_path / "mm.q.onnx"
    onnx.save(matmul_model(1024, 1024), src)
    assert run_cli("quantize", src, "-o", q, "--mode", "int4-weight", "--accuracy-level", "0").code == 0
    sizes = {}
    for mode in ("always", "never"):
        art = tmp_path / mode
        r = run_cli("compile", q, "-t", "x86-64", "--input-shape", "x=2,1024", "--weights-file", mode, "-o", art)
        assert r.code == 0, r
        sizes[mode] = (art / "model.so").stat().st_size
        r = run_cli("run", art, "--compare-onnx", q)
        assert r.code == 0 and "OK" in r.out, r
    meta = json.loads((tmp_path / "always" / "metadata.json").read_text())
    packed = sum(e["nbytes"] for e in meta["weights"]["tensors"])
    assert packed >= 1024 * 1024 // 2  # the 4-bit weights, in the kernel's layout
    assert sizes["never"] - sizes["always"] >= 0.9 * packed, sizes


def test_tied_embedding_and_head_share_one_packed_copy(tmp_path, run_cli):
    """GPT-2's tie (Gather(W, ids) and MatMul(h, Transpose(W))) with W [1000, 512] (2 MiB; 1000
    columns of the head: a padded last panel) in a symbolic weights-file build: weights.bin holds
    W once, in the head's packed layout, which the embedding lookup reads too; the logits match
    onnxruntime on ids spread over the vocabulary (the last row included)."""
    from onnx import TensorProto, helper, numpy_helper

    vocab, hidden = 1000, 512
    w = (0.05 * np.random.default_rng(11).standard_normal((vocab, hidden))).astype(np.float32)
    nodes = [helper.make_node("Gather", ["w", "ids"], ["e"]),
             helper.make_node("Tanh", ["e"], ["h"]),
             helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0]),
             helper.make_node("MatMul", ["h", "wt"], ["logits"])]
    g = helper.make_graph(nodes, "tied", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "seq"])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", vocab])],
                          [numpy_helper.from_array(w, "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, tmp_path / "tied.onnx")
    art = tmp_path / "art"
    r = run_cli("compile", tmp_path / "tied.onnx", "-t", "x86-64", "--symbolic-dims", "--weights-file", "always",
                "-o", art)
    assert r.code == 0, r
    entries = json.loads((art / "metadata.json").read_text())["weights"]["tensors"]
    assert len(entries) == 1 and entries[0]["nbytes"] < 1.1 * w.nbytes, entries  # one copy, padded panels
    ids = np.array([[0, vocab - 1, 17, 500, 999, 3]], dtype=np.int64)
    np.save(tmp_path / "ids.npy", ids)
    r = run_cli("run", art, "-i", f"ids={tmp_path / 'ids.npy'}", "--compare-onnx", tmp_path / "tied.onnx")
    assert r.code == 0 and "OK" in r.out, r
