"""A model with more than 2 GiB of external data, end to end: `edgec optimize` and `edgec compile`
stream the weights instead of loading them (peak RSS bounded well below the weights' size), the
artifact keeps them in weights.bin (the library stays small), and the compiled model matches
onnxruntime on seeded token ids spread over the whole vocabulary.

Each command runs in its own process so its peak RSS (`ru_maxrss`) is its own. The 2.14 GiB of
files are written in a few seconds and removed at the end (also on failure)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.e2e.compile_check import compare_onnx_errors

ROOT = Path(__file__).resolve().parents[2]
GiB = 1 << 30


def _bench():
    spec = importlib.util.spec_from_file_location("edgec_bench_large", ROOT / "benchmarks" / "bench_large_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _edgec(*args) -> list[str]:
    return [sys.executable, "-m", "edgec.cli", *map(str, args)]


@pytest.fixture
def workdir(tmp_path):
    """tmp_path, emptied at the end: pytest keeps old tmp dirs around, these hold gigabytes."""
    if shutil.disk_usage(tmp_path).free < 12 * GiB:
        pytest.skip("needs 12 GiB of free disk for a >2 GiB model, its optimized copy and an artifact")
    yield tmp_path
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_over_2gib_optimize_compile_run(workdir):
    bench = _bench()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from large_model import DATA_FILE, weights_bytes, write_large_model

    vocab, hidden = 280000, 1024
    model = write_large_model(workdir / "m", vocab, hidden)
    weights = weights_bytes(vocab, hidden)
    assert (model.parent / DATA_FILE).stat().st_size == weights > 2 * GiB

    # optimize: the optimized ONNX must keep the weights as external data (one protobuf cannot
    # hold 2 GiB), written in chunks from the mapped input
    out = workdir / "opt" / "model.onnx"
    out.parent.mkdir()
    code, rss, _, text = bench.measure(_edgec("optimize", model, "-o", out))
    assert code == 0, text
    assert out.stat().st_size < 4096 and (out.parent / "model.onnx.data").stat().st_size == weights
    assert rss < 0.25 * weights, f"optimize peaked at {rss / GiB:.2f} GiB for {weights / GiB:.2f} GiB of weights"
    shutil.rmtree(out.parent)

    # compile: weights go file to file into weights.bin; nothing of them is in the library
    art = workdir / "art"
    code, rss, _, text = bench.measure(_edgec("compile", model, "-t", "x86-64", "-o", art))
    assert code == 0, text
    assert rss < 0.3 * weights, f"compile peaked at {rss / GiB:.2f} GiB for {weights / GiB:.2f} GiB of weights"
    meta = json.loads((art / "metadata.json").read_text())
    # both above PACK_MAX_BYTES: stored as they are (smaller MatMul weights are stored packed)
    assert [t["name"] for t in meta["weights"]["tensors"]] == ["embedding", "head"]
    assert (art / "weights.bin").stat().st_size >= weights
    assert (art / "model.so").stat().st_size < 16 << 20

    # run on ids over the whole vocabulary (rows beyond 1 GiB of the table, the head beyond 2 GiB
    # of the file) and compare with onnxruntime, which loads the same >2 GiB external data
    ids = np.random.default_rng(7).integers(0, vocab, size=(1, 8)).astype(np.int64)
    ids[0, :2] = [0, vocab - 1]
    np.save(workdir / "ids.npy", ids)
    code, rss, _, text = bench.measure(_edgec("run", art, "-i", f"ids={workdir / 'ids.npy'}",
                                              "--compare-onnx", model, "--output", workdir / "out.npz"))
    assert code == 0, text
    outputs = [o.name for o in onnx.load(str(model), load_external_data=False).graph.output]
    assert max(compare_onnx_errors(text, outputs).values()) <= 1e-4, text
    # onnxruntime holds one copy of the weights; edgec maps its own (and touches the head, the rows)
    assert rss < 1.5 * weights, f"run + onnxruntime peaked at {rss / GiB:.2f} GiB"
    logits = np.load(workdir / "out.npz")["logits"]
    assert logits.shape == (1, 8, vocab) and np.isfinite(logits).all() and np.abs(logits).max() > 0.01


def test_weights_are_packed_one_at_a_time(tmp_path):
    """Eight 64 MiB weights, seven of them MatMul B operands packed at compile time: the compile
    holds one weight and its packed copy at a time, so it peaks about 2 x 64 MiB above the same
    model at toy size (all at once would be 2 x 448 MiB), and the packed weights still match
    onnxruntime."""
    bench = _bench()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from large_model import write_large_model

    peaks = {}
    for tag, hidden in (("toy", 64), ("big", 4096)):
        model = write_large_model(tmp_path / tag, vocab=hidden, hidden=hidden, layers=6)
        art = tmp_path / tag / "art"
        code, peaks[tag], _, text = bench.measure(_edgec("compile", model, "-t", "x86-64", "-o", art,
                                                         "--weights-file", "always"))
        assert code == 0, text
    names = [t["name"] for t in json.loads((art / "metadata.json").read_text())["weights"]["tensors"]]
    assert names == ["embedding"] + [f"w{i}/te_layout_transform" for i in range(6)] + ["head/te_layout_transform"]
    extra = peaks["big"] - peaks["toy"]
    assert extra < 192 << 20, f"packing 7 x 64 MiB weights took {extra / (1 << 20):.0f} MiB over the toy compile"
    code, _, _, text = bench.measure(_edgec("run", art, "--compare-onnx", model))
    assert code == 0, text
    outputs = [o.name for o in onnx.load(str(model), load_external_data=False).graph.output]
    assert max(compare_onnx_errors(text, outputs).values()) <= 1e-4, text
    shutil.rmtree(tmp_path, ignore_errors=True)
