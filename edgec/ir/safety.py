"""Checks that run before edgec allocates anything a model declares: tensor sizes that disagree
with their data, and absurd shapes (memory bombs) above a configurable limit."""

from __future__ import annotations

import numpy as np
import onnx

from edgec.errors import ModelValidationError

DEFAULT_MAX_TENSOR_BYTES = 4 << 30  # 4 GiB per tensor

_TYPED_FIELDS = ("float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data")
# elements stored per typed-field entry (complex types use two entries per element)
_PER_ENTRY = {onnx.TensorProto.COMPLEX64: 0.5, onnx.TensorProto.COMPLEX128: 0.5}


def _itemsize(data_type: int) -> int:
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(data_type)).itemsize
    except Exception:
        return 1


def _numel(dims) -> int:
    n = 1
    for d in dims:
        n *= int(d)
    return n


def check_initializers(graph: onnx.GraphProto, file: str, limit: int) -> None:
    for t in graph.initializer:
        if any(d < 0 for d in t.dims):
            raise ModelValidationError(f"{file}: initializer '{t.name}' has a negative dimension {list(t.dims)}")
        n = _numel(t.dims)
        size = n * _itemsize(t.data_type)
        if size > limit:
            raise ModelValidationError(
                f"{file}: initializer '{t.name}' declares {size:,} bytes, over the limit of {limit:,} (--max-tensor-bytes)")
        if t.data_location == onnx.TensorProto.EXTERNAL or t.data_type in (0, onnx.TensorProto.STRING):
            continue
        if t.HasField("raw_data"):
            if t.data_type in (onnx.TensorProto.INT4, onnx.TensorProto.UINT4, onnx.TensorProto.FLOAT4E2M1):
                expected = (n + 1) // 2
            else:
                expected = size
            if len(t.raw_data) != expected:
                raise ModelValidationError(
                    f"{file}: initializer '{t.name}' declares {list(t.dims)} ({expected} bytes) but holds {len(t.raw_data)} bytes")
        else:
            stored = sum(len(getattr(t, f)) for f in _TYPED_FIELDS)
            if stored and stored * _PER_ENTRY.get(t.data_type, 1) != n and stored != n:
                raise ModelValidationError(
                    f"{file}: initializer '{t.name}' declares {n} elements but holds {stored}")


def check_value_sizes(graph: onnx.GraphProto, file: str, limit: int) -> None:
    """Graph inputs, outputs and (inferred) intermediate values must fit under `limit` bytes."""
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        tt = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
        if tt is None or not tt.HasField("shape"):
            continue
        dims = [d.dim_value for d in tt.shape.dim if d.HasField("dim_value")]
        size = _numel(dims) * _itemsize(tt.elem_type)
        if size > limit:
            raise ModelValidationError(
                f"{file}: value '{vi.name}' of shape {dims} needs {size:,} bytes, over the limit of {limit:,} (--max-tensor-bytes)")
