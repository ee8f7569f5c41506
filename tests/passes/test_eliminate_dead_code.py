import numpy as np
import onnx_ir as ir

from edgec.reference import run_ort
from edgec.rewrite.testing import op_types, parse_proto, run_pipeline

HEADER = '<ir_version: 8, opset_import: ["" : 17, "custom.dom" : 1]>\n'


def test_removes_dead_nodes_initializers_and_opsets():
    proto = parse_proto(HEADER + """
    g (float[2,3] x) => (float[2,3] y) <float[3] unused = {1.0, 2.0, 3.0}, float[3] w = {1.0, 1.0, 1.0}> {
      dead1 = Exp(x)
      dead2 = custom.dom.Foo(dead1)
      a = Add(x, w)
      y = Relu(a)
    }""")
    model, modified = run_pipeline(proto, "eliminate-dead-code")
    assert modified
    assert op_types(model) == ["Add", "Relu"]
    assert list(model.graph.initializers) == ["w"]
    assert "custom.dom" not in model.opset_imports
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    y = run_ort(ir.serde.serialize_model(model), {"x": x})["y"]  # the input model needs custom.dom::Foo
    np.testing.assert_allclose(y, np.maximum(x + 1, 0), atol=1e-7, rtol=1e-7)


def test_drops_unused_dropout_mask_and_reports_it():
    proto = parse_proto('<ir_version: 8, opset_import: ["" : 17]>\n' + """
    g (float[2,3] x) => (float[2,3] y) {
      y, mask = Dropout(x)
    }""")
    model, modified = run_pipeline(proto, "eliminate-dead-code")
    assert modified
    assert len(model.graph.node(0).outputs) == 1


def test_does_not_fire_on_live_graph():
    proto = parse_proto(HEADER + """
    g (float[2,3] x, float[3] w) => (float[2,3] y, float[2,3] z) <float[3] w = {1.0, 2.0, 3.0}> {
      a = Add(x, w)
      y = Relu(a)
      z = custom.dom.Foo(a)
    }""")
    model, modified = run_pipeline(proto, "eliminate-dead-code")
    assert not modified
    assert op_types(model) == ["Add", "Relu", "Foo"]
    assert list(model.graph.initializers) == ["w"]
