"""A generated model as exporters write it with a dynamic batch: the batch dim of the graph's
inputs and outputs becomes symbolic, and every constant Reshape target that starts with the
batch reads it back at run time, `Concat(Unsqueeze(Gather(Shape(data), 0)), rest)`.

The fuzzer's generators build static shapes, and fold-constants turns their shape subgraphs into
constants, so without this the pruning analysis never sees a target built at run time or a Shape
of a channel tensor. Only targets whose data has a static batch of 1 are rewritten, and the model
is run at batch 1: it computes exactly what the static one does."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

BATCH = "N"


def _static_shapes(model: onnx.ModelProto) -> dict[str, list]:
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    return {vi.name: [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
            for vi in [*g.value_info, *g.input, *g.output] if vi.type.HasField("tensor_type")}


def with_run_time_targets(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """(the rewritten model, how many Reshape targets now read the batch at run time)."""
    shapes = _static_shapes(model)
    inits = {i.name: i for i in model.graph.initializer}
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    nodes, extra, count = [], [], 0
    for node in g.node:
        t = numpy_helper.to_array(inits[node.input[1]]) if node.op_type == "Reshape" and node.input[1] in inits else None
        data = shapes.get(node.input[0]) if t is not None else None
        if t is not None and t.ndim == 1 and len(t) >= 2 and t[0] == 1 and data and data[0] == 1:
            p = f"edgec_rt{count}_"
            nodes += [helper.make_node("Shape", [node.input[0]], [p + "shape"]),
                      helper.make_node("Gather", [p + "shape", p + "zero"], [p + "batch"], axis=0),
                      helper.make_node("Unsqueeze", [p + "batch", p + "axes"], [p + "batch1"]),
                      helper.make_node("Concat", [p + "batch1", p + "rest"], [p + "target"], axis=0)]
            extra += [numpy_helper.from_array(np.int64(0), p + "zero"),
                      numpy_helper.from_array(np.array([0], np.int64), p + "axes"),
                      numpy_helper.from_array(t[1:].astype(np.int64), p + "rest")]
            node.input[1] = p + "target"
            count += 1
        nodes.append(node)
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(extra)
    del g.value_info[:]  # recomputed by whoever reads the model
    for v in [*g.input, *g.output]:
        dims = v.type.tensor_type.shape.dim
        if len(dims) >= 2 and dims[0].HasField("dim_value") and dims[0].dim_value == 1:
            dims[0].dim_param = BATCH
    return out, count


def batch_one_inputs(model: onnx.ModelProto, seed: int) -> dict[str, np.ndarray]:
    """Seeded inputs with the symbolic batch (and any other symbolic dim) at 1."""
    import onnx_ir as ir

    from edgec.ir.analysis import graph_inputs
    from edgec.reference import seeded_inputs

    return seeded_inputs(graph_inputs(ir.serde.deserialize_model(model)), seed, default_dim=1)
