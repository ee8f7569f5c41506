"""Helpers for the quantized-operator tests: build one-node models, seeded int8/uint8 data, and
compare edgec with onnxruntime in quantized units."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgec.reference import run_ort
from tests.targets.lowering_util import edgec_run

NP2ONNX = {np.dtype(np.uint8): TensorProto.UINT8, np.dtype(np.int8): TensorProto.INT8,
           np.dtype(np.int16): TensorProto.INT16, np.dtype(np.uint16): TensorProto.UINT16,
           np.dtype(np.int32): TensorProto.INT32, np.dtype(np.float32): TensorProto.FLOAT}


def qdata(rng, shape, dtype) -> np.ndarray:
    """Uniform over the whole range of an 8-bit type."""
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, size=shape).astype(dtype)


def const(name, value, dtype=None) -> TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def one_node_model(op, inputs: dict, consts: list, out_dtype, out_shape=None, domain="", model_opset=19, **attrs):
    """A model with one `op` node. `inputs` maps runtime input names to arrays (their dtypes and
    shapes become the graph inputs); `consts` are (name, array) initializers; input order is the
    order of `names` = list(inputs) + [c[0] for c in consts] unless `order` is given in attrs."""
    order = attrs.pop("order", None) or list(inputs) + [n for n, _ in consts]
    node = helper.make_node(op, order, ["y"], domain=domain, **attrs)
    g = helper.make_graph(
        [node], "q",
        [helper.make_tensor_value_info(n, NP2ONNX[a.dtype], list(a.shape)) for n, a in inputs.items()],
        [helper.make_tensor_value_info("y", out_dtype, out_shape)],
        [numpy_helper.from_array(np.asarray(a), n) for n, a in consts])
    opsets = [helper.make_opsetid("", model_opset)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    m = helper.make_model(g, opset_imports=opsets)
    m.ir_version = 9
    if out_shape is None:  # onnx infers the output shape of ONNX-domain ops
        m = onnx.shape_inference.infer_shapes(m, strict_mode=True)
    return m


def compare_quantized(proto, inputs, tmp_path, owned=(), max_units=0):
    """Run edgec and onnxruntime; assert same shape/dtype and at most `max_units` quantized units
    of difference. Returns (max difference, number of differing elements, number of elements)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    actual, report = edgec_run(proto, inputs, tmp_path)
    expected = run_ort(proto, inputs)
    missing = set(owned) - set(report.by_edgec)
    assert not missing, f"not lowered by edgec: {missing}; {report.to_json()}"
    worst = (0, 0, 0)
    for name, e in expected.items():
        a = actual[name]
        assert a.shape == e.shape and a.dtype == e.dtype, (name, a.shape, a.dtype, e.shape, e.dtype)
        d = np.abs(a.astype(np.int64) - e.astype(np.int64))
        res = (int(d.max()) if d.size else 0, int(np.count_nonzero(d)), int(d.size))
        assert res[0] <= max_units, f"{name}: max diff {res[0]} units, {res[1]}/{res[2]} elements differ"
        worst = max(worst, res)
    return worst


def compare_float(proto, inputs, tmp_path, owned=(), atol=1e-4, rtol=1e-4):
    """Run edgec and onnxruntime on a model with float outputs; assert allclose; return max abs error."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    actual, report = edgec_run(proto, inputs, tmp_path)
    expected = run_ort(proto, inputs)
    missing = set(owned) - set(report.by_edgec)
    assert not missing, f"not lowered by edgec: {missing}; {report.to_json()}"
    err = 0.0
    for name, e in expected.items():
        a = actual[name]
        assert a.shape == e.shape and a.dtype == e.dtype, (name, a.shape, a.dtype, e.shape, e.dtype)
        np.testing.assert_allclose(a, e, atol=atol, rtol=rtol, err_msg=name)
        err = max(err, float(np.max(np.abs(a.astype(np.float64) - e))) if e.size else 0.0)
    return err
