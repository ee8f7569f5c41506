import onnx_ir as ir
import pytest

from edgec.passes.control.unroll_loop import loop_trip_count
from edgec.rewrite.testing import assert_model_outputs_match, op_types, parse_proto, run_pipeline

HEADER = '<ir_version: 8, opset_import: ["" : 17]>\n'

# for i in range(3): v = v * w + i; s.append(v * 0.5)   (w outer, 0.5 a body constant)
LOOP = HEADER + """
g (float[2] x) => (float[2] y, float[3,2] s) <float[2] w = {1.5, -0.5}, int64 m = {3}> {
  c = Constant<value = bool {1}>()
  y, s = Loop(m, c, x) <body = b (int64 i, bool cin, float[2] v) => (bool cout, float[2] vout, float[2] sout)
      <float half = {0.5}> {
    cout = Identity(cin)
    fi = Cast<to = 1>(i)
    vw = Mul(v, w)
    vout = Add(vw, fi)
    sout = Mul(vout, half)
  }>
}"""


def test_unrolls_loop_with_scan_output_and_matches_onnxruntime():
    proto = parse_proto(LOOP)
    model, modified = run_pipeline(proto, "unroll-loop,eliminate-dead-code,infer-shapes")
    assert modified
    assert op_types(model) == ["Cast", "Mul", "Add", "Mul"] * 3 + ["Unsqueeze"] * 3 + ["Concat"]
    assert [o.name for o in model.graph.outputs] == ["y", "s"]
    assert list(model.graph.outputs[1].shape) == [3, 2]
    assert_model_outputs_match(proto, model, atol=1e-6, rtol=1e-6)


def test_loop_condition_absent_and_passthrough_state():
    proto = parse_proto(HEADER + """
    g (float[2] x, float[2] z) => (float[2] y, float[2] zz) <int64 m = {2}> {
      y, zz = Loop(m, , x, z) <body = b (int64 i, bool cin, float[2] v, float[2] u) => (bool cout, float[2] vout, float[2] uout) {
        cout = Constant<value = bool {1}>()
        vout = Add(v, u)
        uout = Identity(u)
      }>
    }""")
    model, modified = run_pipeline(proto, "unroll-loop,remove-identity-ops,eliminate-dead-code")
    assert modified
    assert op_types(model) == ["Add", "Add", "Identity"]  # zz: the untouched state, copied under its name
    assert_model_outputs_match(proto, model, atol=0, rtol=0)


# Cumulative sum along axis 0 of x, and along reversed axis 1 of r; the running sum stacked on axis 1.
SCAN = HEADER + """
g (float[2] init, float[4,2] x, float[2,4] r) => (float[2] last, float[2,4] sums, float[4,2] rsums) {
  last, sums, rsums = Scan<num_scan_inputs = 2, scan_input_axes = [0, 1], scan_input_directions = [0, 1],
                           scan_output_axes = [1, 0], scan_output_directions = [0, 1],
    body = b (float[2] acc, float[2] xi, float[2] ri) => (float[2] acc_out, float[2] so, float[2] ro) {
      t = Add(acc, xi)
      acc_out = Add(t, ri)
      so = Identity(acc_out)
      ro = Mul(ri, acc_out)
    }>(init, x, r)
}"""


def test_unrolls_scan_with_axes_and_directions():
    proto = parse_proto(SCAN)
    model, modified = run_pipeline(proto, "unroll-loop,remove-identity-ops,eliminate-dead-code,infer-shapes")
    assert modified
    assert "Scan" not in op_types(model)
    assert op_types(model).count("Gather") == 8 and op_types(model).count("Concat") == 2
    assert_model_outputs_match(proto, model, atol=1e-6, rtol=1e-6)


def test_max_trip_count_option():
    model, modified = run_pipeline(parse_proto(LOOP), "unroll-loop{max_trip_count=2}")
    assert not modified
    assert op_types(model) == ["Constant", "Loop"]
    assert loop_trip_count(model.graph.node(1), 2) == "trip count 3 > max_trip_count 2"


@pytest.mark.parametrize("changes,reason", [
    ({"<float[2] w = {1.5, -0.5}, int64 m = {3}>": "<float[2] w = {1.5, -0.5}>",
      "g (float[2] x)": "g (float[2] x, int64 m)"}, "the trip count is not a constant"),
    ({"cout = Identity(cin)": "two = Constant<value = float {2}>()\n    r = ReduceSum<keepdims = 0>(v)\n"
      "    cout = Less(r, two)"}, "the body's condition is not a compile-time constant"),
])
def test_does_not_fire_on_dynamic_trip_count_or_early_exit(changes, reason):
    text = LOOP
    for old, new in changes.items():
        assert old in text
        text = text.replace(old, new)
    model, _ = run_pipeline(parse_proto(text), "fold-constants")
    model, modified = run_pipeline(ir.serde.serialize_model(model), "unroll-loop")
    assert not modified
    assert op_types(model) == ["Loop"]
    assert loop_trip_count(model.graph.node(0), 64) == reason


# TF while_loop as tf2onnx exports it: a carried time counter and `iter < m and time + 1 < 4`.
TF_WHILE = HEADER + """
g (float[2] x) => (float[2] y, float[4,2] s) <float[2] w = {1.5, -0.5}, int64 m = {10}, int32 t0 = {0}> {
  c = Constant<value = bool {1}>()
  tn, y, s = Loop(m, c, t0, x) <body = b (int64 i, bool cin, int32 t, float[2] v)
      => (bool cout, int32 tout, float[2] vout, float[2] sout) <int32 one = {1}, int32 lim = {4}, int64 big = {10}> {
    tout = Add(t, one)
    less_t = Less(tout, lim)
    less_i = Less(i, big)
    cout = And(less_i, less_t)
    vout = Mul(v, w)
    sout = Identity(vout)
  }>
}"""


def test_unrolls_loop_whose_condition_is_decided_at_compile_time():
    proto = parse_proto(TF_WHILE)
    assert loop_trip_count(ir.serde.deserialize_model(proto).graph.node(1), 64, 17) == 4  # t + 1 = 1, 2, 3, 4: the 4th trip ends it
    model, modified = run_pipeline(proto, "unroll-loop,fold-constants,eliminate-dead-code,infer-shapes")
    assert modified
    assert "Loop" not in op_types(model) and op_types(model).count("Mul") == 4
    assert list(model.graph.outputs[1].shape) == [4, 2]
    assert_model_outputs_match(proto, model, atol=0, rtol=0)


@pytest.mark.parametrize("old,new,expected", [
    ("int64 m = {10}", "int64 m = {2}", 2),                     # the trip count ends it first
    ("int32 lim = {4}", "int32 lim = {100}", "more than max_trip_count 8 iterations"),
    (", int32 t0 = {0}>", ">", "the body's condition is not a compile-time constant"),  # t0 a runtime input
])
def test_simulated_condition_limits(old, new, expected):
    text = TF_WHILE.replace(old, new)
    if "t0" in old:
        text = text.replace("g (float[2] x)", "g (float[2] x, int32 t0)")
    loop = next(n for n in ir.serde.deserialize_model(parse_proto(text)).graph if n.op_type == "Loop")
    assert loop_trip_count(loop, 8, 17) == expected
