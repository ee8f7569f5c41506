"""Checks that run before edgec allocates anything a model declares: tensor sizes that disagree
with their data, and absurd shapes (memory bombs) above a configurable limit."""

from __future__ import annotations

import onnx
import onnx_ir as ir

from edgec.errors import ModelValidationError

DEFAULT_MAX_TENSOR_BYTES = 4 << 30  # 4 GiB per tensor

_TYPED_FIELDS = ("float_data", "int32_data", "string_data", "int64_data", "double_data", "uint64_data")
# elements stored per typed-field entry (complex types use two entries per element)
_PER_ENTRY = {onnx.TensorProto.COMPLEX64: 0.5, onnx.TensorProto.COMPLEX128: 0.5}


def tensor_nbytes(data_type: int, numel: int) -> int | None:
    """Bytes `numel` elements of ONNX `data_type` take in raw or external data: sub-byte types are
    packed (4-bit: two per byte, rounded up). None for strings and unknown types."""
    try:
        bits = ir.DataType(data_type).bitwidth
    except (TypeError, ValueError):
        return None
    return (numel * bits + 7) // 8


def _nbytes_at_least_1(data_type: int, numel: int) -> int:
    """For the memory-bomb limit: strings and unknown types count a byte per element."""
    n = tensor_nbytes(data_type, numel)
    return numel if n is None else n


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
        size = _nbytes_at_least_1(t.data_type, n)
        if size > limit:
            raise ModelValidationError(
                f"{file}: initializer '{t.name}' declares {size:,} bytes, over the limit of {limit:,} (--max-tensor-bytes)")
        if t.data_location == onnx.TensorProto.EXTERNAL or t.data_type in (0, onnx.TensorProto.STRING):
            continue
        if t.HasField("raw_data"):
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
        size = _nbytes_at_least_1(tt.elem_type, _numel(dims))
        if size > limit:
            raise ModelValidationError(
                f"{file}: value '{vi.name}' of shape {dims} needs {size:,} bytes, over the limit of {limit:,} (--max-tensor-bytes)")
