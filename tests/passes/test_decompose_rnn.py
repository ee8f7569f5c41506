import numpy as np
import onnx
import onnx_ir as ir
import pytest

from edgec.ir.analysis import graph_inputs
from edgec.passes.control.decompose_rnn import plan
from edgec.reference import run_ort, seeded_inputs
from edgec.rewrite.testing import assert_model_outputs_match, op_types, parse_proto, run_pipeline
from tests.rnn_models import GATES, SEQ, rnn_model

CASES = [
    ("LSTM", dict()),
    ("LSTM", dict(direction="reverse", initial=True)),
    ("LSTM", dict(direction="bidirectional", layout=1, initial=True, outputs=("Y", "Y_h", "Y_c"))),
    ("LSTM", dict(peephole=True, initial=True, outputs=("Y", "Y_h", "Y_c"))),
    ("LSTM", dict(peephole=True, bias=False, direction="bidirectional")),
    ("LSTM", dict(dynamic_inputs=True, layout=1, outputs=("", "Y_h"))),
    ("GRU", dict()),
    ("GRU", dict(lbr=1, direction="bidirectional", initial=True)),
    ("GRU", dict(lbr=1, layout=1, bias=True)),
    ("GRU", dict(direction="reverse", bias=False, initial=True, layout=1)),
    ("RNN", dict()),
    ("RNN", dict(direction="bidirectional", initial=True, layout=1)),
    ("RNN", dict(acts=["Relu"], direction="reverse")),
    ("GRU", dict(acts=["Sigmoid", "Relu", "Tanh", "Tanh"], direction="bidirectional", seq=1)),
]


@pytest.mark.parametrize("op,kw", CASES, ids=[f"{op}-{i}" for i, (op, _) in enumerate(CASES)])
def test_decomposes_and_matches_onnxruntime(op, kw):
    proto = rnn_model(op, **kw)
    model, modified = run_pipeline(proto, "decompose-rnn,infer-shapes")
    assert modified
    got = set(op_types(model))
    assert not got & set(GATES), got
    assert "MatMul" in got and got <= {"MatMul", "Add", "Sub", "Mul", "Sigmoid", "Tanh", "Relu", "Gather",
                                       "Split", "Slice", "Transpose", "Unsqueeze", "Concat"}
    assert [o.name for o in model.graph.outputs] == [o.name for o in proto.graph.output]
    if kw.get("layout", 0) == 0:
        assert_model_outputs_match(proto, model, atol=1e-5, rtol=1e-5)
    else:
        assert_matches_time_major_reference(op, kw, model)


def assert_matches_time_major_reference(op, kw, model):
    """onnxruntime has no layout=1 kernels: run the layout=0 twin on transposed tensors."""
    after = ir.serde.serialize_model(model)
    onnx.checker.check_model(after)
    inputs = seeded_inputs(graph_inputs(model), seed=1)
    twin = rnn_model(op, **{**kw, "layout": 0})
    twin_inputs = {k: v.transpose(1, 0, 2) if k in ("X", "h0", "c0") else v for k, v in inputs.items()}
    expected = run_ort(twin, twin_inputs)
    actual = run_ort(after, inputs)
    for name, e in expected.items():
        e = e.transpose(2, 0, 1, 3) if name == "Y" else e.transpose(1, 0, 2)
        np.testing.assert_allclose(actual[name], e, atol=1e-5, rtol=1e-5, err_msg=name)


def test_constant_weights_are_pretransposed_and_steps_counted():
    model, _ = run_pipeline(rnn_model("RNN", outputs=("", "Y_h")), "decompose-rnn")
    # one input projection; per step: Gather of the step, MatMul (not at t=0: zero state), Add, Tanh
    assert op_types(model) == ["MatMul", "Add"] + ["Gather", "Tanh"] + ["Gather", "MatMul", "Add", "Tanh"] * (SEQ - 1) + ["Unsqueeze"]
    assert not any(n.op_type == "Transpose" for n in model.graph)


@pytest.mark.parametrize("kw,reason", [
    (dict(seq="S"), "not static"),
    (dict(acts=["Sigmoid", "Softsign", "Tanh"]), "only Sigmoid, Tanh and Relu"),
])
def test_declines_dynamic_sequence_and_custom_activations(kw, reason):
    proto = rnn_model("LSTM", **kw)
    model, modified = run_pipeline(proto, "decompose-rnn")
    assert not modified
    assert op_types(model) == ["LSTM"]
    assert reason in plan(model.graph.node(0))


CLIPPED = ('<ir_version: 8, opset_import: ["" : 17]>\n' + """
    g (float[3,1,2] x, float[1,4,2] w, float[1,4,1] r) => (float[1,1,1] h) {
      y, h = RNN<hidden_size=1, clip=1.0, activations=["Tanh"]>(x, w, r)
    }""")


def test_declines_clip():
    model, modified = run_pipeline(parse_proto(CLIPPED), "decompose-rnn")
    assert not modified
    assert plan(model.graph.node(0)) == "attribute 'clip' is not supported"


def test_lowering_of_a_declined_rnn_names_the_node(tmp_path, run_cli):
    path = tmp_path / "rnn.onnx"
    onnx.save(parse_proto(CLIPPED), path)
    r = run_cli("compile", path, "--target", "x86-64", "-o", tmp_path / "out")
    assert r.code != 0
    assert "RNN" in r.err and "unsupported" in r.err.lower(), r
