"""infer-shapes: run ONNX shape inference (with data propagation) and write shapes/dtypes onto IR values.

Data propagation is skipped where onnx would allocate per element of a huge 1-D value
(`edgec.ir.safety.infer_shapes_bounded`); the PassManager checks the inferred sizes against
--max-tensor-bytes."""

from __future__ import annotations

import onnx
import onnx_ir as ir
from onnx_ir.passes.common import _c_api_utils

from edgec.errors import ModelValidationError
from edgec.infra.pass_base import Pass, PassResult, register_pass
from edgec.ir.safety import infer_shapes_bounded
from edgec.passes.cleanup._common import all_graphs


def _merge_shape(old: ir.Shape | None, new: ir.Shape | None) -> ir.Shape | None:
    """The more informative of two shapes: inferred dims win unless they are unknown where the
    old shape knew the dim."""
    if new is None:
        return old
    if old is None or len(old) != len(new):
        return new
    dims = []
    for o, n in zip(old, new):
        if isinstance(n, int):
            dims.append(n)
        elif isinstance(o, int) or (n.value is None and o.value is not None):
            dims.append(o)
        else:
            dims.append(n)
    return ir.Shape(dims)


def _same_shape(a: ir.Shape | None, b: ir.Shape | None) -> bool:
    if a is None or b is None:
        return a is b
    return len(a) == len(b) and all(_dim_key(x) == _dim_key(y) for x, y in zip(a, b))


def _dim_key(d) -> tuple:
    return ("i", int(d)) if isinstance(d, int) else ("s", d.value)


@register_pass
class InferShapes(Pass):
    """Infer shapes and dtypes of all values with onnx shape inference (data propagation on)."""

    name = "infer-shapes"
    options = {"strict": False}

    def run(self, model: ir.Model, ctx) -> PassResult:
        file = model.meta.get("edgec.source") or model.graph.name or "model"

        def infer(proto: onnx.ModelProto) -> onnx.ModelProto:
            # bounded: no data propagation over huge 1-D values; the sizes revealed are checked by
            # the PassManager (PassContext.max_tensor_bytes) once they are on the IR
            return infer_shapes_bounded(proto, file, None, check_type=False, strict_mode=bool(self.opts["strict"]))

        try:
            inferred_proto = _c_api_utils.call_onnx_api(infer, model)
        except Exception as e:
            msg = " ".join(str(e).split())[:300]
            raise ModelValidationError(f"{file}: shape inference failed: {msg}") from None
        inferred = ir.serde.deserialize_model(inferred_proto)
        modified = False
        for graph, inf_graph in zip(all_graphs(model.graph), all_graphs(inferred.graph)):
            inf_values = ir.convenience.create_value_mapping(inf_graph)
            for name, value in ir.convenience.create_value_mapping(graph).items():
                iv = inf_values.get(name)
                if iv is None or value.graph is not graph:
                    continue
                if not isinstance(iv.type, ir.TensorType) and value.type is None:
                    # onnx_ir serializes a shapeless sequence/optional element as rank 0, which
                    # onnxruntime then rejects: leave non-tensor values untyped.
                    continue
                shape = _merge_shape(value.shape, iv.shape)
                if not _same_shape(shape, value.shape):
                    value.shape = shape
                    modified = True
                # Whole types, not dtypes: setting .dtype on an untyped value would make a
                # tensor type out of a sequence/optional type.
                if iv.type is not None and value.type != iv.type:
                    value.type = iv.type
                    modified = True
        return PassResult(model, modified)
