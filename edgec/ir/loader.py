"""Safe loading of ONNX files into edgec's IR (an `onnx_ir.Model`).

Every failure here is a one-line `ModelLoadError` / `ModelValidationError` naming the file:
missing file, not ONNX, truncated protobuf, external data outside the model directory, and
inconsistent shapes (onnx's strict shape inference). The model and its external data files are
read through `edgec.safe_read`: a FIFO, a device (/dev/zero) or a file over the protobuf limit is
refused before reading.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx
import onnx_ir as ir
from google.protobuf.message import DecodeError

from edgec.errors import ModelLoadError, ModelValidationError
from edgec.ir.domains import ONNX_DOMAINS, canonicalize_onnx_domain
from edgec.ir.ort_schemas import register_onnxruntime_onnx_domain_ops
from edgec.ir.safety import (
    DEFAULT_MAX_NODES,
    DEFAULT_MAX_TENSOR_BYTES,
    check_initializers,
    check_node_count,
    infer_shapes_bounded,
    tensor_nbytes,
    unknown_minus_one_dims,
)
from edgec.safe_read import check_regular_file, read_regular_file

register_onnxruntime_onnx_domain_ops()  # before any onnx checker or shape inference on a loaded model


def iter_tensors(graph: onnx.GraphProto):
    """Every tensor of a graph: initializers, node attributes, subgraphs (recursively)."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from iter_tensors(attr.g)
            for g in attr.graphs:
                yield from iter_tensors(g)


def check_external_data(proto: onnx.ModelProto, base_dir: Path | None, file: str) -> None:
    """Reject external data that escapes `base_dir`, is missing, or is smaller than declared."""
    root = base_dir.resolve() if base_dir is not None else None
    for t in iter_tensors(proto.graph):
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        loc = info.get("location", "")
        if root is None:
            raise ModelLoadError(f"{file}: tensor '{t.name}' uses external data but the model has no directory")
        if "\0" in loc:
            raise ModelLoadError(f"{file}: tensor '{t.name}' external data location {loc!r} contains a NUL byte")
        if not loc or os.path.isabs(loc):
            raise ModelLoadError(f"{file}: tensor '{t.name}' external data location '{loc}' must be a relative path")
        target = (root / loc).resolve()
        if os.path.commonpath([root, target]) != str(root):
            raise ModelLoadError(
                f"{file}: tensor '{t.name}' external data '{loc}' escapes the model directory {root}"
            )
        what = f"{file}: tensor '{t.name}' external data '{loc}'"
        size = check_regular_file(target, what)
        offset = _external_int(info, "offset", 0, what)
        length = _external_int(info, "length", size - offset, what)
        n = 1
        for d in t.dims:
            n *= d
        expected = tensor_nbytes(t.data_type, n)  # sub-byte types packed, e.g. int4 two per byte
        if offset < 0 or offset + length > size:
            raise ModelLoadError(
                f"{file}: tensor '{t.name}' external data '{loc}' [{offset}, {offset + length}) exceeds the file ({size} bytes)"
            )
        if expected is not None and length != expected:
            raise ModelLoadError(
                f"{file}: tensor '{t.name}' declares {n} elements ({expected} bytes) but its external data has {length} bytes"
            )


def _external_int(info: dict[str, str], key: str, default: int, what: str) -> int:
    """An external-data `offset` / `length` entry: a non-negative integer."""
    text = info.get(key) or ""
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ModelLoadError(f"{what}: {key} '{text[:40]}' is not a non-negative integer")
    return value


def parse_model_bytes(data: bytes, file: str) -> onnx.ModelProto:
    proto = onnx.ModelProto()
    try:
        proto.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        raise ModelLoadError(f"{file}: not a valid ONNX protobuf (truncated or not an ONNX file): {e}") from None
    if not proto.HasField("graph") or proto.ir_version <= 0 or not proto.opset_import:
        raise ModelLoadError(f"{file}: not an ONNX model (no graph, IR version or opset import)")
    return proto


