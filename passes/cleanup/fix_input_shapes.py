"""fix-input-shapes: pin symbolic or unknown dims of graph inputs to given ints (e.g. input=1x3x224x224)."""

from __future__ import annotations

import re

import onnx_ir as ir

from edgec.errors import ModelValidationError, PipelineError
from edgec.infra.pass_base import Pass, PassResult, register_pass
from edgec.ir.safety import limit_nbytes
from edgec.passes.cleanup._common import all_graphs

_DIMS = re.compile(r"^\s*\d+\s*([x,]\s*\d+\s*)*$")


def _parse_dims(name: str, text) -> list[int]:
    if isinstance(text, (list, tuple)):
        if not all(isinstance(d, int) and d >= 0 for d in text):
            raise PipelineError(f"fix-input-shapes: shape of '{name}' must be non-negative ints "
                                f"(no negative or unknown dim), got {list(text)}")
        return list(text)
    text = str(text).strip()
    if text == "":
        return []  # a scalar
    if not _DIMS.match(text):
        raise PipelineError(f"fix-input-shapes: cannot parse shape '{text}' of input '{name}' (use e.g. 1x3x224x224)")
    return [int(d) for d in re.split(r"[x,]", text)]


def parse_shapes(spec) -> dict[str, list[int]]:
    """`input=1x3x224x224;mask=1x128` (or a dict name -> '1,3,224,224' / list of ints)."""
    if not spec:
        return {}
    if isinstance(spec, dict):
        return {str(k): _parse_dims(str(k), v) for k, v in spec.items()}
    shapes: dict[str, list[int]] = {}
    for item in str(spec).split(";"):
        if not item.strip():
            continue
        if "=" not in item:
            raise PipelineError(f"fix-input-shapes: '{item.strip()}' must be name=dims (e.g. input=1x3x224x224)")
        name, dims = item.rsplit("=", 1)
        shapes[name.strip()] = _parse_dims(name.strip(), dims)
    return shapes


@register_pass
class FixInputShapes(Pass):
    """Replace symbolic/unknown dims of graph inputs by given ints; stale intermediate shapes are cleared."""

    name = "fix-input-shapes"
    options = {"shapes": ""}

    def run(self, model: ir.Model, ctx) -> PassResult:
        shapes = parse_shapes(self.opts["shapes"])
        if not shapes:
            return PassResult(model, False)
        file = model.meta.get("edgec.source") or model.graph.name or "model"
        inputs = {v.name: v for v in model.graph.inputs if not v.is_initializer()}
        changed = False
        for name, dims in shapes.items():
            v = inputs.get(name)
            if v is None:
                raise ModelValidationError(
                    f"{file}: fix-input-shapes: no graph input '{name}' (inputs: {', '.join(sorted(inputs)) or 'none'})")
            old = list(v.shape) if v.shape is not None else None
            if old is not None and len(old) != len(dims):
                raise ModelValidationError(
                    f"{file}: fix-input-shapes: input '{name}' has rank {len(old)}, given {len(dims)} dims {dims}")
            for i, (o, d) in enumerate(zip(old or [], dims)):
                if isinstance(o, int) and o != d:
                    raise ModelValidationError(
                        f"{file}: fix-input-shapes: input '{name}' dim {i} is {o}, given {d}")
            _check_size(file, name, v, dims, ctx.max_tensor_bytes)
            if old is None or any(not isinstance(o, int) for o in old):
                v.shape = ir.Shape(dims)
                changed = True
        if changed:
            _clear_intermediate_shapes(model)
        return PassResult(model, changed)


def _check_size(file: str, name: str, v: ir.Value, dims: list[int], limit: int) -> None:
    """The user's shape meets --max-tensor-bytes like a declared one: a 1.6 TB input must not
    compile into an artifact whose `run` then cannot allocate it."""
    nbytes = limit_nbytes(int(v.dtype) if v.dtype is not None else 0, dims)
    if nbytes > limit:
        raise ModelValidationError(f"{file}: fix-input-shapes: input '{name}' of shape {dims} needs {nbytes:,} bytes, "
                                   f"over the limit of {limit:,} (--max-tensor-bytes)")


def _clear_intermediate_shapes(model: ir.Model) -> None:
    """Node outputs lose their shapes (dtypes stay) so that infer-shapes recomputes them."""
    for graph in all_graphs(model.graph):
        for node in graph:
            for out in node.outputs:
                out.shape = None
