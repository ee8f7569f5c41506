"""What edgec's loader accepts from onnxruntime-genai's model builder, and only that: the
SimplifiedLayerNormalization onnxruntime registers in the ONNX domain (edgec/ir/ort_schemas.py),
and value_info annotations that call a [1]-shaped Constant a scalar (dropped). A wrong annotation
of any other value is still an inconsistent model."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h

from edgec.errors import ModelValidationError
from edgec.ir.loader import load_model


def _model(annotate: str, annotated_shape) -> onnx.ModelProto:
    one = onnx.numpy_helper.from_array(np.array([1], np.int64), "one_value")
    nodes = [h.make_node("Constant", [], ["one"], value=one),
             h.make_node("SimplifiedLayerNormalization", ["x", "scale"], ["n"], epsilon=1e-5),
             h.make_node("Cast", ["one"], ["onef"], to=TP.FLOAT),
             h.make_node("Sub", ["n", "onef"], ["d"])]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", TP.FLOAT, ["b", 8])],
                     [h.make_tensor_value_info("d", TP.FLOAT, ["b", 8])],
                     [onnx.numpy_helper.from_array(np.ones(8, np.float32), "scale")],
                     value_info=[h.make_tensor_value_info("n", TP.FLOAT, ["b", 8]),
                                 h.make_tensor_value_info(annotate, TP.INT64 if annotate == "one" else TP.FLOAT,
                                                          annotated_shape)])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 18)])
    m.ir_version = 8
    return m


def test_builder_quirks_load(tmp_path):
    onnx.save(_model("one", []), tmp_path / "m.onnx")  # the builder's scalar annotation of a [1] constant
    model = load_model(tmp_path / "m.onnx")
    assert any(n.op_type == "SimplifiedLayerNormalization" for n in model.graph)


def test_a_wrong_annotation_of_a_computed_value_is_still_refused(tmp_path):
    onnx.save(_model("onef", [3, 3]), tmp_path / "m.onnx")
    with pytest.raises(ModelValidationError, match="inconsistent shapes"):
        load_model(tmp_path / "m.onnx")