def _newest_opsets() -> dict[str, int]:
    """The newest opset of each standard domain the installed onnx defines."""
    table = onnx.helper.VERSION_TABLE  # (release, ir_version, ai.onnx, ai.onnx.ml, ai.onnx.training)
    return {"": max(r[2] for r in table), "ai.onnx": max(r[2] for r in table),
            "ai.onnx.ml": max(r[3] for r in table)}


def check_opset_versions(proto: onnx.ModelProto, file: str) -> None:
    """A standard domain imported at a version newer than onnx defines (or below 1) has no op
    semantics edgec could know: the model is from the future or crafted."""
    newest = _newest_opsets()
    for o in proto.opset_import:
        top = newest.get(o.domain)
        if top is not None and not 1 <= o.version <= top:
            raise ModelValidationError(f"{file}: imports opset {o.version} of domain '{o.domain or 'ai.onnx'}'; "
                                       f"edgec knows versions 1 to {top} (onnx {onnx.__version__})")


def validate_proto(proto: onnx.ModelProto, file: str, path: Path | None = None,
                   max_tensor_bytes: int = DEFAULT_MAX_TENSOR_BYTES, max_nodes: int = DEFAULT_MAX_NODES) -> None:
    """Declared sizes, onnx.checker, strict shape inference, value sizes (negative dims, memory
    bombs); one-line errors.

    With `path` (the model's file), the checker resolves external data beside the model instead of
    relative to the current directory.
    """
    check_node_count(proto.graph, file, max_nodes)
    check_initializers(proto.graph, file, max_tensor_bytes)
    check_opset_versions(proto, file)
    try:
        if path is not None:
            onnx.checker.check_model(str(path))
        else:
            onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as e:
        raise ModelValidationError(f"{file}: invalid ONNX model: {_first_line(e)}") from None
    except UnicodeDecodeError:
        raise ModelValidationError(f"{file}: invalid ONNX model: a name or string is not valid UTF-8") from None
    try:
        _check_shapes(proto, file, max_tensor_bytes, path)
    except UnicodeDecodeError:
        raise ModelValidationError(f"{file}: invalid ONNX model: a name or string is not valid UTF-8") from None


SHAPE_TENSOR_ELEMENTS = 64  # integer initializers up to this size may be shape operands (Reshape, Expand, ...)


def _check_shapes(proto: onnx.ModelProto, file: str, max_tensor_bytes: int, path: Path | None) -> None:
    """Strict shape inference; annotations of Constant outputs that contradict it are dropped
    (`_drop_wrong_value_info`), any other inconsistency refuses the model."""
    try:
        infer_shapes_bounded(proto, file, max_tensor_bytes, strict_mode=True)
    except onnx.shape_inference.InferenceError as e:
        if "Cannot parse data from external tensors" in str(e):
            # onnx's inference does not read external data (a Reshape target stored in the .data
            # file): its limit, not an inconsistency of the model. Checked again with the small
            # integer initializers read in (check_external_data has bounded their files).
            if _inline_small_external_ints(proto, path):
                _check_shapes(proto, file, max_tensor_bytes, None)
            return
        if not proto.graph.value_info:
            raise ModelValidationError(f"{file}: inconsistent shapes: {_first_line(e)}") from None
        _drop_wrong_value_info(proto, file, max_tensor_bytes, e)


def _inline_small_external_ints(proto: onnx.ModelProto, path: Path | None) -> bool:
    """Read the small external integer initializers of `proto` (the model file at `path`) into it;
    whether there were any."""
    if path is None:
        return False
    from onnx.external_data_helper import load_external_data_for_tensor

    loaded = False
    for t in proto.graph.initializer:
        n = 1
        for d in t.dims:
            n *= d
        if (t.data_location == onnx.TensorProto.EXTERNAL and n <= SHAPE_TENSOR_ELEMENTS
                and t.data_type in (onnx.TensorProto.INT64, onnx.TensorProto.INT32)):
            load_external_data_for_tensor(t, str(Path(path).parent))
            t.data_location = onnx.TensorProto.DEFAULT
            del t.external_data[:]
            loaded = True
    return loaded


