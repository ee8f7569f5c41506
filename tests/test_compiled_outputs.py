"""The artifact's output shapes come from the compiled code when the ONNX graph left a dim
symbolic (a real PP-OCR recognizer did: model.h crashed on 'unk__12', exit 1)."""

from __future__ import annotations

import pytest

from edgec.api import compiled_outputs
from edgec.errors import InternalError, ModelValidationError
from edgec.ir.analysis import TensorInfo


def test_symbolic_dim_taken_from_the_compiled_code():
    outs = compiled_outputs([TensorInfo("y", ("unk__12", 40, 120), "float32")], [[1, 40, 120]])
    assert outs == [TensorInfo("y", (1, 40, 120), "float32")]


def test_static_shapes_pass_through():
    t = TensorInfo("y", (2, 3), "float32")
    assert compiled_outputs([t], [[2, 3]]) == [t]
    assert compiled_outputs([t], [None]) == [t]


def test_data_dependent_output_shape_is_refused():
    with pytest.raises(ModelValidationError, match="data-dependent shape"):
        compiled_outputs([TensorInfo("y", ("N", 3), "float32")], [None])


def test_disagreeing_static_shape_is_an_edgec_bug():
    with pytest.raises(InternalError, match="the compiled code returns"):
        compiled_outputs([TensorInfo("y", (2, 3), "float32")], [[3, 2]])
