from edgec.rewrite.testing import assert_model_outputs_match, op_types, parse_proto, run_pipeline

HEADER = '<ir_version: 8, opset_import: ["" : 17]>\n'


def test_merges_identical_nodes_and_initializers():
    proto = parse_proto(HEADER + """
    g (float[2,3] x) => (float[2,3] y) <float[3] w1 = {1.0, 2.0, 3.0}, float[3] w2 = {1.0, 2.0, 3.0}> {
      a = Add(x, w1)
      b = Add(x, w2)
      ra = Relu(a)
      rb = Relu(b)
      y = Sub(ra, rb)
    }""")
    model, modified = run_pipeline(proto, "eliminate-common-subexpressions,eliminate-dead-code")
    assert modified
    assert op_types(model) == ["Add", "Relu", "Sub"]
    sub = model.graph.node(2)
    assert sub.inputs[0] is sub.inputs[1]
    assert len(model.graph.initializers) == 1
    assert_model_outputs_match(proto, model, atol=0, rtol=0)


def test_graph_outputs_stay_named():
    proto = parse_proto(HEADER + """
    g (float[2,3] x) => (float[2,3] y, float[2,3] z) {
      y = Relu(x)
      z = Relu(x)
    }""")
    model, modified = run_pipeline(proto, "eliminate-common-subexpressions")
    assert modified
    assert op_types(model) == ["Relu", "Identity"]
    assert [o.name for o in model.graph.outputs] == ["y", "z"]
    assert_model_outputs_match(proto, model, atol=0, rtol=0)
    # a second run (and remove-identity-ops) must not undo/redo it forever
    model2, modified2 = run_pipeline(proto, "eliminate-common-subexpressions,remove-identity-ops", fixpoint=True)
    assert op_types(model2) == ["Relu", "Identity"]


def test_does_not_fire_on_different_attrs_or_random_ops():
    proto = parse_proto(HEADER + """
    g (float[2,3] x) => (float[2,3] y, float[2,3] z, float[2,3] u) {
      a = LeakyRelu<alpha = 0.1>(x)
      b = LeakyRelu<alpha = 0.2>(x)
      y = Add(a, b)
      r1 = RandomUniformLike(x)
      r2 = RandomUniformLike(x)
      z = Add(r1, r2)
      u = Sub(a, b)
    }""")
    model, modified = run_pipeline(proto, "eliminate-common-subexpressions")
    assert not modified
    assert op_types(model) == ["LeakyRelu", "LeakyRelu", "Add", "RandomUniformLike", "RandomUniformLike", "Add", "Sub"]


def test_zero_and_negative_zero_attributes_stay_apart():
    # 0.0 == -0.0 in Python (same hash): merging made 1/(-0.0) = +inf instead of -inf
    proto = parse_proto(HEADER + """
    g (float[4] x) => (float[4] y, float[4] z) {
      a = Constant<value_float = 0.0>()
      b = Constant<value_float = -0.0>()
      one = Constant<value_float = 1.0>()
      ia = Div(one, a)
      ib = Div(one, b)
      y = Add(x, ib)
      z = Add(x, ia)
    }""")
    model, modified = run_pipeline(proto, "eliminate-common-subexpressions")
    assert not modified
    assert op_types(model).count("Constant") == 3
    assert_model_outputs_match(proto, model, atol=0, rtol=0)


def test_equal_float_attributes_still_merge():
    proto = parse_proto(HEADER + """
    g (float[2,3] x) => (float[2,3] y) {
      a = LeakyRelu<alpha = 0.1>(x)
      b = LeakyRelu<alpha = 0.1>(x)
      y = Sub(a, b)
    }""")
    model, modified = run_pipeline(proto, "eliminate-common-subexpressions")
    assert modified and op_types(model) == ["LeakyRelu", "Sub"]
    assert_model_outputs_match(proto, model, atol=0, rtol=0)


def test_training_dropouts_and_custom_ops_are_not_merged():
    # two training-mode Dropouts draw two masks; a custom-domain op may be random too
    proto = parse_proto('<ir_version: 8, opset_import: ["" : 17, "custom" : 1]>\n' + """
    g (float[64] x) => (float[64] y, float[64] z, float[64] w) <float r = {0.5}, bool t = {1}, bool f = {0}> {
      a = Dropout(x, r, t)
      b = Dropout(x, r, t)
      y = Sub(a, b)
      c = custom.Noise(x)
      d = custom.Noise(x)
      z = Sub(c, d)
      e = Dropout(x, r, f)
      g1 = Dropout(x, r, f)
      w = Sub(e, g1)
    }""")
    model, modified = run_pipeline(proto, "eliminate-common-subexpressions")
    assert modified  # the two inference Dropouts (training_mode constant false) still merge
    assert op_types(model) == ["Dropout", "Dropout", "Sub", "Noise", "Noise", "Sub", "Dropout", "Sub"]
