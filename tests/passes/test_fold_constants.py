import numpy as np

from edgec.infra.context import PassContext
from edgec.rewrite.testing import assert_model_outputs_match, op_types, parse_proto, run_pipeline

HEADER = '<ir_version: 8, opset_import: ["" : 17]>\n'


def test_folds_constant_arithmetic_and_constant_nodes():
    proto = parse_proto(HEADER + """
    g (float[2,3] x) => (float[2,3] y) <float[3] w = {1.0, 2.0, 3.0}> {
      c = Constant<value = float[3] {0.5, 0.5, 0.5}>()
      s = Add(w, c)
      e = Exp(s)
      y = Mul(x, e)
    }""")
    model, modified = run_pipeline(proto, "fold-constants")
    assert modified
    assert op_types(model) == ["Mul"]
    np.testing.assert_allclose(model.graph.initializers["e"].const_value.numpy(),
                               np.exp([1.5, 2.5, 3.5]).astype(np.float32), rtol=1e-6, atol=0)
    assert_model_outputs_match(proto, model, atol=1e-6, rtol=1e-6)


def test_shape_subgraph_folds_to_constant_reshape():
    proto = parse_proto(HEADER + """
    g (float[2,3,4] x) => (float[6,4] y) {
      sh = Shape(x)
      i0 = Constant<value = int64[1] {0}>()
      i1 = Constant<value = int64[1] {1}>()
      d0 = Gather<axis=0>(sh, i0)
      d1 = Gather<axis=0>(sh, i1)
      p = Mul(d0, d1)
      m1 = Constant<value = int64[1] {-1}>()
      s = Concat<axis=0>(p, m1)
      y = Reshape(x, s)
    }""")
    model, modified = run_pipeline(proto, "fold-constants,eliminate-dead-code")
    assert modified
    assert op_types(model) == ["Reshape"]
    target = model.graph.node(0).inputs[1]
    assert target.is_initializer()
    assert target.const_value.numpy().tolist() == [6, -1]
    assert list(model.graph.initializers) == ["s"]
    assert_model_outputs_match(proto, model, atol=0, rtol=0)


def test_gather_of_static_dim_folds_with_symbolic_batch():
    proto = parse_proto(HEADER + """
    g (float[N,3,4] x) => (float[N,12] y) {
      sh = Shape(x)
      i2 = Constant<value = int64[1] {1}>()
      i3 = Constant<value = int64[1] {2}>()
      d1 = Gather<axis=0>(sh, i2)
      d2 = Gather<axis=0>(sh, i3)
      p = Mul(d1, d2)
      m1 = Constant<value = int64[1] {-1}>()
      s = Concat<axis=0>(m1, p)
      y = Reshape(x, s)
    }""")
    model, modified = run_pipeline(proto, "fold-constants,eliminate-dead-code")
    assert modified
    assert op_types(model) == ["Reshape"]
    assert model.graph.node(0).inputs[1].const_value.numpy().tolist() == [-1, 12]
    assert_model_outputs_match(proto, model, atol=0, rtol=0)


def test_does_not_fire_on_dynamic_inputs_or_overridable_initializers():
    # w is a graph input with a default (initializer): it can be overridden, so never folded.
    proto = parse_proto(HEADER + """
    g (float[N,3] x, float[3] w) => (float[N,3] y, int64[2] s) <float[3] w = {1.0, 2.0, 3.0}> {
      e = Exp(w)
      s = Shape(x)
      y = Mul(x, e)
    }""")
    model, modified = run_pipeline(proto, "fold-constants")
    assert not modified
    assert op_types(model) == ["Exp", "Shape", "Mul"]


def test_skips_random_ops_and_respects_max_bytes():
    proto = parse_proto(HEADER + """
    g (float[2] x) => (float[2] y, float[64] z) <int64[1] n = {64}> {
      r = RandomUniform<shape = [2]>()
      y = Add(x, r)
      big = ConstantOfShape<value = float[1] {1.0}>(n)
      z = Relu(big)
    }""")
    ctx = PassContext(options={"fold-constants": {"max_bytes": 16}})
    model, modified = run_pipeline(proto, "fold-constants", ctx)
    assert not modified
    assert op_types(model) == ["RandomUniform", "Add", "ConstantOfShape", "Relu"]
    model, modified = run_pipeline(proto, "fold-constants{max_bytes=1024}")
    assert modified
    assert op_types(model) == ["RandomUniform", "Add"]
    assert model.graph.outputs[1].const_value.numpy().tolist() == [1.0] * 64


def test_sequence_results_are_not_folded():
    proto = parse_proto(HEADER + """
    g (float[2] x) => (seq(float[2]) y) {
      e = SequenceEmpty<dtype = 1>()
      y = SequenceInsert(e, x)
    }""")
    model, modified = run_pipeline(proto, "fold-constants")
    assert not modified
    assert op_types(model) == ["SequenceEmpty", "SequenceInsert"]


def test_output_size_is_bounded_before_evaluating(monkeypatch):
    # no declared shapes: the sizes come from shape inference on the constant inputs, before
    # anything is allocated (the old check evaluated first and discarded oversize results)
    import edgec.passes.cleanup.fold_constants as fc

    evaluated = []
    real = fc.evaluate_node
    monkeypatch.setattr(fc, "evaluate_node", lambda node, *a: evaluated.append(node.op_type) or real(node, *a))
    proto = parse_proto(HEADER + """
    g (float[2] x) => (float[2] y) <int64[2] big = {64, 64}, int64[1] two = {2}, float[64,1] col = {""" +
                  ", ".join(["1.0"] * 64) + """}, float[1,64] row = {""" + ", ".join(["2.0"] * 64) + """}> {
      c = ConstantOfShape<value = float[1] {1.0}>(big)
      r = Add(col, row)
      s = ConstantOfShape<value = float[1] {3.0}>(two)
      y = Add(x, s)
      z = ReduceSum(c)
      w = ReduceSum(r)
    }""")
    model, modified = run_pipeline(proto, "fold-constants{max_bytes=1024}")
    assert modified and evaluated == ["ConstantOfShape"]  # only the 8-byte one
    assert op_types(model) == ["ConstantOfShape", "Add", "Add", "ReduceSum", "ReduceSum"]
    assert_model_outputs_match(proto, model, atol=0, rtol=0)


def test_training_dropout_is_not_folded():
    proto = parse_proto(HEADER + """
    g (float[8] x) => (float[8] y, float[8] z) <float[8] c = {1, 2, 3, 4, 5, 6, 7, 8}, float r = {0.5},
        bool t = {1}, bool f = {0}> {
      a = Dropout(c, r, t)
      y = Add(x, a)
      b = Dropout(c, r, f)
      z = Add(x, b)
    }""")
    model, modified = run_pipeline(proto, "fold-constants")
    assert modified  # the inference Dropout folds
    assert op_types(model) == ["Dropout", "Add", "Add"]
