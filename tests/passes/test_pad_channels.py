"""pad-channels: activations whose channels the vector block does not divide get zero channels.
Checked against onnxruntime on the unpadded model (seeded inputs) and for the shapes it writes."""

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgec.rewrite.testing import assert_model_outputs_match, op_types, run_pipeline

RNG = np.random.default_rng(0)


def _w(name, *shape):
    return numpy_helper.from_array(RNG.standard_normal(shape).astype(np.float32) * 0.3, name)


def _model(nodes, inits, x_shape, y_shape, outputs=("y",)) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                          [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    m = onnx.shape_inference.infer_shapes(m, strict_mode=True)
    onnx.checker.check_model(m)
    return m


def inverted_residual(c: int = 24, expand: int = 144, out_channels: int = 32, residual_out: bool = False,
                      heavy: bool = False):
    """MobileNetV2-style: a 16->c conv, a block c->expand (1x1, ReLU6) -> depthwise 3x3 (ReLU6) ->
    c (1x1) added to the block input, then c -> out_channels (`heavy`: then two 3x3 128-channel
    convs, so the padded layers are a small part of the work, as in a whole MobileNetV2)."""
    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["a"]),
        helper.make_node("Conv", ["a", "w1", "b1"], ["e"]),
        helper.make_node("Clip", ["e", "lo", "hi"], ["e6"]),
        helper.make_node("Conv", ["e6", "wd", "bd"], ["d"], group=expand, pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["d", "lo", "hi"], ["d6"]),
        helper.make_node("Conv", ["d6", "w2", "b2"], ["p"]),
        helper.make_node("Add", ["a", "p"], ["r"]),
        helper.make_node("Conv", ["r", "w3", "b3"], ["t" if heavy else "y"]),
    ]
    inits = [_w("w0", c, 16, 1, 1), _w("b0", c), _w("w1", expand, c, 1, 1), _w("b1", expand),
             _w("wd", expand, 1, 3, 3), _w("bd", expand), _w("w2", c, expand, 1, 1), _w("b2", c),
             _w("w3", out_channels, c, 1, 1), _w("b3", out_channels),
             numpy_helper.from_array(np.array(0.0, np.float32), "lo"),
             numpy_helper.from_array(np.array(6.0, np.float32), "hi")]
    if heavy:
        nodes += [helper.make_node("Conv", ["t", "w4"], ["u"], pads=[1, 1, 1, 1]),
                  helper.make_node("Conv", ["u", "w5"], ["y"], pads=[1, 1, 1, 1])]
        inits += [_w("w4", 128, out_channels, 3, 3), _w("w5", 128, 128, 3, 3)]
    return _model(nodes, inits, [1, 16, 8, 8], None, outputs=("y", "r") if residual_out else ("y",))


def test_pads_the_24_channel_region_to_32_and_matches_onnxruntime():
    proto = inverted_residual()
    model, modified = run_pipeline(proto, "pad-channels{block=16,max_growth=1}")
    assert modified
    w = [tuple(n.inputs[1].shape) for n in model.graph if n.op_type == "Conv"]
    # producers of the 24-channel region get 32 output channels, consumers 32 input channels;
    # the 144-channel expansion (9 x 16) is left alone
    assert w == [(32, 16, 1, 1), (144, 32, 1, 1), (144, 1, 3, 3), (32, 144, 1, 1), (32, 32, 1, 1)]
    assert op_types(model) == ["Conv", "Conv", "Clip", "Conv", "Clip", "Conv", "Add", "Conv"]
    assert_model_outputs_match(proto, model, atol=1e-6, rtol=1e-6)


def test_pads_after_fusion_fusedconv_with_residual_and_depthwise_region():
    proto = inverted_residual(c=24, expand=72)  # 72 = 4.5 blocks: the depthwise region is padded to 80 too
    model, modified = run_pipeline(proto, "fuse-activation,pad-channels{block=16,max_growth=1},infer-shapes")
    assert modified
    convs = [n for n in model.graph if n.op_type in ("Conv", "FusedConv")]
    dw = [n for n in convs if n.attributes.get("group") is not None and n.attributes["group"].value != 1]
    assert len(dw) == 1 and dw[0].attributes["group"].value == 80 and tuple(dw[0].inputs[1].shape) == (80, 1, 3, 3)
    assert all(int(n.outputs[0].shape[1]) % 16 == 0 for n in convs)
    assert_model_outputs_match(proto, model, atol=1e-6, rtol=1e-6)


