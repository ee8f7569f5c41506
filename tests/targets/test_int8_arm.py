"""int8 on armv8.2 (dotprod) against x86: one static-int8 QDQ model (convs with ReLU and ReLU6, a
depthwise conv, a residual Add, Gemm and MatMul), quantized by `edgec quantize`, compiled by
`edgec compile` for armv8.2 (fuse-qdq, int8 kernels tensorized with `sdot`) and for x86 with
AVX-512 VNNI (`vpdpbusd`). The armv8.2 artifact runs under qemu and equals the x86 one (the
integer layers exactly; the float MatMul after the last DequantizeLinear to float rounding), and both equal onnxruntime's run of the QDQ model within the
quantization-step tolerance `--verify` uses (2 steps: a .5 tie an integer kernel rounds the other
way moves later layers a little).

Needs g++-aarch64-linux-gnu and qemu-user (skips naming them otherwise); the x86 artifact runs
only on a CPU with VNNI (compiled and disassembled elsewhere)."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgec.compare import assert_outputs_match
from edgec.infra.quant_steps import output_steps
from edgec.ir import load_model
from edgec.reference import run_ort
from edgec.targets import get_target
from edgec.targets.registry import missing_host_features
from tests.passes.quant_models import write_npy_dir
from tests.targets.arm_models import io_metadata
from tests.targets.qlinear_util import one_node_model, qdata, run_ort_exact

X86 = "x86-64-vnni"
ARM = "armv8.2"
SHAPE = (1, 8, 12, 12)


def _init(name, a):
    return numpy_helper.from_array(np.asarray(a, np.float32), name)


def small_cnn(seed: int = 0) -> onnx.ModelProto:
    """x[1,8,12,12] -> Conv3x3(32)+Relu -> depthwise Conv3x3+Clip(0,6) -> Conv1x1(32)+Relu -> + ->
    Conv3x3 stride 2 (48) -> GlobalAveragePool -> Flatten -> Gemm(transB, 24) -> MatMul(16) -> y[1,16]."""
    r = np.random.default_rng(seed)
    inits = [_init("w1", r.normal(0, 0.2, (32, 8, 3, 3))), _init("b1", r.normal(0, 0.1, 32)),
             _init("wd", r.normal(0, 0.4, (32, 1, 3, 3))), _init("bd", r.normal(0, 0.1, 32)),
             _init("w2", r.normal(0, 0.2, (32, 32, 1, 1))), _init("b2", r.normal(0, 0.1, 32)),
             _init("w3", r.normal(0, 0.1, (48, 32, 3, 3))), _init("b3", r.normal(0, 0.1, 48)),
             _init("wg", r.normal(0, 0.3, (24, 48))), _init("bg", r.normal(0, 0.1, 24)),
             _init("wm", r.normal(0, 0.3, (24, 16))), _init("lo", 0.0), _init("hi", 6.0)]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "wd", "bd"], ["cd"], pads=[1, 1, 1, 1], group=32, name="dwconv"),
        helper.make_node("Clip", ["cd", "lo", "hi"], ["rd"], name="relu6"),
        helper.make_node("Conv", ["rd", "w2", "b2"], ["c2"], name="conv2"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Add", ["r1", "r2"], ["s"], name="add"),
        helper.make_node("Conv", ["s", "w3", "b3"], ["c3"], pads=[1, 1, 1, 1], strides=[2, 2], name="conv3"),
        helper.make_node("GlobalAveragePool", ["c3"], ["p"], name="gap"),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "wg", "bg"], ["g"], transB=1, name="gemm"),
        helper.make_node("MatMul", ["g", "wm"], ["y"], name="matmul"),
    ]
    g = helper.make_graph(nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(SHAPE))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m


def _inputs(seed: int) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).uniform(-1, 1, SHAPE).astype(np.float32)}


def _disassembly(tool: str, lib) -> str:
    return subprocess.run([tool, "-d", str(lib)], capture_output=True, text=True, check=True).stdout


def _count(asm: str, mnemonic: str) -> int:
    return len(re.findall(rf"\t{mnemonic}\s", asm))


def _quantize(run_cli, d):
    src, out = d / "cnn.onnx", d / "cnn.int8.onnx"
    onnx.save(small_cnn(), src)
    calib = write_npy_dir(d / "calib", [_inputs(100 + i)["x"] for i in range(16)])
    r = run_cli("quantize", src, "-o", out, "--calibration-data", calib)
    assert r.code == 0, r
    return out


def _compile(run_cli, model, target: str, out):
    from edgec.artifact import load_artifact

    r = run_cli("compile", model, "-t", target, "-o", out)
    assert r.code == 0, r
    return load_artifact(out)


def test_armv8_2_int8_runs_sdot_under_qemu_and_matches_x86_vnni(run_cli, tmp_path):
    missing = [t for t in ("aarch64-linux-gnu-g++", "aarch64-linux-gnu-objdump", "qemu-aarch64", "objdump")
               if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt packages in .ci/apt-packages.txt)")
    from edgec.artifact_run import run_artifact

    qdq_model = _quantize(run_cli, tmp_path)
    arm = _compile(run_cli, qdq_model, ARM, tmp_path / "arm")
    rules = arm.metadata["lowering"]["schedules"]
    assert (rules.get("conv2d-int8"), rules.get("depthwise-nchwc"), rules.get("matmul_int8")) == (3, 1, 1), rules
    asm = _disassembly("aarch64-linux-gnu-objdump", arm.library)
    # 3 dense convs (16-channel blocks: 4 sdot each) and 2 matmuls
    assert _count(asm, "sdot") >= 20, f"sdot in the armv8.2 library: {_count(asm, 'sdot')}"
    x86 = _compile(run_cli, qdq_model, X86, tmp_path / "x86")
    assert _count(_disassembly("objdump", x86.library), "vpdpbusd") >= 5
    qdq = onnx.load(qdq_model)
    (step,) = output_steps(load_model(qdq)).values()
    ref = {s: run_ort(qdq, _inputs(s)) for s in (1, 2)}
    scale = max(float(np.abs(r["y"]).max()) for r in ref.values())
    # edgec's quantizer leaves the final MatMul float: no step of its own; 2 int8 steps of the output's
    # magnitude, as --verify holds such outputs
    step = step if step is not None else scale / 127
    for s, expected in ref.items():
        got_arm = run_artifact(arm, _inputs(s))
        assert_outputs_match(got_arm, expected, atol=2 * step)
        if missing_host_features(get_target(X86)):
            continue
        got_x86 = run_artifact(x86, _inputs(s))
        assert_outputs_match(got_x86, expected, atol=2 * step)
        # the bar: within one step; measured equal but for the float MatMul's rounding (0.0 here): the
        # integer layers agree exactly (one integer unit off anywhere would move y by ~1e-2)
        assert_outputs_match(got_arm, got_x86, atol=min(step, 1e-5 * scale))
    if missing_host_features(get_target(X86)):
        pytest.skip(f"this CPU lacks {missing_host_features(get_target(X86))}: the x86 VNNI artifact was "
                    "compiled and disassembled, not run; armv8.2 checked against onnxruntime only")


@pytest.mark.parametrize("target,fused", [("armv8.2", True), ("cortex-a55", True), ("cortex-a76", True),
                                          (X86, True), ("armv8", True), ("cortex-a72", True), ("armv7", True),
                                          ("x86-64", True), ("x86-64-avx512", True), ("cuda-sm86", False)])
def test_fuse_qdq_is_in_the_default_pipeline_where_int8_kernels_are(target, fused):
    from edgec.pipelines import default_pipeline

    assert ("fuse-qdq" in default_pipeline(get_target(target), 2).split(",")) == fused


# Single int8 ops on ARM, run under qemu, bit for bit against onnxruntime with exact integer products
# (the same cases as test_qconv_int8.py / test_int8_matmul.py run on x86 VNNI): armv8.2 tensorized
# with sdot, plain armv8 (no dotprod) with widening multiply-accumulates.
KERNEL_TARGETS = {"armv8.2": ("sdot", "sdot"), "armv8": ("neon", "smull")}


def _run_int8_op(proto, inputs, target: str, tmp_path):
    """Lower with the target's int8 family, build, run the bundle under qemu: (outputs, schedule
    rules, disassembly)."""
    from edgec.targets.tvm import bundle, emulate
    from edgec.targets.tvm.build import build_library
    from edgec.targets.tvm.lower import lower_model

    spec = get_target(target)
    missing = [t for t in (spec.cross_compiler, spec.emulator[0], "aarch64-linux-gnu-objdump") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt packages in .ci/apt-packages.txt)")
    mod, _ = lower_model(load_model(proto), dot=KERNEL_TARGETS[target][0])
    res = build_library(mod, spec, tmp_path / "m.so")
    asm = _disassembly("aarch64-linux-gnu-objdump", res.library)
    out = emulate.run_bundle(bundle.make_bundle(spec, res.library, io_metadata(proto), tmp_path / "bundle"),
                             spec, inputs)
    return out, res.schedules, asm


def _assert_exact(got, expected):
    assert set(got) == set(expected)
    for k, e in expected.items():
        assert got[k].shape == e.shape and got[k].dtype == e.dtype, (k, got[k].shape, got[k].dtype, e.shape, e.dtype)
        np.testing.assert_array_equal(got[k], e, err_msg=k)


CONV_CASES = ("3x3-stride2-pad-x-zp", "odd-channels", "relu-fused", "depthwise-odd-stride2-x-zp")


@pytest.mark.parametrize("target", sorted(KERNEL_TARGETS))
@pytest.mark.parametrize("case", CONV_CASES)
def test_int8_conv_on_arm_matches_onnxruntime_exactly(target, case, tmp_path):
    from tests.targets.test_qconv_int8 import CASES, _conv_model

    proto, inputs = _conv_model(3, **CASES[case])
    got, rules, asm = _run_int8_op(proto, inputs, target, tmp_path)
    depthwise = CASES[case].get("group", 1) > 1
    assert rules.get("depthwise-nchwc" if depthwise else "conv2d-int8"), rules
    if not depthwise:
        assert _count(asm, KERNEL_TARGETS[target][1]) >= 4, KERNEL_TARGETS[target]
    _assert_exact(got, run_ort_exact(proto, inputs))


@pytest.mark.parametrize("target", sorted(KERNEL_TARGETS))
@pytest.mark.parametrize("case", ["qlinear-uint8", "qlinear-int8", "qgemm", "b-input"])
def test_int8_matmul_on_arm_matches_onnxruntime_exactly(target, case, tmp_path):
    rng = np.random.default_rng(43)
    u8, i8 = np.uint8, np.int8
    if case == "qgemm":
        a, b = qdata(rng, (19, 52), u8), qdata(rng, (35, 52), i8)
        consts = [("sa", np.float32(0.03)), ("za", u8(126)), ("b", b),
                  ("sb", rng.uniform(0.002, 0.006, 35).astype(np.float32)), ("zb", np.zeros(35, i8)),
                  ("c", rng.integers(-30000, 30000, 35).astype(np.int32)), ("sy", np.float32(0.3)), ("zy", u8(128))]
        proto = one_node_model("QGemm", {"a": a}, consts, TensorProto.UINT8, [19, 35], domain="com.microsoft",
                               order=["a", "sa", "za", "b", "sb", "zb", "c", "sy", "zy"], transB=1, alpha=0.75)
        inputs = {"a": a}
    elif case == "b-input":  # B known only at run time: the generic path (must not use the kernel)
        a, b = qdata(rng, (6, 20), u8), qdata(rng, (20, 9), i8)
        inputs = {"a": a, "b": b}
        proto = one_node_model("MatMulInteger", inputs, [], TensorProto.INT32, None, model_opset=13, order=["a", "b"])
    else:
        at = u8 if case == "qlinear-uint8" else i8
        a, b = qdata(rng, (3, 7, 40), at), qdata(rng, (40, 33), i8)
        consts = [("sa", np.float32(0.05)), ("za", at(120 if at == u8 else -4)), ("b", b),
                  ("sb", rng.uniform(0.002, 0.006, 33).astype(np.float32)), ("zb", np.zeros(33, i8)),
                  ("sy", np.float32(0.6)), ("zy", at(128 if at == u8 else 5))]
        proto = one_node_model("QLinearMatMul", {"a": a}, consts, TensorProto.UINT8 if at == u8 else TensorProto.INT8,
                               None, model_opset=13, order=["a", "sa", "za", "b", "sb", "zb", "sy", "zy"])
        inputs = {"a": a}
    got, rules, asm = _run_int8_op(proto, inputs, target, tmp_path)
    assert bool(rules.get("matmul_int8")) == (case != "b-input"), rules
    if case != "b-input":
        assert _count(asm, KERNEL_TARGETS[target][1]) >= 2, KERNEL_TARGETS[target]
    _assert_exact(got, run_ort_exact(proto, inputs))


def test_armv7_runs_the_int8_model_through_its_call_plan(run_cli, tmp_path):
    """armv7 (no TVM runtime: kernels + call plan) runs the fused int8 model on the int8 kernels
    (widening multiply-accumulates); its scalar (0-d) quantization constants reach the kernels as
    0-d tensors."""
    missing = [t for t in ("arm-linux-gnueabihf-g++", "arm-linux-gnueabihf-objdump", "qemu-arm")
               if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt packages in .ci/apt-packages.txt)")
    from edgec.artifact_run import run_artifact

    qdq_model = _quantize(run_cli, tmp_path)
    art = _compile(run_cli, qdq_model, "armv7", tmp_path / "armv7")
    assert art.metadata["pipeline"]["ops_after"].get("QLinearConv") == 4, art.metadata["pipeline"]["ops_after"]
    rules = art.metadata["lowering"]["schedules"]
    assert (rules.get("conv2d-int8"), rules.get("depthwise-nchwc"), rules.get("matmul_int8")) == (3, 1, 1), rules
    # widening multiply-accumulate: int8 -> int16 (vmovl.s8), int16 x int16 + int32 (vmlal.s16)
    n = _count(_disassembly("arm-linux-gnueabihf-objdump", art.library), "vmlal.s16")
    assert n >= 20, f"vmlal.s16 in the armv7 library: {n}"
    qdq = onnx.load(qdq_model)
    for s in (1, 2):
        expected = run_ort(qdq, _inputs(s))
        assert_outputs_match(run_artifact(art, _inputs(s)), expected, atol=2 * float(np.abs(expected["y"]).max()) / 127)
