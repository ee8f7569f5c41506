"""Helpers for the quantized-operator tests: build one-node models, seeded int8/uint8 data, and
compare edgec with onnxruntime in quantized units.

onnxruntime is an exact reference for uint8 x int8 products only on some CPUs: MLAS's u8s8 GEMM on
x86 without VNNI (AVX2, AVX-512 BW) multiplies with vpmaddubsw, which adds two adjacent u8·s8
products into an int16 with saturation (255·127·2 = 64770 becomes 32767; onnxruntime documents
this and offers `reduce_range`), while VNNI's vpdpbusd (and the u8u8 kernels, which widen to
int16 and use vpmaddwd) are exact. `exact_ort_model` re-encodes the int8 B operand of such products
as uint8 (b + 128 with zero point + 128: the same b - b_zp), so that onnxruntime runs its exact
u8u8 kernels on every CPU; `ort_u8s8_exact` tells whether the model as written is exact here too."""

from __future__ import annotations

import functools

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgec.reference import run_ort
from edgec.reference_exact import exact_ort_model
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


@functools.cache
def ort_u8s8_exact() -> bool:
    """Whether onnxruntime's uint8 x int8 integer products are exact on this CPU: MatMulInteger of
    [255, 255] and [127, 127] is 64770, or 32767 where pairs of products saturate at int16."""
    proto = one_node_model("MatMulInteger", {"a": np.full((1, 2), 255, np.uint8)},
                           [("b", np.full((2, 1), 127, np.int8))], TensorProto.INT32, [1, 1], model_opset=13)
    return int(run_ort(proto, {"a": np.full((1, 2), 255, np.uint8)})["y"][0, 0]) == 255 * 127 * 2


def run_ort_exact(proto, inputs: dict) -> dict:
    """onnxruntime's outputs with exact integer products (`exact_ort_model`)."""
    return run_ort(*exact_ort_model(proto, inputs))


def _references(proto, inputs) -> list[tuple[str, np.ndarray]]:
    """(output name, expected value) from onnxruntime with exact integer products, and again from
    onnxruntime running the model as written where that is exact too (labelled "as written")."""
    refs = list(run_ort_exact(proto, inputs).items())
    if ort_u8s8_exact():
        refs += [(f"{k} (onnxruntime as written)", v) for k, v in run_ort(proto, inputs).items()]
    return refs


def compare_quantized(proto, inputs, tmp_path, owned=(), max_units=0):
    """Run edgec and onnxruntime (with exact integer products, and as written where its u8s8
    products are exact: `ort_u8s8_exact`); assert same shape/dtype and at most `max_units`
    quantized units of difference. Returns (max difference, number of differing elements, number
    of elements)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    actual, report = edgec_run(proto, inputs, tmp_path)
    expected = _references(proto, inputs)
    missing = set(owned) - set(report.by_edgec)
    assert not missing, f"not lowered by edgec: {missing}; {report.to_json()}"
    worst = (0, 0, 0)
    for name, e in expected:
        a = actual[name.split()[0]]
        assert a.shape == e.shape and a.dtype == e.dtype, (name, a.shape, a.dtype, e.shape, e.dtype)
        d = np.abs(a.astype(np.int64) - e.astype(np.int64))
        res = (int(d.max()) if d.size else 0, int(np.count_nonzero(d)), int(d.size))
        assert res[0] <= max_units, f"{name}: max diff {res[0]} units, {res[1]}/{res[2]} elements differ"
        worst = max(worst, res)
    return worst


def compare_float(proto, inputs, tmp_path, owned=(), atol=1e-4, rtol=1e-4):
    """Run edgec and onnxruntime (as in `compare_quantized`) on a model with float outputs; assert
    allclose; return max abs error."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    actual, report = edgec_run(proto, inputs, tmp_path)
    expected = _references(proto, inputs)
    missing = set(owned) - set(report.by_edgec)
    assert not missing, f"not lowered by edgec: {missing}; {report.to_json()}"
    err = 0.0
    for name, e in expected:
        a = actual[name.split()[0]]
        assert a.shape == e.shape and a.dtype == e.dtype, (name, a.shape, a.dtype, e.shape, e.dtype)
        np.testing.assert_allclose(a, e, atol=atol, rtol=rtol, err_msg=name)
        err = max(err, float(np.max(np.abs(a.astype(np.float64) - e))) if e.size else 0.0)
    return err