def test_per_channel_constants_are_padded_with_neutral_values():
    nodes = [helper.make_node("Conv", ["x", "w0"], ["a"]),
             helper.make_node("Mul", ["a", "s"], ["m"]),
             helper.make_node("Div", ["m", "dv"], ["q"]),
             helper.make_node("Sub", ["q", "t"], ["u"]),
             helper.make_node("Relu", ["u"], ["v"]),
             helper.make_node("Conv", ["v", "w1"], ["y"])]
    inits = [_w("w0", 12, 8, 3, 3), _w("w1", 16, 12, 1, 1), _w("s", 1, 12, 1, 1), _w("t", 12, 1, 1),
             numpy_helper.from_array(RNG.uniform(0.5, 2, (12, 1, 1)).astype(np.float32), "dv")]
    proto = _model(nodes, inits, [1, 8, 6, 6], None)
    model, modified = run_pipeline(proto, "pad-channels{block=8,max_growth=1}")
    assert modified
    by_op = {n.op_type: n for n in model.graph}
    assert tuple(by_op["Mul"].inputs[1].shape) == (1, 16, 1, 1)
    divisor = by_op["Div"].inputs[1].const_value.numpy()
    assert divisor.shape == (16, 1, 1) and np.all(divisor[12:] == 1.0)
    assert_model_outputs_match(proto, model, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("why", ["graph-output", "flatten", "divisible", "off", "too-much-work", "odd-cnn"])
def test_does_not_fire(why):
    if why == "graph-output":  # the 24-channel residual is also a graph output
        proto, pipeline = inverted_residual(residual_out=True, heavy=True), "pad-channels{block=16}"
    elif why == "flatten":  # the region reaches a Flatten (channels would change the flattened size)
        nodes = [helper.make_node("Conv", ["x", "w0"], ["a"]),
                 helper.make_node("GlobalAveragePool", ["a"], ["g"]),
                 helper.make_node("Flatten", ["g"], ["y"])]
        proto, pipeline = _model(nodes, [_w("w0", 24, 16, 1, 1)], [1, 16, 4, 4], None), "pad-channels{block=16}"
    elif why == "divisible":
        proto, pipeline = inverted_residual(c=32, expand=128, heavy=True), "pad-channels{block=16}"
    elif why == "off":  # block 0: no target (the compile path sets the target's vector lanes)
        proto, pipeline = inverted_residual(heavy=True), "pad-channels"
    elif why == "too-much-work":  # the 24-channel layers are most of this block's work: +33% > 10%
        proto, pipeline = inverted_residual(), "pad-channels{block=16}"
    else:  # odd_cnn-style 37-channel 3x3 convs: 37 -> 48 is 1.68x the work of each
        nodes = [helper.make_node("Conv", ["x", "w0"], ["a"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["a"], ["b"]),
                 helper.make_node("Conv", ["b", "w1"], ["y"], pads=[1, 1, 1, 1])]
        proto, pipeline = _model(nodes, [_w("w0", 37, 16, 3, 3), _w("w1", 64, 37, 3, 3)], [1, 16, 8, 8], None), \
            "pad-channels{block=16}"
    model, modified = run_pipeline(proto, pipeline)
    assert not modified, why
    init = {i.name: tuple(i.dims) for i in proto.graph.initializer}
    assert all(tuple(n.inputs[1].shape) == init[n.inputs[1].name] for n in model.graph if n.op_type == "Conv")


def test_compile_path_sets_the_block_from_the_target():
    import onnx_ir as ir

    from edgec.api import CompileOptions, optimize
    from edgec.targets.registry import get_target

    proto = inverted_residual(heavy=True)
    opts = CompileOptions(target="x86-64-avx512")
    model, info = optimize(ir.serde.deserialize_model(proto), get_target("x86-64-avx512"), opts)
    assert any(p["pass"] == "pad-channels" and p["modified"] for p in info["passes"])
    model2, info2 = optimize(ir.serde.deserialize_model(proto), get_target("x86-64"), CompileOptions(target="x86-64"))
    # AVX2: 8 lanes divide 24: nothing to pad
    assert not any(p["pass"] == "pad-channels" and p["modified"] for p in info2["passes"])
    assert_model_outputs_match(proto, model, atol=1e-5, rtol=1e-5)


def _two_conv_region(middle: list, extra_inits: list, c: int = 24) -> onnx.ModelProto:
    """x -> Conv a, Conv b (c channels each) -> `middle` nodes producing 'm' -> 1x1 Conv -> y."""
    nodes = [helper.make_node("Conv", ["x", "wa"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["x", "wb"], ["b"], pads=[1, 1, 1, 1]),
             *middle, helper.make_node("Conv", ["m", "wy"], ["y"])]
    inits = [_w("wa", c, 16, 3, 3), _w("wb", c, 16, 3, 3), _w("wy", 40, c, 1, 1), *extra_inits]
    return _model(nodes, inits, [1, 16, 6, 6], None)


def _const(name, value, c=24):
    return numpy_helper.from_array(np.full((1, c, 1, 1), value, np.float32), name)


UNSAFE_DIVISORS = {  # the divisor's padded channels would hold 0: 0/0 = NaN spread by the next conv
    "div-of-two-convs": ([helper.make_node("Div", ["a", "b"], ["m"])], []),
    "relu-plus-c": ([helper.make_node("Relu", ["b"], ["r"]), helper.make_node("Add", ["r", "c"], ["d"]),
                     helper.make_node("Div", ["a", "d"], ["m"])], [_const("c", 0.5)]),
    "sigmoid-times-c": ([helper.make_node("Sigmoid", ["b"], ["s"]), helper.make_node("Mul", ["s", "c"], ["d"]),
                         helper.make_node("Div", ["a", "d"], ["m"])], [_const("c", 2.0)]),
    "constant-over-computed": ([helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node("Abs", ["s"], ["t"]),
                                helper.make_node("Add", ["t", "c"], ["d"]), helper.make_node("Div", ["c", "d"], ["m"])],
                               [_const("c", 1.0)]),
}
NOT_FINITE_EVERYWHERE = ["Exp", "Log", "Sqrt", "Reciprocal", "Softplus"]  # overflow or undefined at finite x


@pytest.mark.parametrize("case", sorted(UNSAFE_DIVISORS))
def test_does_not_pad_a_division_by_a_computed_tensor(case):
    proto = _two_conv_region(*UNSAFE_DIVISORS[case])
    model, modified = run_pipeline(proto, "pad-channels{block=16,max_growth=1}")
    assert not modified, case
    assert_model_outputs_match(proto, model, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("op", NOT_FINITE_EVERYWHERE)
def test_does_not_pad_through_ops_that_are_not_finite_everywhere(op):
    proto = _two_conv_region([helper.make_node("Add", ["a", "b"], ["s"]), helper.make_node(op, ["s"], ["m"])], [])
    model, modified = run_pipeline(proto, "pad-channels{block=16,max_growth=1}")
    assert not modified, op


def test_still_pads_through_safe_ops_between_two_convs():
    middle = [helper.make_node("Sigmoid", ["b"], ["s"]), helper.make_node("Mul", ["a", "s"], ["p"]),
              helper.make_node("Sub", ["p", "a"], ["q"]), helper.make_node("Div", ["q", "dv"], ["m"])]
    proto = _two_conv_region(middle, [_const("dv", 3.0)])
    model, modified = run_pipeline(proto, "pad-channels{block=16,max_growth=1}")
    assert modified
    assert [tuple(n.inputs[1].shape) for n in model.graph if n.op_type == "Conv"] == [(32, 16, 3, 3), (32, 16, 3, 3), (40, 32, 1, 1)]
    assert_model_outputs_match(proto, model, atol=1e-6, rtol=1e-6)


def test_issue_model_compiles_and_matches_at_the_default_level(tmp_path):
    """The report: Conv(x,w1)/Conv(x,w2) then a Conv, 60 channels, was all-NaN at -O2 and every check said OK."""
    from edgec.differential import check_model

    c = 60
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["x", "w2"], ["b"], pads=[1, 1, 1, 1]),
             helper.make_node("Div", ["a", "b"], ["d"]), helper.make_node("Conv", ["d", "w3"], ["y"])]
    proto = _model(nodes, [_w("w1", c, 3, 3, 3), _w("w2", c, 3, 3, 3), _w("w3", 8, c, 1, 1)], [1, 3, 8, 8], None)
    for level in (0, 2):
        outcome = check_model(proto, target="x86-64", opt_level=level, workdir=tmp_path)
        assert outcome.kind == "match", (level, outcome)


def _quantized_inverted_residual(tmp_path, residual_out=False):
    """`inverted_residual(heavy=True)` quantized (edgec's static int8, per-channel weights) and
    fused into QLinearConv / integer Clip / per-tensor Q-DQ around the float residual Add."""
    from edgec.infra.context import PassContext
    from edgec.ir.loader import to_proto
    from edgec.passes.quantization.fuse_qdq import FuseQdq
    from edgec.passes.quantization.quantize_static import QuantizeStatic
    from tests.passes.quant_models import write_npy_dir

    proto = inverted_residual(residual_out=residual_out, heavy=True)
    rng = np.random.default_rng(7)
    data = write_npy_dir(tmp_path / "calib", [rng.uniform(-1, 1, (1, 16, 8, 8)).astype(np.float32) for _ in range(4)])
    model = ir.serde.deserialize_model(proto)
    QuantizeStatic()(model, PassContext(options={"quantize-static": {"data": data}}))
    model = FuseQdq()(model, PassContext()).model
    fused = to_proto(model)
    # every conv but the last (the graph output: no QuantizeLinear after it) is a QLinearConv
    assert sum(n.op_type == "QLinearConv" for n in fused.graph.node) == 6
    return fused


def _exact_outputs(proto, seed):
    from edgec.reference import run_ort
    from edgec.reference_exact import exact_ort_model

    x = {"x": np.random.default_rng(seed).uniform(-1, 1, (1, 16, 8, 8)).astype(np.float32)}
    return run_ort(*exact_ort_model(proto, x))


def test_quantized_region_qlinearconv_and_qdq_is_padded_bit_exactly(tmp_path):
    fused = _quantized_inverted_residual(tmp_path)
    model, modified = run_pipeline(fused, "pad-channels{block=16}")
    assert modified
    convs = [n for n in model.graph if n.op_type == "QLinearConv"]
    # weights (input 3): producers of the 24-channel region get 32 output channels (and 32 weight
    # scales / zero points / biases), consumers 32 input channels; the residual's Q/DQ carry 32
    assert [tuple(n.inputs[3].shape) for n in convs] == [
        (32, 16, 1, 1), (144, 32, 1, 1), (144, 1, 3, 3), (32, 144, 1, 1), (32, 32, 1, 1), (128, 32, 3, 3)]
    for n in (convs[0], convs[3]):
        assert [tuple(n.inputs[i].shape) for i in (4, 5, 8)] == [(32,), (32,), (32,)]
        assert np.all(n.inputs[4].const_value.numpy()[24:] == 1.0) and not n.inputs[8].const_value.numpy()[24:].any()
    add = next(n for n in model.graph if n.op_type == "Add")
    assert all(int(v.shape[1]) == 32 for v in add.inputs)
    padded = ir.serde.serialize_model(model)
    onnx.checker.check_model(padded)
    for seed in range(3):  # integer arithmetic: the same bits, not just close
        a, b = _exact_outputs(fused, seed), _exact_outputs(padded, seed)
        assert set(a) == set(b) and a["y"].shape == b["y"].shape
        np.testing.assert_array_equal(a["y"], b["y"])


def test_quantized_region_reaching_a_graph_output_is_not_padded(tmp_path):
    fused = _quantized_inverted_residual(tmp_path, residual_out=True)
    model, modified = run_pipeline(fused, "pad-channels{block=16}")
    assert not modified
    init = {i.name: tuple(i.dims) for i in fused.graph.initializer}
    assert all(tuple(n.inputs[3].shape) == init[n.inputs[3].name] for n in model.graph if n.op_type == "QLinearConv")
