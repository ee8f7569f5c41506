"""edgec.ir.constants.const_array: the one "constant behind this value" helper."""

import numpy as np
import onnx_ir as ir

from edgec.ir.constants import const_array


def _graph_with(node_or_none=None, init_is_input=False):
    t = ir.tensor(np.arange(4, dtype=np.float32), name="w")
    w = ir.Value(name="w", shape=ir.Shape([4]), type=ir.TensorType(ir.DataType.FLOAT), const_value=t)
    x = ir.Value(name="x", shape=ir.Shape([4]), type=ir.TensorType(ir.DataType.FLOAT))
    inputs = [x, w] if init_is_input else [x]
    nodes = [node_or_none] if node_or_none is not None else []
    g = ir.Graph(inputs, [], nodes=nodes, initializers=[w], opset_imports={"": 18})
    return g, x, w


def test_initializer_is_constant_unless_also_a_graph_input():
    _, x, w = _graph_with()
    np.testing.assert_array_equal(const_array(w), np.arange(4, dtype=np.float32))
    assert const_array(x) is None and const_array(None) is None
    _, _, w_in = _graph_with(init_is_input=True)
    assert const_array(w_in) is None  # overridable at run time


def test_constant_node_in_either_onnx_domain_spelling():
    for domain in ("", "ai.onnx"):
        node = ir.Node(domain, "Constant", [], [ir.AttrInt64s("value_ints", [3, 1])])
        _graph_with(node)
        np.testing.assert_array_equal(const_array(node.outputs[0]), np.array([3, 1], np.int64))
    node = ir.Node("", "Constant", [], [ir.AttrFloat32("value_float", 2.5)])
    assert const_array(node.outputs[0]).dtype == np.float32
    tensor = ir.Node("", "Constant", [], [ir.AttrTensor("value", ir.tensor(np.eye(2, dtype=np.int32)))])
    np.testing.assert_array_equal(const_array(tensor.outputs[0]), np.eye(2, dtype=np.int32))


def test_not_a_constant_outside_the_onnx_domain_or_computed():
    custom = ir.Node("my.domain", "Constant", [], [ir.AttrInt64s("value_ints", [1])])
    assert const_array(custom.outputs[0]) is None
    g, x, _ = _graph_with()
    relu = ir.Node("", "Relu", [x])
    g.append(relu)
    assert const_array(relu.outputs[0]) is None
