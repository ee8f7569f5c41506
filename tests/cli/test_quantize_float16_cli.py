"""`edgec quantize --mode fp16|bf16` and `edgec compile --quantize fp16|bf16`: mixed-precision
models written and checked, compiled for the host (bfloat16) and for armv8.2 (native float16
arithmetic, run under qemu), compared with onnxruntime on the float32 model; misuse is one line,
exit 2."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import onnx
import pytest

from edgec.compare import assert_outputs_match
from edgec.reference import run_ort
from tests.passes.quant_models import cnn, samples, write_npy_dir

# outputs |y| <= 0.53. float16 in float32 chains: measured 2.7e-4 (float16 ulp at 0.5: 4.9e-4);
# natively in float16 (products accumulated in float16, K <= 72): measured 6.2e-4; bfloat16
# (8-bit mantissa, ulp at 0.5: 3.9e-3; float32 accumulation): measured 2.3e-3
FP16_ATOL, FP16_NATIVE_ATOL, BF16_ATOL = 1e-3, 2e-3, 8e-3


@pytest.fixture
def model(tmp_path):
    p = tmp_path / "cnn.onnx"
    onnx.save(cnn(), p)
    return p


def _x(seed=4):
    return {"x": samples(1, seed=seed)[0]}


def test_quantize_fp16_writes_a_model_onnxruntime_runs(run_cli, model, tmp_path):
    out = tmp_path / "cnn.fp16.onnx"
    r = run_cli("quantize", model, "--mode", "fp16", "-o", out, "--report", "--json")
    assert r.code == 0, r
    res = json.loads(r.out)
    assert res["narrow_nodes"] == 9 and res["float32_nodes"] == 0 and res["casts"] == 2, res
    assert res["report"]["outputs"]["y"]["cosine"] > 0.9999, res["report"]
    q = onnx.load(out)
    assert [i.type.tensor_type.elem_type for i in [*q.graph.input, *q.graph.output]] == [onnx.TensorProto.FLOAT] * 2
    assert_outputs_match(run_ort(q, _x()), run_ort(onnx.load(model), _x()), atol=FP16_ATOL)


def test_quantize_bf16_writes_a_valid_model_and_keep_float(run_cli, model, tmp_path):
    out = tmp_path / "cnn.bf16.onnx"
    r = run_cli("quantize", model, "--mode", "bf16", "-o", out, "--keep-float", "MatMul")
    assert r.code == 0, r
    assert "1 nodes in bfloat16" in r.out, r.out  # Gemm; MatMul kept, Conv has no bfloat16 before opset 22
    q = onnx.load(out)
    onnx.checker.check_model(q, full_check=True)
    assert sum(t.data_type == onnx.TensorProto.BFLOAT16 for t in q.graph.initializer) == 2  # Gemm's W and C


@pytest.mark.parametrize("args,message", [
    (["quantize", "{m}", "--mode", "fp16", "-o", "{o}", "--calibration-data", "{d}"], "needs no calibration data"),
    (["quantize", "{m}", "--mode", "bf16", "-o", "{o}", "--report"], "no bfloat16 kernels"),
    (["quantize", "{m}", "--mode", "int8", "-o", "{o}", "--keep-float", "Softmax"], "fp16 / bf16 only"),
    (["compile", "{m}", "--quantize", "fp16", "-o", "{o}", "--calibration-data", "{d}"], "needs no calibration data"),
    (["compile", "{m}", "--quantize", "bf16", "-t", "cuda-sm86", "-o", "{o}"], "is for CPU targets"),
])
def test_misuse_is_one_line_exit_2(run_cli, model, tmp_path, args, message):
    data = write_npy_dir(tmp_path / "calib", samples(2))
    argv = [a.format(m=model, o=tmp_path / "out", d=data) for a in args]
    r = run_cli(*argv)
    assert r.code == 2 and message in r.err and len(r.err.strip().splitlines()) == 1, r


def test_compile_bf16_for_host_runs_close_to_float32(run_cli, model, tmp_path):
    """--verify: onnxruntime cannot run the bfloat16 model (no kernels); the artifact is checked
    against the float32 model instead."""
    from edgec.api import run_artifact
    from edgec.artifact import load_artifact

    art = tmp_path / "art"
    r = run_cli("compile", model, "--quantize", "bf16", "-t", "host", "-o", art, "--verify")
    assert r.code == 0, r
    assert "from convert-float16 on" in r.out and "the compiled artifact matches" in r.out, r.out
    a = load_artifact(art)
    for seed in (4, 5):
        assert_outputs_match(run_artifact(a, _x(seed)), run_ort(onnx.load(model), _x(seed)), atol=BF16_ATOL)


def test_native_float16_rule():
    """Native float16 arithmetic: a fullfp16 / CUDA target and a model edgec converted; an imported
    float16 model (no mark) is computed in float32 chains, as onnxruntime does."""
    from edgec.passes.quantization.convert_float16 import MARK
    from edgec.targets.registry import get_target
    from edgec.targets.tvm.half import native_float16

    arm, arm80, cuda = get_target("armv8.2"), get_target("armv8"), get_target("cuda-sm86")
    assert native_float16(arm.features, arm.arch, {MARK: "float16"})
    assert native_float16(cuda.features, cuda.arch, {MARK: "float16"})
    assert not native_float16(arm.features, arm.arch, {})            # imported float16 model
    assert not native_float16(arm.features, arm.arch, {MARK: "bfloat16"})
    assert not native_float16(arm80.features, arm80.arch, {MARK: "float16"})  # no fullfp16


def test_compile_fp16_for_armv8_2_computes_in_float16_under_qemu(run_cli, model, tmp_path):
    need = ("aarch64-linux-gnu-g++", "aarch64-linux-gnu-objdump", "qemu-aarch64")
    missing = [t for t in need if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt packages in .ci/apt-packages.txt)")
    from edgec.api import run_artifact
    from edgec.artifact import load_artifact

    art = tmp_path / "art"
    r = run_cli("compile", model, "--quantize", "fp16", "-t", "armv8.2", "-o", art)
    assert r.code == 0, r
    dis = subprocess.run(["aarch64-linux-gnu-objdump", "-d", str(art / "model.so")], capture_output=True,
                         text=True, check=True).stdout
    half_ops = re.findall(r"\b(fmla|fmadd|fmul|fadd|fmax)\s+(h\d+|v\d+\.[48]h)", dis)
    assert len(half_ops) >= 20, f"float16 arithmetic in the library: {len(half_ops)}"
    a = load_artifact(art)
    assert_outputs_match(run_artifact(a, _x()), run_ort(onnx.load(model), _x()), atol=FP16_NATIVE_ATOL)
