"""Checks that run before edgec allocates anything a model declares: tensor sizes that disagree
with their data, negative dims, and absurd shapes (memory bombs) above a configurable limit --
also the shapes only shape inference reveals, without letting onnx's data propagation allocate
them (`infer_shapes_bounded`)."""

from __future__ import annotations

import onnx
import onnx_ir as ir

from edgec.errors import ModelValidationError

DEFAULT_MAX_TENSOR_BYTES = 4 << 30  # 4 GiB per tensor
# Nodes in the model, subgraphs included. Compile time grows about linearly with nodes (~2 ms per
# node here, mostly the backend), so this bounds what one model can cost to a few minutes; the
# largest real models we know of (LLM decoders exported whole) have a few 10,000s.
DEFAULT_MAX_NODES = 100_000

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


def limit_nbytes(data_type: int, dims) -> int:
    """The bytes a tensor of static `dims` counts against --max-tensor-bytes (Python ints: a
    product of huge dims does not overflow)."""
    return _nbytes_at_least_1(data_type, _numel(dims))


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


def check_node_count(graph: onnx.GraphProto, file: str, limit: int) -> None:
    """A graph bomb (millions of nodes, or subgraphs nested to multiply them) is refused before
    any pass or backend walks it."""
    n = 0
    for g in all_graphs(graph):
        n += len(g.node)
        if n > limit:
            break
    if n > limit:
        raise ModelValidationError(f"{file}: the model has more than {limit:,} nodes (subgraphs included), "
                                   "over the limit (--max-nodes)")


def all_graphs(graph: onnx.GraphProto):
    """`graph` and every subgraph (If branches, Loop/Scan bodies), depth first."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from all_graphs(attr.g)
            for g in attr.graphs:
                yield from all_graphs(g)


def _dims(vi: onnx.ValueInfoProto) -> list | None:
    """The dims of a tensor value: ints, None for an unknown or symbolic dim; None without a shape."""
    tt = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
    if tt is None or not tt.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]


def unknown_minus_one_dims(graph: onnx.GraphProto) -> None:
    """Exporters such as Paddle declare an unknown dim as -1: make it an unknown dim (no value), so
    that it is treated like a symbolic one (`--input-shape` pins it) instead of a negative size."""
    for g in all_graphs(graph):
        for vi in list(g.input) + list(g.output) + list(g.value_info):
            if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
                for d in vi.type.tensor_type.shape.dim:
                    if d.HasField("dim_value") and d.dim_value == -1:
                        d.ClearField("dim_value")


def node_label(name: str | None, op_type: str) -> str:
    """How an error names a node: "node 'conv1' op 'Conv'" (just "op 'Conv'" when unnamed)."""
    return f"node '{name}' op '{op_type}'" if name else f"op '{op_type}'"


def check_value_sizes(graph: onnx.GraphProto, file: str, limit: int) -> None:
    """Graph inputs, outputs and (inferred) intermediate values, also in subgraphs, must have no
    negative dim and fit under `limit` bytes: a C header with a negative element count, or a
    buffer of a terabyte, must not be generated."""
    for g in all_graphs(graph):
        infos = {vi.name: vi for vi in list(g.value_info) + list(g.output) + list(g.input)}
        order = [(name, None) for name in (vi.name for vi in g.input)]
        order += [(name, n) for n in g.node for name in n.output]  # earliest bad value first
        order += [(vi.name, None) for vi in g.output]
        for name, node in order:
            vi = infos.get(name)
            dims = _dims(vi) if vi is not None else None
            if dims is None:
                continue
            where = f" ({node_label(node.name, node.op_type)})" if node is not None else ""
            if any(d is not None and d < 0 for d in dims):
                raise ModelValidationError(f"{file}: value '{name}'{where} has a negative dimension "
                                           f"{['?' if d is None else d for d in dims]}")
            known = [d for d in dims if d is not None]
            size = _nbytes_at_least_1(vi.type.tensor_type.elem_type, _numel(known))
            if size > limit:
                raise ModelValidationError(
                    f"{file}: value '{name}'{where} of shape {known} needs {size:,} bytes, "
                    f"over the limit of {limit:,} (--max-tensor-bytes)")


DATA_PROP_MAX_LEN = 1 << 16  # 1-D values longer than this: shape inference without data propagation


def infer_shapes_bounded(proto: onnx.ModelProto, file: str, limit: int | None, **kwargs) -> onnx.ModelProto:
    """onnx shape inference (keyword arguments as `onnx.shape_inference.infer_shapes`) that cannot
    exhaust memory, followed by `check_value_sizes` unless `limit` is None (the PassManager
    checks the sizes a pass reveals on the IR, faster).

    With data propagation, onnx represents the value of a 1-D tensor of static length N as N dims
    (onnx/shape_inference/implementation.h), so `Add(Range(0, 1e10, 1), x)` allocates hundreds of
    GB inside the C++ inference. Inference runs first without data propagation; data is
    propagated only when no 1-D value is longer than DATA_PROP_MAX_LEN. (A 1-D length that only
    data propagation reveals can still reach a data propagator in the same run.) Raises onnx's
    InferenceError for the caller to report."""
    plain = onnx.shape_inference.infer_shapes(proto, data_prop=False, **kwargs)
    safe = not _long_1d(plain.graph)
    inferred = onnx.shape_inference.infer_shapes(proto, data_prop=True, **kwargs) if safe else plain
    if limit is not None:
        check_value_sizes(inferred.graph, file, limit)
    return inferred


def _long_1d(graph: onnx.GraphProto) -> bool:
    """Some 1-D value is longer than DATA_PROP_MAX_LEN."""
    for g in all_graphs(graph):
        for vi in (*g.input, *g.output, *g.value_info):
            dims = vi.type.tensor_type.shape.dim
            if len(dims) == 1 and dims[0].dim_value > DATA_PROP_MAX_LEN:
                return True
    return False
