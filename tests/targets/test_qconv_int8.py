"""The int8 QLinearConv path for VNNI targets (ops/qconv_int8.py, conv_int8.py, schedules/conv_int8.py):
uint8 x int8 conv2d (dense: vpdpbusd; depthwise: int32 vector multiply-adds), exact against
onnxruntime with exact integer products; the generic lowering where the path does not apply."""

from __future__ import annotations

import subprocess

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgec.ir import graph_inputs, load_model
from edgec.targets import get_target
from edgec.targets.registry import missing_host_features
from tests.targets.qlinear_util import qdata, run_ort_exact

U8, I8 = np.uint8, np.int8
TARGET = "x86-64-vnni"


def _conv_model(seed, *, c=32, m=32, hw=9, k=3, group=1, per_channel=True, bias=True, x_zp=0, w_zp=0,
                relu=False, clip=None, weight_input=False, **attrs):
    rng = np.random.default_rng(seed)
    x = qdata(rng, (1, c, hw, hw), U8)
    w = qdata(rng, (m, c // group, k, k), I8)
    w_scale = rng.uniform(0.002, 0.01, m).astype(np.float32) if per_channel else np.float32(0.004)
    w_zpv = np.full(m, w_zp, I8) if per_channel else I8(w_zp)
    inits = [numpy_helper.from_array(np.asarray(v), n) for n, v in (
        ("x_scale", np.float32(0.02)), ("x_zp", U8(x_zp)), ("w_scale", w_scale), ("w_zp", w_zpv),
        ("y_scale", np.float32(0.05 * np.sqrt(c // group * k * k / 9))), ("y_zp", U8(118)))]
    inputs = {"x": x}
    if weight_input:
        inputs["w"] = w
    else:
        inits.append(numpy_helper.from_array(w, "w"))
    names = ["x", "x_scale", "x_zp", "w", "w_scale", "w_zp", "y_scale", "y_zp"]
    if bias:
        inits.append(numpy_helper.from_array(rng.integers(-5000, 5000, m).astype(np.int32), "b"))
        names.append("b")
    nodes = [helper.make_node("QLinearConv", names, ["q" if relu or clip else "y"], group=group, **attrs)]
    if relu:
        nodes.append(helper.make_node("Max", ["q", "y_zp"], ["y"]))
    if clip:  # fuse-qdq's ReLU6: an integer Clip
        inits += [numpy_helper.from_array(U8(clip[0]), "lo"), numpy_helper.from_array(U8(clip[1]), "hi")]
        nodes.append(helper.make_node("Clip", ["q", "lo", "hi"], ["y"]))
    g = helper.make_graph(nodes, "q", [helper.make_tensor_value_info(n, TensorProto.UINT8 if a.dtype == U8 else
                                                                     TensorProto.INT8, list(a.shape))
                                       for n, a in inputs.items()],
                          [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], inits)
    proto = helper.make_model(g, opset_imports=[helper.make_opsetid("", 19)])
    proto.ir_version = 9
    return onnx.shape_inference.infer_shapes(proto, strict_mode=True), inputs


def _build(proto, tmp_path, dot="vnni"):
    from edgec.targets.tvm.build import build_library
    from edgec.targets.tvm.lower import lower_model

    m = load_model(proto)
    mod, _ = lower_model(m, dot=dot)
    res = build_library(mod, get_target(TARGET), tmp_path / "m.so")
    return m, mod, res


def _run(proto, inputs, tmp_path, dot="vnni"):
    from edgec.targets.tvm.runtime import LoadedModel

    m, mod, res = _build(proto, tmp_path, dot)
    if missing_host_features(get_target(TARGET)):
        pytest.skip("this CPU lacks AVX-512 VNNI: compiled, not run")
    lm = LoadedModel(res.library, [t.name for t in graph_inputs(m)], [v.name for v in m.graph.outputs])
    return lm.run(inputs), mod, res


def _assert_exact(proto, inputs, got):
    exp = run_ort_exact(proto, inputs)
    assert set(got) == set(exp)
    for k, e in exp.items():
        a = got[k]
        assert a.shape == e.shape and a.dtype == e.dtype, (k, a.shape, a.dtype, e.shape, e.dtype)
        np.testing.assert_array_equal(a, e, err_msg=k)
    y = got["y"]
    assert len(np.unique(y)) > 20, "output nearly constant: the case tests little"


CASES = {
    "3x3-per-channel-bias": dict(pads=[1, 1, 1, 1]),
    "3x3-stride2-pad-x-zp": dict(pads=[1, 1, 1, 1], strides=[2, 2], x_zp=37),  # border correction
    "3x3-asymmetric-pads-stride": dict(pads=[1, 0, 2, 1], strides=[2, 1], x_zp=5),
    "1x1-per-tensor-no-bias": dict(c=64, m=48, k=1, per_channel=False, bias=False, x_zp=90),
    "odd-channels": dict(c=19, m=21, hw=10, pads=[1, 1, 1, 1], x_zp=128),  # padded to 16, packed per op
    "relu-fused": dict(pads=[1, 1, 1, 1], relu=True),
    "clip-fused": dict(c=16, m=48, k=1, clip=(100, 170)),
    "depthwise": dict(c=32, m=32, group=32, pads=[1, 1, 1, 1]),
    "depthwise-odd-stride2-x-zp": dict(c=24, m=24, group=24, hw=11, pads=[1, 1, 1, 1], strides=[2, 2], x_zp=60),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_int8_conv_matches_onnxruntime_exactly(case, tmp_path):
    proto, inputs = _conv_model(3, **CASES[case])
    got, mod, res = _run(proto, inputs, tmp_path)
    text = mod["main"].script()
    assert 'R.nn.conv2d(x, metadata' in text and 'out_dtype="int32"' in text, "the int8 path did not fire"
    rule = "depthwise-nchwc" if CASES[case].get("group", 1) > 1 else "conv2d-int8"
    assert res.schedules.get(rule), res.schedules
    _assert_exact(proto, inputs, got)


@pytest.mark.parametrize("why", ["weight-zero-point", "runtime-weight"])
def test_unprovable_convs_take_the_generic_path_and_stay_exact(why, tmp_path):
    kw = {"w_zp": 3} if why == "weight-zero-point" else {"weight_input": True}
    proto, inputs = _conv_model(4, pads=[1, 1, 1, 1], x_zp=11, **kw)
    got, mod, res = _run(proto, inputs, tmp_path)
    assert not res.schedules.get("conv2d-int8"), res.schedules
    assert 'R.nn.conv2d(x,' not in mod["main"].script()  # the generic path centers x first
    _assert_exact(proto, inputs, got)


def test_targets_without_vnni_keep_the_generic_lowering():
    from edgec.targets.tvm.lower import lower_model

    proto, _ = _conv_model(5, pads=[1, 1, 1, 1])
    text = lower_model(load_model(proto), dot=None)[0]["main"].script()
    assert 'R.nn.conv2d(x,' not in text


def test_vnni_artifact_contains_vpdpbusd(tmp_path):
    proto, _ = _conv_model(6, c=64, m=64, hw=14, pads=[1, 1, 1, 1])
    _, _, res = _build(proto, tmp_path)
    asm = subprocess.run(["objdump", "-d", str(res.library)], capture_output=True, text=True, check=True).stdout
    assert "vpdpbusd" in asm



def _stem_model(seed, m):
    """A 3-channel stem QLinearConv (3x3, stride 2, padding, x zero point) -> a 1x1 QLinearConv
    m -> 16: the second conv is what puts the graph in the blocked layout."""
    proto, inputs = _conv_model(seed, c=3, m=m, hw=17, pads=[1, 1, 1, 1], strides=[2, 2], x_zp=37)
    g = proto.graph
    rng = np.random.default_rng(seed + 1)
    g.node[0].output[0] = "s"
    g.initializer.extend([numpy_helper.from_array(qdata(rng, (16, m, 1, 1), I8), "w2"),
                          numpy_helper.from_array(rng.uniform(0.002, 0.01, 16).astype(np.float32), "w2_scale"),
                          numpy_helper.from_array(np.float32(0.08), "y2_scale")])
    g.node.append(helper.make_node("QLinearConv", ["s", "y_scale", "y_zp", "w2", "w2_scale", "w_zp2", "y2_scale",
                                                   "y_zp"], ["y"]))
    g.initializer.append(numpy_helper.from_array(np.zeros(16, I8), "w_zp2"))
    del g.value_info[:]
    g.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.UINT8, None))
    return onnx.shape_inference.infer_shapes(proto, strict_mode=True), inputs


def _optimized_main(mod) -> str:
    from edgec.targets.tvm.build import optimize_relax, tvm_target

    spec = get_target(TARGET)
    return optimize_relax(mod, tvm_target(spec), spec)["main"].script()


@pytest.mark.parametrize("m", [32, 24])
def test_stem_conv_reads_4_channel_blocks_and_writes_nchw16c(m, tmp_path):
    """An image stem (3 input channels): the input is packed in blocks of 4 channels, not 16, and
    with output channels the block divides (32) the kernel writes NCHW16c itself (no unpack to
    NCHW); with 24 it must not: NCHW out through the unpack, as every unblockable conv."""
    proto, inputs = _stem_model(8, m)
    got, mod, res = _run(proto, inputs, tmp_path)
    assert res.schedules.get("conv2d-int8"), res.schedules
    text = _optimized_main(mod)
    assert "R.Tensor((1, 1, 17, 17, 4), dtype=\"uint8\")" in text
    assert ("unpack_nchwc" in text) == (m % 16 != 0), text
    _assert_exact(proto, inputs, got)


def test_knob_space_candidates_build_and_agree_with_the_rule(tmp_path):
    """`edgec tune --space knobs` for conv2d-int8: the rule's default first, then other register
    tiles / parallel grains; every candidate builds (vpdpbusd) and computes the same integers."""
    import tvm

    from edgec.targets.tvm.build import optimize_relax, tvm_target
    from edgec.targets.tvm.lower import lower_model
    from edgec.targets.tvm.schedules import context_for, knob_space, schedule_func

    proto, _ = _conv_model(9, c=32, m=64, hw=12, pads=[1, 1, 1, 1])
    spec = get_target(TARGET)
    target = tvm_target(spec)
    mod = optimize_relax(lower_model(load_model(proto), dot="vnni")[0], target, spec)
    ctx = context_for(spec, target, 2)
    func = next(mod[g] for g in mod.get_global_vars() if "conv2d_u8s8" in g.name_hint)
    space = knob_space(func, ctx)
    assert space[0]["rule"] == "conv2d-int8" and len(space) >= 4, space
    assert len({tuple(sorted(k.items())) for k in space}) == len(space)
    run = not missing_host_features(spec)
    rng = np.random.default_rng(0)

    def arg(p):  # the kernel's inputs: data, packed weights, correction, requantize scale, zero point
        shape, dt = [int(d) for d in p.ty.shape], str(p.ty.dtype)
        if dt == "float32":
            return rng.uniform(0.001, 0.003, shape).astype(dt)
        lo, hi = {"uint8": (0, 256), "int8": (-128, 128)}.get(dt, (-3000, 3000))
        return rng.integers(lo, hi, shape).astype(dt)

    args = [arg(p) for p in func.params]
    outs = []
    for knobs in space[:6]:
        f, rule = schedule_func(func, ctx, knobs=knobs)
        assert rule == "conv2d-int8"
        lib = tvm.compile(tvm.IRModule({"main": f.with_attr("global_symbol", "main")}), target=target)
        if run:
            dev = tvm.cpu()
            tv = [tvm.runtime.tensor(a, dev) for a in args]
            lib.mod["main"](*tv)
            outs.append(tv[-1].numpy())
    assert not outs or (len(outs) == 6 and len(np.unique(outs[0])) > 20)
    for o in outs[1:]:
        np.testing.assert_array_equal(o, outs[0])
