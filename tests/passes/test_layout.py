import json

import numpy as np
import pytest

from edgec.infra.context import PassContext
from edgec.infra.manager import PassManager
from edgec.infra.pipeline import parse_pipeline
from edgec.ir.loader import load_model
from edgec.passes.layout.sink_transposes import SinkTransposes
from edgec.passes.layout.to_nhwc import IO_LAYOUT_KEY, ToNHWC
from edgec.pipelines import default_pipeline
from edgec.rewrite.testing import assert_same_outputs, check_pass, inputs_for, op_list, run
from edgec.targets.registry import get_target
from tests.passes.models import MODELS

HEADER = '<ir_version: 8, opset_import: ["" : 18]>'
NCHW_OPS = {"Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "BatchNormalization", "edgec.FusedConv"}


def assert_transposes_only_at_io(model):
    g = model.graph
    for node in g:
        if node.op_type != "Transpose":
            continue
        src = node.inputs[0].producer()
        assert src is None or src.op_type != "Transpose", f"Transpose pair at {node.name}"
        assert node.inputs[0].is_graph_input() or node.outputs[0].is_graph_output(), \
            f"internal Transpose {node.name}: {op_list(model)}"
    io = len([v for v in g.inputs if v.name not in g.initializers]) + len(g.outputs)
    assert op_list(model).count("Transpose") <= io


def optimize(name, pipeline):
    model = load_model(MODELS[name]())
    feeds = inputs_for(model)
    expected = run(model, feeds)
    model = PassManager(parse_pipeline(pipeline)).run(model, PassContext()).model
    return model, feeds, expected


@pytest.mark.parametrize("name", ["resnet", "mobilenetv2"])
@pytest.mark.parametrize("pipeline", ["infer-shapes,to-nhwc", "arm-O2"])
def test_nhwc_models_cancel_transposes_and_match(name, pipeline):
    if pipeline == "arm-O2":
        pipeline = default_pipeline(get_target("armv8"), 2)
    model, feeds, expected = optimize(name, pipeline)
    ops = op_list(model)
    assert not NCHW_OPS & set(ops), ops
    assert "edgec.ConvNHWC" in ops
    assert_transposes_only_at_io(model)
    assert_same_outputs(expected, run(model, feeds), rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", ["resnet", "mobilenetv2"])
def test_io_layout_nhwc_removes_the_last_transposes(name):
    model, feeds, expected = optimize(name, default_pipeline(get_target("cortex-a72"), 2, io_layout="nhwc"))
    assert "Transpose" not in op_list(model)
    assert json.loads(model.metadata_props[IO_LAYOUT_KEY]) == {"x": "NHWC"}
    assert list(model.graph.inputs[0].shape.dims) == [1, 32, 32, 3]
    nhwc_feeds = {"x": np.ascontiguousarray(feeds["x"].transpose(0, 2, 3, 1))}
    assert_same_outputs(expected, run(model, nhwc_feeds), rtol=0, atol=1e-4)


def test_io_layout_nhwc_output():
    text = HEADER + """
    g (float[1,3,6,6] x) => (float[1,4,6,6] y) <float[4,3,1,1] w = {%s}> {
      c = Conv (x, w)
      y = Relu (c)
    }""" % ", ".join(f"{v:.3f}" for v in np.linspace(-1, 1, 12))
    m = check_pass(text, ToNHWC(), ["Transpose", "edgec.ConvNHWC", "Relu", "Transpose"], rtol=1e-5, atol=1e-5)
    assert m.graph.outputs[0].producer().op_type == "Transpose"
    from edgec.rewrite.testing import parse

    m = parse(text)
    ToNHWC(io_layout="nhwc")(m, PassContext())
    assert op_list(m) == ["edgec.ConvNHWC", "Relu"]
    assert json.loads(m.metadata_props[IO_LAYOUT_KEY]) == {"x": "NHWC", "y": "NHWC"}
    assert m.graph.outputs[0].name == "y" and list(m.graph.outputs[0].shape.dims) == [1, 6, 6, 4]


def test_to_nhwc_must_not_fire_on_non_constant_weight():
    text = HEADER + """
    g (float[1,3,6,6] x, float[4,3,3,3] w) => (float[1,4,4,4] y) { y = Conv (x, w) }"""
    pass_ = ToNHWC()
    check_pass(text, pass_, ["Conv"], modified=False)
    assert any("constant weight" in r for r in pass_.last_trace.declines["ConvToNHWC"])


def test_sink_through_unary_and_binary_with_constant():
    text = HEADER + """
    g (float[1,4,5,3] x) => (float[1,4,5,3] y) <float[3,1,1] c = {1.0, 2.0, 3.0}> {
      t = Transpose <perm = [0,3,1,2]> (x)
      r = Relu (t)
      a = Add (r, c)
      y = Transpose <perm = [0,2,3,1]> (a)
    }"""
    m = check_pass(text, SinkTransposes(), ["Relu", "Add"], rtol=0, atol=0)
    assert list(m.graph.node(1).inputs[1].const_value.numpy().shape) == [1, 1, 1, 3]


def test_sink_concat_maps_axis():
    text = HEADER + """
    g (float[1,4,5,3] x, float[1,4,5,2] z) => (float[1,4,5,5] y) {
      t = Transpose <perm = [0,3,1,2]> (x)
      u = Transpose <perm = [0,3,1,2]> (z)
      c = Concat <axis = 1> (t, u)
      y = Transpose <perm = [0,2,3,1]> (c)
    }"""
    m = check_pass(text, SinkTransposes(), ["Concat"], rtol=0, atol=0)
    assert m.graph.node(0).attributes["axis"].value == 3


@pytest.mark.parametrize("mode,params,inputs,expected", [
    ("linear", '<float[0] roi = {}, float[4] sc = {1.0, 1.0, 2.0, 1.5}>', "t, roi, sc", [1, 2, 1.5, 1]),
    ("nearest", '<int64[4] sz = {1, 3, 10, 6}>', "t, , , sz", [1, 10, 6, 3]),
    ("cubic", '<float[8] roi = {0, 0, 0.1, 0.2, 1, 1, 0.9, 0.7}, float[4] sc = {1.0, 1.0, 2.0, 2.0}>',
     "t, roi, sc", [1, 2, 2, 1]),
])
def test_sink_resize_permutes_its_per_axis_parameters(mode, params, inputs, expected):
    ctm = "tf_crop_and_resize" if mode == "cubic" else "half_pixel"
    text = HEADER + f"""
    g (float[1,4,5,3] x) => (float[1,H,W,3] y) {params} {{
      t = Transpose <perm = [0,3,1,2]> (x)
      r = Resize <mode = "{mode}", coordinate_transformation_mode = "{ctm}"> ({inputs})
      y = Transpose <perm = [0,2,3,1]> (r)
    }}"""
    # cubic sums 4x4 taps with negative weights; onnxruntime walks them in another order on the NHWC
    # tensor, and cancellation leaves 1.14e-6 on an output of 0.11 (measured on an AVX2 EPYC; 10 ulp
    # of max|y|): float reassociation, not a semantic change. The other modes stay at 1e-6.
    tol = 4e-6 if mode == "cubic" else 1e-6
    m = check_pass(text, SinkTransposes(), ["Resize"], rtol=1e-6, atol=tol)
    params = [v.const_value.numpy() for v in m.graph.node(0).inputs[1:] if v is not None and v.name]
    assert params[-1].tolist() == expected  # scales/sizes of NHWC x: the channel entry moved to axis 3
    if mode == "cubic":
        assert params[0].tolist() == pytest.approx([0, 0.1, 0.2, 0, 1, 0.9, 0.7, 1])


def test_sink_resize_declines_runtime_parameters():
    text = HEADER + """
    g (float[1,4,5,3] x, float[8] roi) => (float[1,3,8,10] r) <float[4] sc = {1.0, 1.0, 2.0, 2.0}> {
      t = Transpose <perm = [0,3,1,2]> (x)
      r = Resize <mode = "nearest", coordinate_transformation_mode = "tf_crop_and_resize"> (t, roi, sc)
    }"""
    pass_ = SinkTransposes()
    check_pass(text, pass_, ["Transpose", "Resize"], modified=False)
    assert any("not constant" in r for r in pass_.last_trace.declines["SinkResize"])


def test_sink_must_not_add_transposes():
    # the Transpose also feeds a graph output and Relu's result is no Transpose's input: keep as is
    text = HEADER + """
    g (float[1,4,5,3] x) => (float[1,3,4,5] t, float[1,3,4,5] y) {
      t = Transpose <perm = [0,3,1,2]> (x)
      y = Relu (t)
    }"""
    pass_ = SinkTransposes()
    check_pass(text, pass_, ["Transpose", "Relu"], modified=False)
    assert any("other consumers" in r for r in pass_.last_trace.declines["SinkRelu"])


@pytest.mark.parametrize("target", ["host", "armv8"])
def test_o2_recognises_every_block(target):
    if target == "host":
        try:
            spec = get_target("host")
        except Exception as e:  # non-x86 machine
            pytest.skip(str(e))
    else:
        spec = get_target(target)
    for name in MODELS:
        model, feeds, expected = optimize(name, default_pipeline(spec, 2))
        ops = op_list(model)
        assert "BatchNormalization" not in ops and "Pad" not in ops, (name, ops)
        if name == "bert":
            assert ops.count("edgec.Attention") == 2 and ops.count("LayerNormalization") == 5, ops
            assert ops.count("edgec.Gelu") == 2, ops
            assert not {"Softmax", "Erf", "ReduceMean", "Sqrt", "Pow"} & set(ops), ops
        assert_same_outputs(expected, run(model, feeds), rtol=0, atol=1e-4)


def test_sink_resize_declines_a_cubic_resize_onnxruntime_refuses():
    """Fuzzer (cnn seed 40180, armv8): moving a downsampling cubic Resize to NHWC is exact, but
    onnxruntime refuses cubic on non-innermost axes unless it upsamples, so --verify failed on
    to-nhwc's output. The upsampling case above still moves."""
    text = HEADER + """
    g (float[1,16,16,4] x) => (float[1,4,8,8] r) <int64[4] sz = {1, 4, 8, 8}> {
      t = Transpose <perm = [0,3,1,2]> (x)
      r = Resize <mode = "cubic"> (t, , , sz)
    }"""
    pass_ = SinkTransposes()
    check_pass(text, pass_, ["Transpose", "Resize"], modified=False)
    assert any("onnxruntime refuses" in r for r in pass_.last_trace.declines["SinkResize"])
