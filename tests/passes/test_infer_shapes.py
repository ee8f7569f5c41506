import onnx_ir as ir

from edgec.rewrite.testing import assert_model_outputs_match, op_types, parse_proto, run_pipeline

HEADER = '<ir_version: 8, opset_import: ["" : 17]>\n'


def test_infers_shapes_and_dtypes_with_data_propagation():
    proto = parse_proto(HEADER + """
    g (float[N,3,4] x) => (float[N,12] y) {
      sh = Shape(x)
      r = Relu(x)
      i = Constant<value = int64[2] {0, 12}>()
      y = Reshape(r, i)
    }""")
    model, modified = run_pipeline(proto, "infer-shapes")
    assert modified
    values = ir.convenience.create_value_mapping(model.graph)
    assert values["r"].dtype == ir.DataType.FLOAT
    assert [d if isinstance(d, int) else d.value for d in values["r"].shape] == ["N", 3, 4]
    assert values["sh"].dtype == ir.DataType.INT64 and list(values["sh"].shape) == [3]
    assert op_types(model) == ["Shape", "Relu", "Constant", "Reshape"]
    assert_model_outputs_match(proto, model, atol=0, rtol=0)


def test_infers_inside_subgraphs():
    proto = parse_proto(HEADER + """
    g (bool c, float[2,3] x) => (float[2,3] y) {
      y = If(c) <then_branch = t () => (float[2,3] a) { r = Relu(x) a = Neg(r) },
                 else_branch = e () => (float[2,3] b) { b = Neg(x) }>
    }""")
    model, modified = run_pipeline(proto, "infer-shapes")
    assert modified  # the subgraph nodes' outputs get types
    then = model.graph.node(0).attributes["then_branch"].as_graph()
    assert then.node(0).outputs[0].dtype == ir.DataType.FLOAT


def test_second_run_changes_nothing():
    proto = parse_proto(HEADER + """
    g (float[2,3] x) => (float[2,3] y) {
      a = Relu(x)
      y = Neg(a)
    }""")
    model = ir.serde.deserialize_model(proto)
    from edgec.infra.context import PassContext
    from edgec.infra.manager import PassManager
    from edgec.infra.pipeline import parse_pipeline
    pm = PassManager(parse_pipeline("infer-shapes"), fixpoint=False)
    assert pm.run(model, PassContext()).modified
    assert not pm.run(model, PassContext()).modified