def _drop_wrong_value_info(proto: onnx.ModelProto, file: str, max_tensor_bytes: int, error: Exception) -> None:
    """The graph's value_info (shape annotations of intermediate values) contradicts shape
    inference. onnxruntime-genai's model builder declares the outputs of its [1]-shaped Constant
    nodes as scalars (onnxruntime overrides such annotations). The annotations of Constant
    outputs, whose type and shape the node itself fixes, are dropped; the model is refused if it
    is still inconsistent (the other annotations stay: they type the outputs of contrib ops,
    which onnx cannot infer)."""
    constants = {o for n in proto.graph.node if n.op_type == "Constant" and n.domain in ONNX_DOMAINS for o in n.output}
    hints = list(proto.graph.value_info)
    kept = [vi for vi in hints if vi.name not in constants]
    if len(kept) == len(hints):
        raise ModelValidationError(f"{file}: inconsistent shapes: {_first_line(error)}") from None
    del proto.graph.value_info[:]
    proto.graph.value_info.extend(kept)
    try:
        infer_shapes_bounded(proto, file, max_tensor_bytes, strict_mode=True)
    except onnx.shape_inference.InferenceError:
        del proto.graph.value_info[:]
        proto.graph.value_info.extend(hints)
        raise ModelValidationError(f"{file}: inconsistent shapes: {_first_line(error)}") from None


def _first_line(e: Exception) -> str:
    text = " ".join(str(e).split())
    return text[:400]


def load_proto(path: str | os.PathLike) -> onnx.ModelProto:
    p = Path(path)
    if p.is_dir():
        raise ModelLoadError(f"{p}: is a directory, expected an .onnx file")
    data = read_regular_file(p, str(p))
    if not data:
        raise ModelLoadError(f"{p}: empty file, not an ONNX model")
    proto = parse_model_bytes(data, str(p))
    check_external_data(proto, p.parent, str(p))
    return proto


def load_model(source: str | os.PathLike | onnx.ModelProto, *, validate: bool = True,
               max_tensor_bytes: int = DEFAULT_MAX_TENSOR_BYTES, max_nodes: int = DEFAULT_MAX_NODES) -> ir.Model:
    """Load an ONNX model from a path or a ModelProto into edgec's IR.

    External data is resolved only inside the model's directory.
    """
    if isinstance(source, onnx.ModelProto):
        file = source.graph.name or "<ModelProto>"
        check_external_data(source, None, file)
        proto, base_dir, path = source, None, None
    else:
        file = str(source)
        proto, base_dir, path = load_proto(source), Path(source).parent, Path(source)
    unknown_minus_one_dims(proto.graph)
    if validate:
        validate_proto(proto, file, path, max_tensor_bytes, max_nodes)
    try:
        model = ir.serde.deserialize_model(proto)
    except Exception as e:  # onnx_ir raises various errors on malformed graphs
        raise ModelValidationError(f"{file}: malformed graph: {_first_line(e)}") from None
    if base_dir is not None:
        ir.external_data.set_base_dir(model.graph, base_dir)
    versions = {o.version for o in proto.opset_import if o.domain in ONNX_DOMAINS}
    if len(versions) > 1:
        raise ModelValidationError(f"{file}: imports the default ONNX domain as both '' and 'ai.onnx' "
                                   f"at different versions {sorted(versions)}")
    canonicalize_onnx_domain(model)
    model.meta["edgec.source"] = file
    return model


def to_proto(model: ir.Model) -> onnx.ModelProto:
    return ir.serde.serialize_model(model)


EXTERNAL_DATA_BYTES = 1 << 30  # in-memory initializers totalling this much are saved as external data


def save_model(model: ir.Model, path: str | os.PathLike) -> None:
    """Save atomically: write a temporary file beside `path`, then rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    inits = [v.const_value for v in model.graph.initializers.values() if v.const_value is not None]
    # weights that came as external data stay external, and so do weights too big for one
    # protobuf (2 GiB): beside the output, as <name>.data. onnx-ir copies external tensors in
    # chunks, so saving does not load them.
    external = (any(isinstance(t, ir.ExternalTensor) for t in inits)
                or sum(t.nbytes for t in inits) >= EXTERNAL_DATA_BYTES)
    try:
        ir.save(model, tmp, external_data=f"{path.name}.data" if external else None)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
