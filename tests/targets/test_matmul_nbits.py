"""The weight-only quantized matmul kernel (targets/tvm/nbits_matmul.py, rule matmul_nbits): MatMulNBits
models written by edgec's quantize-weights and by onnxruntime's quantizer compile once with symbolic
dims and match onnxruntime's MatMulNBits at decode (1 row) and prefill sizes; 4 and 8 bits,
symmetric and asymmetric, K padded to whole groups, N no vector divides, a bias and a fused
activation after it. The kernel is the edgec rule's (not a fallback), and the artifact does not
hold the float weights."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h

from edgec.api import CompileOptions, compile_model, run_artifact
from edgec.compare import assert_outputs_match
from edgec.reference import run_ort
from edgec.targets import get_target
from edgec.targets.dot import INT8_X4, dot_instructions
from tests.conftest import require_target_tools
from tests.nbits_reference import at_accuracy_level_0
from tests.passes.test_quantize_weights import matmul_model, ort_quantized, quantize


def _seq_model(k: int, n: int, relu: bool) -> onnx.ModelProto:
    """x[batch, seq, k] -> Gemm-like MatMul + bias (+ Relu), as a transformer's projection."""
    m = matmul_model(k, n)
    g = m.graph
    g.input[0].CopyFrom(h.make_tensor_value_info("x", TP.FLOAT, ["batch", "seq", k]))
    bias = np.random.default_rng(2).standard_normal(n).astype(np.float32)
    g.initializer.append(onnx.numpy_helper.from_array(bias, "bias"))
    g.node[0].output[0] = "mm"
    g.node.append(h.make_node("Add", ["mm", "bias"], ["yb" if relu else "y"]))
    if relu:
        g.node.append(h.make_node("Relu", ["yb"], ["y"]))
    g.output[0].CopyFrom(h.make_tensor_value_info("y", TP.FLOAT, ["batch", "seq", n]))
    return m


def _levels(q: onnx.ModelProto) -> set[int]:
    return {next((a.i for a in n.attribute if a.name == "accuracy_level"), 0) for n in q.graph.node
            if n.op_type == "MatMulNBits"}


def _compile_and_check(q: onnx.ModelProto, tmp_path, shapes) -> int:
    """Compile with symbolic dims; the kernel: int8 activations where the nodes allow it
    (accuracy_level 4) and this host has a dot-product instruction, else float; outputs match
    onnxruntime's (which quantizes A per block too at level 4: the tolerance allows a few roundings
    of A to land the other way, 1e-3 of the output's magnitude; where edgec computes in float, its
    run of the model at level 0, at float tolerance). Returns the artifact's size."""
    path = tmp_path / "q.onnx"
    onnx.save(q, path)
    art = compile_model(path, tmp_path / "art", CompileOptions(target="host", symbolic_dims=True))
    int8 = _levels(q) == {4} and dot_instructions(get_target("host")) in INT8_X4
    rule = "matmul_nbits_int8" if int8 else "matmul_nbits"
    assert art.metadata["lowering"]["schedules"].get(rule, 0) >= 1, art.metadata["lowering"]["schedules"]
    rng = np.random.default_rng(7)
    for shape in shapes:
        feeds = {"x": rng.standard_normal(shape).astype(np.float32)}
        want = run_ort(q if int8 else at_accuracy_level_0(q)[0], feeds)  # tests/nbits_reference.py
        tol = 1e-3 * max(float(np.abs(v).max()) for v in want.values()) if int8 else 1e-4
        assert_outputs_match(run_artifact(art, feeds), want, atol=tol, rtol=1e-4)
    return sum(f.stat().st_size for f in (tmp_path / "art").iterdir())


@pytest.mark.parametrize("level", [0, 4])
@pytest.mark.parametrize("bits,group,symmetric,k,n", [
    (4, 32, True, 96, 40),      # the common int4 case
    (4, 16, False, 80, 37),     # asymmetric zero points, K padded to a whole group of 32, odd N
    (8, 128, False, 200, 24),   # 8 bits, K padded to a whole block of 128
    (4, 32, False, 112, 130),   # several column panels (64 of the int8 kernel, 4 of the float one), the last partial
])
def test_edgec_quantized_matches_onnxruntime(bits, group, symmetric, k, n, level, tmp_path):
    q = quantize(_seq_model(k, n, relu=True), bits=bits, group_size=group, symmetric=symmetric, accuracy_level=level)
    assert [x.op_type for x in q.graph.node].count("MatMulNBits") == 1
    _compile_and_check(q, tmp_path, [(1, 1, k), (2, 17, k)])


def test_onnxruntime_quantized_matches_onnxruntime(tmp_path):
    k, n = 256, 64
    q = ort_quantized(matmul_model(k, n), 32, symmetric=False)
    q.graph.input[0].CopyFrom(h.make_tensor_value_info("x", TP.FLOAT, ["rows", k]))
    _compile_and_check(q, tmp_path, [(1, k), (9, k)])


def test_artifact_holds_packed_not_float_weights(tmp_path):
    k, n = 512, 256
    q = quantize(_seq_model(k, n, relu=False), bits=4, group_size=32)
    size = _compile_and_check(q, tmp_path, [(1, 1, k)])
    assert size < k * n * 4 / 2, f"artifact of {size} bytes for {k * n} 4-bit weights: float weights kept?"


@pytest.mark.parametrize("bits,symmetric", [(4, True), (8, False)])  # 8 bits: weights centered to int8, zero points corrected
def test_armv8_2_uses_sdot_and_matches_under_qemu(bits, symmetric, tmp_path):
    """On armv8.2 (dotprod) the int8-activation kernel is tensorized with `sdot`; the bundle runs
    under qemu and matches onnxruntime's level-4 MatMulNBits on x86."""
    import subprocess

    require_target_tools("armv8.2")
    q = quantize(_seq_model(96, 40, relu=True), bits=bits, group_size=32, symmetric=symmetric)
    q.graph.input[0].CopyFrom(h.make_tensor_value_info("x", TP.FLOAT, [2, 3, 96]))
    q.graph.output[0].CopyFrom(h.make_tensor_value_info("y", TP.FLOAT, [2, 3, 40]))
    path = tmp_path / "q.onnx"
    onnx.save(q, path)
    art = compile_model(path, tmp_path / "art", CompileOptions(target="armv8.2"))
    assert art.metadata["lowering"]["schedules"].get("matmul_nbits_int8") == 1, art.metadata["lowering"]
    dis = subprocess.run(["aarch64-linux-gnu-objdump", "-d", str(tmp_path / "art" / "model.so")],
                         capture_output=True, text=True, check=True).stdout
    assert "sdot" in dis
    feeds = {"x": np.random.default_rng(3).standard_normal((2, 3, 96)).astype(np.float32)}
    want = run_ort(q, feeds)
    assert_outputs_match(run_artifact(art, feeds), want, atol=1e-3 * float(np.abs(want["y"]).max()), rtol=1e-4)
