"""int8 kernels on x86 AVX2 without VNNI (target x86-64): conv and matmul tensorized with `vpmaddwd`
(int16 pairs -> int32: operands widened to int16, exact), bit for bit against onnxruntime with exact
integer products; the generic path where the kernel must not apply. Runs on any x86 host with AVX2
(the kernels use no AVX-512)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from onnx import TensorProto

from edgec.ir import graph_inputs, load_model
from edgec.targets import get_target
from edgec.targets.registry import missing_host_features
from tests.targets.qlinear_util import one_node_model, qdata, run_ort_exact
from tests.targets.test_qconv_int8 import CASES, _conv_model

TARGET = "x86-64"
U8, I8 = np.uint8, np.int8


def _run(proto, inputs, tmp_path):
    """Lower with the target's int8 family, build, disassemble, run: (outputs, schedule rules, asm)."""
    from edgec.targets.tvm.build import build_library
    from edgec.targets.tvm.lower import lower_model
    from edgec.targets.tvm.runtime import LoadedModel
    from edgec.targets.tvm.schedules.int8_dot import dot_instructions

    spec = get_target(TARGET)
    assert dot_instructions(spec) == "pmaddwd"
    m = load_model(proto)
    mod, _ = lower_model(m, dot=dot_instructions(spec))
    res = build_library(mod, spec, tmp_path / "m.so")
    asm = subprocess.run(["objdump", "-d", str(res.library)], capture_output=True, text=True, check=True).stdout
    if missing_host_features(spec):
        pytest.skip(f"this CPU lacks {missing_host_features(spec)}: compiled, not run")
    lm = LoadedModel(res.library, [t.name for t in graph_inputs(m)], [v.name for v in m.graph.outputs])
    return lm.run(inputs), res.schedules, asm


def _assert_exact(got, expected):
    assert set(got) == set(expected)
    for k, e in expected.items():
        assert got[k].shape == e.shape and got[k].dtype == e.dtype, (k, got[k].shape, got[k].dtype, e.shape, e.dtype)
        np.testing.assert_array_equal(got[k], e, err_msg=k)


@pytest.mark.parametrize("case", ["3x3-stride2-pad-x-zp", "odd-channels", "relu-fused", "1x1-per-tensor-no-bias",
                                  "depthwise-odd-stride2-x-zp"])
def test_int8_conv_on_avx2_matches_onnxruntime_exactly(case, tmp_path):
    proto, inputs = _conv_model(3, **CASES[case])
    got, rules, asm = _run(proto, inputs, tmp_path)
    if CASES[case].get("group", 1) > 1:
        assert rules.get("depthwise-nchwc"), rules
    else:
        assert rules.get("conv2d-int8"), rules
        assert asm.count("vpmaddwd") >= 8
    assert "vpdpbusd" not in asm and "zmm" not in asm
    _assert_exact(got, run_ort_exact(proto, inputs))


@pytest.mark.parametrize("case", ["qlinear-uint8", "qlinear-int8", "matmul-integer-3d", "b-input"])
def test_int8_matmul_on_avx2_matches_onnxruntime_exactly(case, tmp_path):
    rng = np.random.default_rng(45)
    if case == "b-input":  # B known only at run time: the generic path
        a, b = qdata(rng, (6, 20), U8), qdata(rng, (20, 9), I8)
        inputs = {"a": a, "b": b}
        proto = one_node_model("MatMulInteger", inputs, [], TensorProto.INT32, None, model_opset=13, order=["a", "b"])
    elif case == "matmul-integer-3d":  # K, N no tile divides, per-column B zero points
        a, b = qdata(rng, (2, 5, 13), U8), rng.integers(-120, 121, (13, 21)).astype(I8)
        inputs = {"a": a, "azp": np.asarray(U8(7))}
        proto = one_node_model("MatMulInteger", inputs, [("b", b), ("bzp", rng.integers(-7, 8, 21).astype(I8))],
                               TensorProto.INT32, None, model_opset=13, order=["a", "b", "azp", "bzp"])
    else:
        at = U8 if case == "qlinear-uint8" else I8
        a, b = qdata(rng, (3, 7, 40), at), qdata(rng, (40, 33), I8)
        consts = [("sa", np.float32(0.05)), ("za", at(120 if at == U8 else -4)), ("b", b),
                  ("sb", rng.uniform(0.002, 0.006, 33).astype(np.float32)), ("zb", np.zeros(33, I8)),
                  ("sy", np.float32(0.6)), ("zy", at(128 if at == U8 else 5))]
        proto = one_node_model("QLinearMatMul", {"a": a}, consts, TensorProto.UINT8 if at == U8 else TensorProto.INT8,
                               None, model_opset=13, order=["a", "sa", "za", "b", "sb", "zb", "sy", "zy"])
        inputs = {"a": a}
    got, rules, asm = _run(proto, inputs, tmp_path)
    assert bool(rules.get("matmul_int8")) == (case != "b-input"), rules
    if case != "b-input":
        assert asm.count("vpmaddwd") >= 2
    _assert_exact(got, run_ort_exact(proto, inputs))


def test_edgec_quantized_cnn_on_avx2_runs_the_int8_kernels(run_cli, tmp_path):
    """The whole-model path (fuse-qdq in x86-64's default pipeline, int8 convs kept in NCHW16c from
    one to the next, the epilogues fused): within 2 quantization steps of onnxruntime on the QDQ model."""
    from edgec.api import run_artifact
    from edgec.compare import assert_outputs_match
    from edgec.reference import run_ort
    from tests.targets.test_int8_arm import _compile, _count, _disassembly, _inputs, _quantize

    qdq_model = _quantize(run_cli, tmp_path)
    art = _compile(run_cli, qdq_model, TARGET, tmp_path / "avx2")
    rules = art.metadata["lowering"]["schedules"]
    assert (rules.get("conv2d-int8"), rules.get("depthwise-nchwc"), rules.get("matmul_int8")) == (3, 1, 1), rules
    assert _count(_disassembly("objdump", art.library), "vpmaddwd") >= 20
    if missing_host_features(get_target(TARGET)):
        pytest.skip(f"this CPU lacks {missing_host_features(get_target(TARGET))}: compiled, not run")
    import onnx

    qdq = onnx.load(qdq_model)
    for s in (1, 2):
        expected = run_ort(qdq, _inputs(s))
        assert_outputs_match(run_artifact(art, _inputs(s)), expected, atol=2 * float(np.abs(expected["y"]).max()) / 127)
