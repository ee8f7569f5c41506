"""`edgec quantize --mode int4-weight|int8-weight --group-size N` and `edgec compile --quantize
int4-weight`: the MatMulNBits model written and checked, --verify against it at float tolerance,
misuse of --group-size as one line with exit 2."""

from __future__ import annotations

import json

import onnx

from tests.passes.test_quantize_weights import matmul_model


def test_quantize_int4_weight_with_group_size(run_cli, tmp_path):
    src, out = tmp_path / "mm.onnx", tmp_path / "mm.int4.onnx"
    onnx.save(matmul_model(256, 64), src)
    r = run_cli("quantize", src, "-o", out, "--mode", "int4-weight", "--group-size", "64", "--report", "--json")
    assert r.code == 0, r
    res = json.loads(r.out)
    assert res["weights"] == 1 and res["options"]["group_size"] == 64 and res["options"]["bits"] == 4
    assert res["report"]["outputs"]["y"]["cosine"] > 0.98
    (node,) = onnx.load(out).graph.node
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert node.op_type == "MatMulNBits" and attrs["block_size"] == 64 and attrs["bits"] == 4
    assert out.stat().st_size < src.stat().st_size / 5


def test_compile_quantize_int8_weight_verify(run_cli, tmp_path):
    src, art = tmp_path / "mm.onnx", tmp_path / "art"
    onnx.save(matmul_model(128, 48), src)
    r = run_cli("compile", src, "-t", "x86-64", "--quantize", "int8-weight", "--input-shape", "x=3,128",
                "--verify", "-o", art)
    assert r.code == 0, r
    # accuracy_level 4 (default): activations may be quantized to int8, so the bound is in steps
    assert "after quantize-weights" in r.out and "within 2 quantization steps" in r.out, r.out
    assert "the compiled artifact matches" in r.out, r.out


def test_accuracy_level_0_is_verified_at_float_tolerance(run_cli, tmp_path):
    src, q, art = tmp_path / "mm.onnx", tmp_path / "mm.q.onnx", tmp_path / "art"
    onnx.save(matmul_model(128, 48), src)
    r = run_cli("quantize", src, "-o", q, "--mode", "int8-weight", "--accuracy-level", "0", "--input-shape", "x=3,128")
    assert r.code == 0, r
    (node,) = onnx.load(q).graph.node
    assert {a.name: a.i for a in node.attribute}["accuracy_level"] == 0
    r = run_cli("compile", src, "-t", "x86-64", "--passes", "fix-input-shapes,infer-shapes,quantize-weights{accuracy_level=0},eliminate-dead-code",
                "--input-shape", "x=3,128", "--verify", "-o", art)
    assert r.code == 0, r
    assert "within the float tolerance" in r.out and "the compiled artifact matches" in r.out, r.out


def test_group_size_misuse_is_one_line_exit_2(run_cli, tmp_path):
    src = tmp_path / "mm.onnx"
    onnx.save(matmul_model(64, 16), src)
    cases = [("quantize", src, "-o", tmp_path / "a.onnx", "--mode", "int8", "--group-size", "32"),
             ("quantize", src, "-o", tmp_path / "b.onnx", "--mode", "int4-weight", "--group-size", "48"),
             ("compile", src, "-t", "x86-64", "--group-size", "32", "-o", tmp_path / "art")]
    for args in cases:
        r = run_cli(*args)
        assert r.code == 2 and "group" in r.err and "Traceback" not in r.err, (args, r)
        assert len(r.err.strip().splitlines()) == 1, r.err
    assert not (tmp_path / "a.onnx").exists() and not (tmp_path / "b.onnx").exists()


def test_weights_file_always_keeps_matmulnbits_weights_constant(run_cli, tmp_path):
    """--weights-file always moves big initializers out of the library; MatMulNBits' packed weights
    must stay compile-time constants (its kernel repacks them), not make the model 'unsupported'.
    Also: --input-shape on a MatMulNBits model (ONNX shape inference does not know the op: the
    output's shape comes from the compiled code)."""
    src, q, art = tmp_path / "mm.onnx", tmp_path / "mm.q.onnx", tmp_path / "art"
    onnx.save(matmul_model(256, 64), src)
    # accuracy_level 0: float arithmetic in both runtimes, so the comparison below is at float tolerance
    assert run_cli("quantize", src, "-o", q, "--mode", "int4-weight", "--accuracy-level", "0").code == 0
    r = run_cli("compile", q, "-t", "x86-64", "--input-shape", "x=2,256", "--weights-file", "always", "-o", art)
    assert r.code == 0, r
    r = run_cli("run", art, "--compare-onnx", q)
    assert r.code == 0 and "OK" in r.out, r


def test_gptq_on_a_decoder_and_its_misuse(run_cli, tmp_path):
    out = tmp_path / "g.onnx"
    r = run_cli("quantize", "tests/models/tiny_gpt2_kv.onnx", "-o", out, "--mode", "int4-weight", "--method", "gptq",
                "--samples", "4")
    assert r.code == 0 and "int4-weight, gptq, group size 32" in r.out, r
    assert sum(n.op_type == "MatMulNBits" for n in onnx.load(out).graph.node) >= 8
    src = tmp_path / "mm.onnx"
    onnx.save(matmul_model(64, 16), src)
    cases = [(("--mode", "int8", "--method", "gptq"), "int4-weight"),
             (("--mode", "int4-weight", "--calibration-data", str(tmp_path)), "gptq"),
             (("--mode", "int4-weight", "--method", "entropy"), "rtn or gptq")]
    for args, word in cases:
        r = run_cli("quantize", src, "-o", tmp_path / "x.onnx", *args)
        assert r.code == 2 and word in r.err and "Traceback" not in r.err, (args, r)
        assert len(r.err.strip().splitlines()) == 1, r.err
    assert not (tmp_path / "x.onnx").exists()
