"""Candidate models for `edgec reduce`: seeded inputs, validity, value uses, input dims halved."""

from __future__ import annotations

import numpy as np
import onnx


def inputs_of(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    import onnx_ir as ir

    from edgec.ir.analysis import graph_inputs
    from edgec.reference import seeded_inputs

    return seeded_inputs(graph_inputs(ir.serde.deserialize_model(model)))


def runnable(model: onnx.ModelProto) -> bool:
    """The ONNX checker accepts it and onnxruntime runs it on seeded inputs (quietly)."""
    from edgec.user_cache import import_onnxruntime

    ort = import_onnxruntime()

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads, so.log_severity_level = 1, 4
    try:
        onnx.checker.check_model(model, full_check=True)
        ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(None, inputs_of(model))
    except Exception:
        return False
    return True


def uses(node: onnx.NodeProto) -> list[str]:
    """Names a node reads: its inputs and (over-approximated) every name its subgraphs read."""
    names = [n for n in node.input if n]
    for a in node.attribute:
        for g in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
            for n in g.node:
                names += uses(n)
    return names


def dims(model: onnx.ModelProto, k: int) -> list[int]:
    """Input k's dims, 0 for unknown ones."""
    return [d.dim_value for d in model.graph.input[k].type.tensor_type.shape.dim]


def halved(model: onnx.ModelProto, inputs: set[int], r: int) -> onnx.ModelProto | None:
    """`model` with dim r (negative: from the right) of `inputs` halved, output shapes re-inferred."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for j in inputs:
        dim = m.graph.input[j].type.tensor_type.shape.dim[r]
        dim.dim_value //= 2
    del m.graph.value_info[:]
    for o in m.graph.output:
        for od in o.type.tensor_type.shape.dim:
            od.Clear()
    try:
        m = onnx.shape_inference.infer_shapes(m, strict_mode=True)
    except Exception:
        return None
    del m.graph.value_info[:]
    return m
