import copy

import numpy as np

from edgec.rewrite.testing import assert_model_outputs_match, op_types, parse_proto, run_pipeline

HEADER = '<ir_version: 8, opset_import: ["" : 17]>\n'

# `if x.shape[1] > 4`: the condition is a shape computation, constant once shapes are static.
SHAPE_IF = HEADER + """
g (float[2,5] x) => (float[2,5] y) <float[5] w = {1.0, 2.0, 3.0, 4.0, 5.0}> {
  s = Shape(x)
  i1 = Constant<value = int64 {1}>()
  d = Gather<axis=0>(s, i1)
  four = Constant<value = int64 {4}>()
  c = Greater(d, four)
  y = If(c) <
    then_branch = then_g () => (float[2,5] ty) <float[5] k = {0.5, 0.5, 0.5, 0.5, 0.5}> {
      t = Relu(x)
      ty = Mul(t, k)
    },
    else_branch = else_g () => (float[2,5] ey) {
      ey = Neg(x)
    }>
}"""

# Two Ifs whose branches use the same local names ('t', 'k'): legal in separate scopes, a clash
# once both are inlined into the main graph.
TWO_IFS = SHAPE_IF.replace("=> (float[2,5] y)", "=> (float[2,5] z)")[:-1] + """
  y2 = If(c) <
    then_branch = then_h () => (float[2,5] ty2) <float[5] k = {2.0, 2.0, 2.0, 2.0, 2.0}> {
      t = Sigmoid(x)
      ty2 = Add(t, k)
    },
    else_branch = else_h () => (float[2,5] ey2) {
      ey2 = Neg(x)
    }>
  z = Sub(y, y2)
}"""


def test_folds_shape_condition_and_inlines_branches_with_renames():
    proto = parse_proto(TWO_IFS)
    # onnx_ir shares tensors with the proto it read: renaming an initializer renames it there too
    model, modified = run_pipeline(copy.deepcopy(proto), "fold-constants,fold-if,eliminate-dead-code")
    assert modified
    assert op_types(model) == ["Relu", "Mul", "Sigmoid", "Add", "Sub"]
    relu, mul, sig, add, _ = list(model.graph)
    assert {relu.outputs[0].name, sig.outputs[0].name} == {"t", "t_1"}
    assert {mul.inputs[1].name, add.inputs[1].name} == {"k", "k_1"}
    np.testing.assert_array_equal(mul.inputs[1].const_value.numpy(), np.full(5, 0.5, np.float32))
    np.testing.assert_array_equal(add.inputs[1].const_value.numpy(), np.full(5, 2.0, np.float32))
    assert [o.name for o in model.graph.outputs] == ["z"]
    assert_model_outputs_match(proto, model, atol=0, rtol=0)


def test_else_branch_and_if_output_as_graph_output():
    proto = parse_proto(SHAPE_IF.replace("int64 {4}", "int64 {7}"))
    model, modified = run_pipeline(proto, "fold-constants,fold-if,eliminate-dead-code")
    assert modified
    assert op_types(model) == ["Neg"]
    assert not model.graph.initializers
    assert model.graph.node(0).outputs[0].name == "y"
    assert [o.name for o in model.graph.outputs] == ["y"]
    assert_model_outputs_match(proto, model, atol=0, rtol=0)


def test_branch_returning_outer_value_gets_identity_and_nested_if_folds():
    proto = parse_proto(HEADER + """
    g (float[3] x) => (float[3] y, float[3] z) {
      c = Constant<value = bool {1}>()
      y, z = If(c) <
        then_branch = a () => (float[3] o1, float[3] o2) {
          k = Constant<value = bool {0}>()
          o2 = If(k) <
            then_branch = b () => (float[3] p) { p = Sigmoid(x) },
            else_branch = e () => (float[3] q) { q = Tanh(x) }>
          o1 = Identity(x)
        },
        else_branch = b2 () => (float[3] r1, float[3] r2) {
          r1 = Abs(x)
          r2 = Abs(x)
        }>
    }""")
    model, modified = run_pipeline(proto, "fold-constants,fold-if", fixpoint=True)
    assert modified
    assert sorted(op_types(model)) == ["Identity", "Tanh"]
    assert [o.name for o in model.graph.outputs] == ["y", "z"]
    assert_model_outputs_match(proto, model, atol=0, rtol=0)


def test_branch_returning_its_initializer_as_graph_output():
    proto = parse_proto(HEADER + """
    g (float[3] x) => (float[3] y, float[3] z) {
      c = Constant<value = bool {1}>()
      y = If(c) <
        then_branch = a () => (float[3] k) <float[3] k = {1.0, 2.0, 3.0}> { },
        else_branch = b () => (float[3] x3) { x3 = Neg(x) }>
      z = Add(x, y)
    }""")
    model, modified = run_pipeline(proto, "fold-if,eliminate-dead-code")
    assert modified
    assert op_types(model) == ["Identity", "Add"]
    ident = model.graph.node(0)
    assert ident.inputs[0].const_value.numpy().tolist() == [1.0, 2.0, 3.0]
    assert [o.name for o in model.graph.outputs] == ["y", "z"] and ident.outputs[0].name == "y"
    assert_model_outputs_match(proto, model, atol=0, rtol=0)


def test_does_not_fire_on_runtime_condition():
    proto = parse_proto(HEADER + """
    g (float[3] x, bool c) => (float[3] y) {
      y = If(c) <
        then_branch = a () => (float[3] p) { p = Relu(x) },
        else_branch = b () => (float[3] q) { q = Neg(x) }>
    }""")
    model, modified = run_pipeline(proto, "fold-constants,fold-if")
    assert not modified
    assert op_types(model) == ["If"]
