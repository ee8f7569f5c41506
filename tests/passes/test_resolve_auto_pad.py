import onnx_ir as ir
import pytest

from edgec.rewrite.testing import assert_model_outputs_match, op_types, parse_proto, run_pipeline

HEADER = '<ir_version: 8, opset_import: ["" : 17]>\n'


def _model(op: str, attrs: str, x_shape: str, out_shape: str, weight: str = "") -> str:
    w_in = ", float[4,2,3,3] w" if weight else ""
    args = "x, w" if weight else "x"
    return HEADER + f"""
    g (float[{x_shape}] x{w_in}) => (float[{out_shape}] y) {{
      y = {op} <{attrs}> ({args})
    }}"""


CASES = [  # op, attrs, input shape, output shape, expected pads
    ("Conv", 'auto_pad = "SAME_UPPER", strides = [2, 2]', "1,2,7,8", "1,4,4,4", [1, 0, 1, 1]),
    ("Conv", 'auto_pad = "SAME_LOWER", strides = [2, 2]', "1,2,7,8", "1,4,4,4", [1, 1, 1, 0]),
    ("Conv", 'auto_pad = "VALID"', "1,2,7,8", "1,4,5,6", [0, 0, 0, 0]),
    ("MaxPool", 'auto_pad = "SAME_UPPER", kernel_shape = [3, 3], strides = [2, 2]', "1,2,7,8", "1,2,4,4",
     [1, 0, 1, 1]),
    ("AveragePool", 'auto_pad = "SAME_UPPER", kernel_shape = [2, 2], strides = [2, 2]', "1,2,5,5", "1,2,3,3",
     [0, 0, 1, 1]),
    ("AveragePool", 'auto_pad = "SAME_LOWER", kernel_shape = [2, 3]', "1,2,5,6", "1,2,5,6", [1, 1, 0, 1]),
]


@pytest.mark.parametrize("op,attrs,x_shape,out_shape,pads", CASES)
def test_resolves_auto_pad_and_matches_onnxruntime(op, attrs, x_shape, out_shape, pads):
    proto = parse_proto(_model(op, attrs, x_shape, out_shape, weight="w" if op == "Conv" else ""))
    model, modified = run_pipeline(proto, "resolve-auto-pad")
    assert modified
    node = model.graph.node(0)
    assert "auto_pad" not in node.attributes
    assert list(node.attributes["pads"].value) == pads
    assert_model_outputs_match(proto, model, atol=1e-6, rtol=1e-6)


def test_leaves_dynamic_spatial_dims_and_explicit_pads_alone():
    dynamic = parse_proto(_model("MaxPool", 'auto_pad = "SAME_UPPER", kernel_shape = [3, 3]', "1,2,H,W", "1,2,H,W"))
    explicit = parse_proto(_model("MaxPool", "kernel_shape = [3, 3], pads = [1, 1, 1, 1]", "1,2,7,8", "1,2,7,8"))
    for proto in (dynamic, explicit):
        model, modified = run_pipeline(proto, "resolve-auto-pad")
        assert not modified and op_types(model) == ["MaxPool"]
        assert ir.serde.serialize_model(model).graph.node[0].attribute == proto.graph.node[0].attribute


def test_fixed_input_shape_lets_cleanup_resolve_it():
    proto = parse_proto(_model("Conv", 'auto_pad = "SAME_UPPER", strides = [2, 2]', "N,2,H,W", "N,4,H2,W2", weight="w"))
    model, _ = run_pipeline(proto, "fix-input-shapes{shapes=x=1x2x9x9;w=4x2x3x3},infer-shapes,resolve-auto-pad")
    assert list(model.graph.node(0).attributes["pads"].value) == [1, 1, 1, 1]


def test_dilation_enlarges_the_kernel_as_the_onnx_spec_says():
    # onnxruntime refuses dilations with SAME_*; the spec's formula: (k - 1) * d + 1 = 5 rows, 3 columns
    proto = parse_proto(_model("Conv", 'auto_pad = "SAME_UPPER", dilations = [2, 1]', "1,2,7,8", "1,4,7,8", weight="w"))
    model, _ = run_pipeline(proto, "resolve-auto-pad")
    assert list(model.graph.node(0).attributes["pads"].value) == [2, 1, 2, 1]
