"""int4/uint4 initializers in external data: 4-bit elements are packed two per byte (rounded up),
so a [5, 3] int4 tensor takes 8 bytes. Loading, compiling and running such a model must work;
external data of any other size is still rejected."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, external_data_helper, helper, numpy_helper

from edgec.api import CompileOptions, compile_model, run_artifact
from edgec.errors import ModelLoadError, ModelValidationError
from edgec.ir import load_model
from edgec.ir.safety import tensor_nbytes
from edgec.reference import run_ort
from tests.conftest import model_from_text
from tests.e2e.compile_check import assert_matches_ort

GRAPH = """<ir_version: 10, opset_import: ["" : 21]>
g (float[2,5] x) => (float[2,3] y) <float sc = {0.25}> {
  wf = DequantizeLinear (w, sc)
  y = MatMul (x, wf)
}"""

INT4 = np.array([[1, 2, 3], [4, 5, 6], [7, -8, -1], [-2, -3, -4], [-5, -6, -7]], np.int8)
UINT4 = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11], [12, 13, 15]], np.int8)


def _pack4(values: np.ndarray) -> bytes:
    """ONNX 4-bit layout: element 2i in the low nibble of byte i, 2i+1 in the high one."""
    nib = (values.reshape(-1).astype(np.int16) & 0xF).astype(np.uint8)
    if nib.size % 2:
        nib = np.append(nib, np.uint8(0))
    return (nib[0::2] | (nib[1::2] << 4)).tobytes()


def _model(tmp_path, data_type=TensorProto.INT4, values=INT4, length: int | None = None):
    proto = model_from_text(GRAPH, ir_version=10)
    w = helper.make_tensor("w", data_type, list(values.shape), _pack4(values), raw=True)
    assert numpy_helper.to_array(w).astype(np.int8).tolist() == values.tolist()
    proto.graph.initializer.append(w)
    external_data_helper.convert_model_to_external_data(proto, all_tensors_to_one_file=True, location="w.bin",
                                                        size_threshold=0)
    path = tmp_path / "m.onnx"
    onnx.save_model(proto, path)
    if length is not None:  # tamper: claim (and provide) `length` bytes
        (tmp_path / "w.bin").write_bytes(b"\x11" * max(length, 8))
        m = onnx.load(path, load_external_data=False)
        t = next(t for t in m.graph.initializer if t.name == "w")
        for e in t.external_data:
            if e.key == "length":
                e.value = str(length)
        onnx.save_model(m, path)
    return path


def test_tensor_nbytes_packs_sub_byte_types():
    assert tensor_nbytes(TensorProto.INT4, 15) == 8
    assert tensor_nbytes(TensorProto.UINT4, 16) == 8
    assert tensor_nbytes(TensorProto.FLOAT4E2M1, 1) == 1
    assert tensor_nbytes(TensorProto.FLOAT, 15) == 60
    assert tensor_nbytes(TensorProto.STRING, 3) is None


@pytest.mark.parametrize("data_type,values", [(TensorProto.INT4, INT4), (TensorProto.UINT4, UINT4)],
                         ids=["int4", "uint4"])
def test_external_4bit_initializer_loads_compiles_and_runs(data_type, values, tmp_path):
    path = _model(tmp_path, data_type, values)
    assert (tmp_path / "w.bin").stat().st_size == 8  # 15 nibbles, rounded up
    model = load_model(path)
    np.testing.assert_array_equal(model.graph.initializers["w"].const_value.numpy().astype(np.int8), values)
    art = compile_model(path, tmp_path / "art", CompileOptions(target="x86-64"))
    x = np.random.default_rng(0).standard_normal((2, 5)).astype(np.float32)
    expected = run_ort(str(path), {"x": x})
    np.testing.assert_allclose(expected["y"], x @ (values.astype(np.float32) * 0.25), rtol=1e-5, atol=1e-5)
    assert_matches_ort(run_artifact(art, {"x": x}), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("length", [7, 15])  # short by one nibble pair; the old whole-byte size
def test_external_4bit_initializer_of_the_wrong_size_is_rejected(length, tmp_path):
    path = _model(tmp_path, length=length)
    with pytest.raises(ModelLoadError, match=r"declares 15 elements \(8 bytes\) but its external data has"):
        load_model(path)


def test_raw_4bit_initializer_of_the_wrong_size_is_rejected():
    proto = model_from_text(GRAPH, ir_version=10)
    w = helper.make_tensor("w", TensorProto.INT4, [5, 3], _pack4(INT4), raw=True)
    w.raw_data += b"\0"
    proto.graph.initializer.append(w)
    with pytest.raises(ModelValidationError, match=r"\(8 bytes\) but holds 9 bytes"):
        load_model(proto)
