"""Helpers shared by the pruning passes (private: not scanned for passes): which weights a pass
may touch, name patterns (--keep, --layer-ratio), writing a new initializer value."""

from __future__ import annotations

import fnmatch

import numpy as np
import onnx_ir as ir

from edgec.errors import PipelineError
from edgec.ir.constants import const_array
from edgec.ir.domains import is_onnx_domain
from edgec.passes.cleanup._common import int_attr

WEIGHT_OPS = ("Conv", "Gemm", "MatMul")


def patterns(text: str) -> list[str]:
    """'a,b*,c' -> ['a', 'b*', 'c'] (node or weight names, fnmatch globs)."""
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def layer_ratios(text: str) -> list[tuple[str, float]]:
    """'name=0.5,conv*=0.2' -> [(pattern, ratio)]; a ratio outside [0, 1) is an error."""
    out = []
    for item in patterns(text):
        name, sep, value = item.rpartition("=")
        try:
            r = float(value)
        except ValueError:
            r = -1.0
        if not sep or not name or not 0 <= r < 1:
            raise PipelineError(f"layer ratio '{item}' must be NAME=R with 0 <= R < 1")
        out.append((name, r))
    return out


def named(node: ir.Node, pats: list[str]) -> bool:
    """Whether the node's name or one of its constant inputs' names matches a pattern."""
    names = [node.name or ""] + [v.name for v in node.inputs[1:] if v is not None and v.name]
    return any(fnmatch.fnmatchcase(n, p) for n in names for p in pats)


def weight_layers(model: ir.Model) -> list[tuple[ir.Node, ir.Value, int]]:
    """(node, weight, K axis) of each top-level Conv / Gemm / MatMul with a constant float weight
    initializer; K axis: the axis summed over (Conv: the input channels, flattened with the
    kernel; MatMul: 0; Gemm: 1 with transB else 0)."""
    out = []
    for node in model.graph:
        if node.op_type not in WEIGHT_OPS or not is_onnx_domain(node.domain) or len(node.inputs) < 2:
            continue
        w = node.inputs[1]
        arr = const_array(w)
        if arr is None or not w.is_initializer() or arr.dtype.kind != "f" or arr.ndim < 2:
            continue
        if node.op_type == "MatMul" and arr.ndim != 2:
            continue
        k = 1 if node.op_type == "Conv" else (1 if node.op_type == "Gemm" and int_attr(node, "transB", 0) else 0)
        out.append((node, w, k))
    return out


def set_constant(v: ir.Value, arr: np.ndarray) -> None:
    """Give initializer `v` a new value (and shape)."""
    v.const_value = ir.tensor(np.ascontiguousarray(arr), name=v.name)
    v.shape = ir.Shape(arr.shape)


def first_layers(model: ir.Model, layers) -> set[str]:
    """ids of the weight layers reading a graph input and of those whose output reaches a graph
    output through no other weight layer (the first and last layers, protected by default)."""
    ins = {id(v) for v in model.graph.inputs}
    weight_nodes = {id(n) for n, _, _ in layers}
    last: set[int] = set()
    todo = [v.producer() for v in model.graph.outputs if v.producer() is not None]
    seen: set[int] = set()
    while todo:  # walk back from the outputs until a weight layer
        n = todo.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if id(n) in weight_nodes:
            last.add(id(n))
            continue
        todo.extend(v.producer() for v in n.inputs if v is not None and v.producer() is not None)
    return last | {id(n) for n, _, _ in layers if n.inputs[0] is not None and id(n.inputs[0]) in ins}


def chosen_layers(model: ir.Model, o: dict) -> tuple[list, list[dict]]:
    """(layers to prune, report rows of the layers left alone): `keep` and the protected ends out."""
    layers = weight_layers(model)
    ends = first_layers(model, layers) if o["protect_ends"] else set()
    keep = patterns(o["keep"])
    take, skipped = [], []
    for node, w, k in layers:
        if keep and named(node, keep):
            skipped.append({"layer": node.name or w.name, "weight": w.name, "reason": "kept (keep)"})
        elif id(node) in ends:
            skipped.append({"layer": node.name or w.name, "weight": w.name, "reason": "first/last layer (protected)"})
        else:
            take.append((node, w, k))
    return take, skipped
