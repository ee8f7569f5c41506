"""Evaluate one node on constant numpy inputs with onnx's reference implementation.

Shared by the `fold-constants` pass and the backend's lowering-time folding (which sees models
that skipped the passes, e.g. `--passes ""` or the conformance runner)."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import onnx_ir as ir
from onnx.reference import ReferenceEvaluator

logger = logging.getLogger(__name__)

NONDETERMINISTIC = frozenset({"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike",
                              "Multinomial", "Bernoulli"})


def positional_node_proto(node: ir.Node, arrays: list) -> tuple[onnx.NodeProto, list[str]]:
    """`node` as a NodeProto whose inputs are named in0, in1, ... ("" where `arrays` has None:
    an absent optional input) and outputs out0, out1, ...; returns it with the input names."""
    proto = ir.serde.serialize_node(node)
    names = [f"in{i}" if a is not None else "" for i, a in enumerate(arrays)]
    del proto.input[:]
    proto.input.extend(names)
    del proto.output[:]
    proto.output.extend(f"out{i}" for i in range(len(node.outputs)))
    return proto, names


def evaluate_node(node: ir.Node, arrays: list[np.ndarray | None], opset: int) -> list[np.ndarray] | None:
    """Outputs of `node` for inputs `arrays` (None = absent optional input), or None when the
    evaluator cannot run it or it yields something that is not a tensor (sequence, map, optional)."""
    proto, names = positional_node_proto(node, arrays)
    try:
        ev = ReferenceEvaluator(proto, opsets={"": opset})
        with np.errstate(all="ignore"):
            results = ev.run(None, {n: a for n, a in zip(names, arrays) if n})
    except Exception as e:  # an op the evaluator cannot run: leave it to the backend
        logger.info("cannot evaluate %s (%s): %s", node.name, node.op_type, e)
        return None
    if not all(isinstance(r, (np.ndarray, np.generic)) for r in results):
        return None
    out = [np.asarray(r) for r in results]
    return None if any(r.dtype == object for r in out) else out
