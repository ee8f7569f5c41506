"""CLI options of compile/optimize: pipelines, --input-shape, --disable, --timing, --dump-ir."""

from __future__ import annotations

import json

import numpy as np
import onnx

from edgec.reference import run_ort
from tests.conftest import EXAMPLES, model_from_text
from tests.e2e.compile_check import run_and_check

DYNAMIC = """<ir_version: 8, opset_import: ["" : 17]>
agraph (float[N, 3, 8, 8] x) => (float[N, 4] y)
<float[4, 3, 1, 1] w = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2}, int64[2] s = {-1, 4}>
{ c = Conv(x, w)
  p = GlobalAveragePool(c)
  d = Shape(p)
  n = Gather <axis: int = 0> (d, zero)
  y = Reshape(p, s) }""".replace("int64[2] s = {-1, 4}>", "int64[2] s = {-1, 4}, int64 zero = {0}>")


def test_print_pipeline_per_level(run_cli):
    r0 = run_cli("compile", EXAMPLES / "small_cnn.onnx", "-o", "unused", "-O", "0", "--print-pipeline")
    r2 = run_cli("compile", EXAMPLES / "small_cnn.onnx", "-o", "unused", "-O", "2", "--print-pipeline")
    assert r0.code == r2.code == 0
    assert r0.out.startswith("fix-input-shapes,infer-shapes,") and "decompose-rnn" in r0.out
    assert "fold-batchnorm" not in r0.out
    assert "fold-batchnorm" in r2.out and "fold-constants" in r2.out
    r = run_cli("compile", EXAMPLES / "small_cnn.onnx", "-o", "unused", "--passes", "fold-constants{max_bytes=10}",
                "--print-pipeline")
    assert r.out.strip() == "fold-constants{max_bytes=10}"


def test_input_shape_without_fix_input_shapes_is_refused(tmp_path, run_cli):
    r = run_cli("compile", EXAMPLES / "small_cnn.onnx", "-o", tmp_path / "a", "--passes", "infer-shapes",
                "--input-shape", "x=1,3,8,8")
    assert r.code == 2 and "--input-shape needs the fix-input-shapes pass" in r.err, r
    assert len(r.err.strip().splitlines()) == 1 and not (tmp_path / "a").exists()


def test_verify_uses_shapes_given_in_the_pipeline_text(tmp_path, run_cli):
    # --verify seeded its inputs from --input-shape only: shapes in the pipeline text were ignored
    # and the verifier fed batch 1 to a model fix-input-shapes had pinned to batch 2
    src = tmp_path / "dyn.onnx"
    onnx.save(model_from_text(DYNAMIC), src)
    r = run_cli("compile", src, "-t", "x86-64", "-o", tmp_path / "a", "--verify", "--no-cache",
                "--passes", "fix-input-shapes{shapes=x=2x3x8x8},infer-shapes,fold-constants,eliminate-dead-code")
    assert r.code == 0, r
    assert json.loads((tmp_path / "a" / "metadata.json").read_text())["inputs"][0]["shape"] == [2, 3, 8, 8]


def test_dynamic_batch_is_symbolic_and_input_shape_fixes_it(tmp_path, run_cli):
    model = tmp_path / "dyn.onnx"
    onnx.save(model_from_text(DYNAMIC), model)
    r = run_cli("compile", model, "-t", "x86-64", "-o", tmp_path / "a")
    assert r.code == 2 and "--input-shape x=N,3,8,8" in r.err  # without --symbolic-dims
    r = run_cli("compile", model, "-t", "x86-64", "-o", tmp_path / "sym", "--symbolic-dims")
    assert r.code == 0, r
    meta = json.loads((tmp_path / "sym" / "metadata.json").read_text())
    assert meta["inputs"][0]["shape"] == ["N", 3, 8, 8] and meta["outputs"][0]["shape"] == ["N", 4], meta
    for n in (1, 3):  # one artifact, any batch
        x = tmp_path / f"x{n}.npy"
        np.save(x, np.random.default_rng(n).standard_normal((n, 3, 8, 8)).astype(np.float32))
        r = run_cli("run", tmp_path / "sym", "-i", f"x={x}", "--compare-onnx", model)
        assert r.code == 0 and "OK: matches onnxruntime" in r.out, r
    r = run_cli("compile", model, "-t", "x86-64", "-o", tmp_path / "a", "--input-shape", "x=2,3,8,8")
    assert r.code == 0, r
    meta = json.loads((tmp_path / "a" / "metadata.json").read_text())
    assert meta["inputs"][0]["shape"] == [2, 3, 8, 8] and meta["outputs"][0]["shape"] == [2, 4]
    run_and_check(run_cli, tmp_path / "a", model, tmp_path, atol=1e-4)
    r = run_cli("compile", model, "-o", tmp_path / "b", "--input-shape", "nope=1,2")
    assert r.code == 2 and "nope" in r.err


def test_disable_timing_dump_ir(tmp_path, run_cli):
    dump = tmp_path / "dump"
    r = run_cli("compile", EXAMPLES / "small_cnn.onnx", "-t", "x86-64", "-o", tmp_path / "a",
                "--disable", "fold-batchnorm", "--timing", "--dump-ir", dump)
    assert r.code == 0, r
    meta = json.loads((tmp_path / "a" / "metadata.json").read_text())
    ran = {rec["pass"] for rec in meta["pipeline"]["passes"]}
    assert "fold-batchnorm" not in ran and "fold-constants" in ran
    assert meta["pipeline"]["disabled"] == ["fold-batchnorm"]
    assert "[edgec] fold-constants" in r.err
    assert any(p.name.endswith("-fold-constants.txt") for p in dump.iterdir())


def test_verify_passes_on_examples(tmp_path, run_cli):
    r = run_cli("compile", EXAMPLES / "tiny_transformer.onnx", "-t", "x86-64", "-o", tmp_path / "a", "--verify")
    assert r.code == 0 and "verified against onnxruntime" in r.out, r


def test_optimize_writes_onnx_that_onnxruntime_runs(tmp_path, run_cli):
    out = tmp_path / "opt.onnx"
    r = run_cli("optimize", EXAMPLES / "small_cnn.onnx", "-o", out)
    assert r.code == 0, r
    m = onnx.load(out)
    ops = [n.op_type for n in m.graph.node]
    assert "BatchNormalization" not in ops and "FusedConv" in ops
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    got = run_ort(m, {"input": x})["logits"]
    want = run_ort(onnx.load(EXAMPLES / "small_cnn.onnx"), {"input": x})["logits"]
    assert np.abs(got - want).max() <= 1e-4
