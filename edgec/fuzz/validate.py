"""Is a generated model valid? The checker with full shape inference, and onnxruntime runs it on
the seeded inputs edgec uses, with every tracked intermediate shape equal to what it computes."""

from __future__ import annotations

import numpy as np
import onnx

from edgec.ir.analysis import TensorInfo
from edgec.reference import run_ort, seeded_inputs


def input_infos(model: onnx.ModelProto) -> list[TensorInfo]:
    infos = []
    for i in model.graph.input:
        t = i.type.tensor_type
        dtype = onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name
        infos.append(TensorInfo(i.name, [d.dim_value for d in t.shape.dim], dtype))
    return infos


def check_generated(model: onnx.ModelProto) -> None:
    """Raise AssertionError (or the checker's/onnxruntime's error) unless `model` is valid, its
    declared output shapes are what onnxruntime computes, and all outputs are finite."""
    onnx.checker.check_model(model, full_check=True)
    outs = run_ort(model, seeded_inputs(input_infos(model)))
    for o in model.graph.output:
        want = tuple(d.dim_value for d in o.type.tensor_type.shape.dim)
        got = outs[o.name]
        assert got.shape == want, f"'{o.name}': onnxruntime computes shape {got.shape}, the generator tracked {want}"
        if got.dtype.kind == "f":
            assert np.isfinite(got).all(), f"'{o.name}': non-finite values in onnxruntime's result"
