"""The trip count of a Loop whose condition is decided at compile time (private helper of unroll-loop).

TensorFlow's `while_loop`, as tf2onnx exports it (Keras GRU/LSTM cells, dynamic_rnn), carries a
time counter next to the state and ends with `cond = (iter < max_iter) & (time + 1 < seq_len)`.
The condition is not constantly true, but it depends only on the iteration number and carried
constants. This module simulates exactly that part of the body (the backward slice of the
condition through carried values), iteration by iteration, on numpy constants.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.ir.constants import const_array
from edgec.ir.evaluate import NONDETERMINISTIC, evaluate_node
from edgec.passes.cleanup._common import has_subgraph

_SIZE_LIMIT = 1 << 16  # elements: the condition slice is scalar bookkeeping, not tensor math


def _condition_slice(body: ir.Graph) -> list[ir.Node]:
    """Body nodes the condition output depends on, following carried values across iterations."""
    n_carried = len(body.inputs) - 2
    carried_out = {id(body.inputs[2 + k]): body.outputs[1 + k] for k in range(n_carried)}
    needed: set[int] = set()
    nodes: set[int] = set()
    stack = [body.outputs[0]]
    while stack:
        v = stack.pop()
        if v is None or id(v) in needed:
            continue
        needed.add(id(v))
        if id(v) in carried_out:
            stack.append(carried_out[id(v)])
        p = v.producer()
        if p is not None and p.graph is body and id(p) not in nodes:
            nodes.add(id(p))
            stack.extend(p.inputs)
    return [n for n in body if id(n) in nodes]


def _evaluate(nodes: list[ir.Node], known: dict[int, np.ndarray], opset: int) -> None:
    for n in nodes:
        if has_subgraph(n) or n.op_type in NONDETERMINISTIC:
            continue
        arrays = []
        for v in n.inputs:
            a = None if v is None else known.get(id(v), const_array(v))
            if v is not None and a is None:
                break
            arrays.append(a)
        else:
            if sum(a.size for a in arrays if a is not None) > _SIZE_LIMIT:
                continue
            outs = evaluate_node(n, arrays, n.version or opset)
            for o, a in zip(n.outputs, outs or ()):
                known[id(o)] = a


def simulated_trip_count(node: ir.Node, max_trips: int, opset: int) -> int | str:
    """How often the Loop `node` runs, or why that is not known at compile time."""
    body = node.attributes["body"].as_graph()
    m = const_array(node.inputs[0]) if node.inputs and node.inputs[0] is not None else None
    limit = int(m.reshape(-1)[0]) if m is not None else None
    cond0 = node.inputs[1] if len(node.inputs) > 1 else None
    c = const_array(cond0) if cond0 is not None else np.array(True)
    if c is None:
        return "the initial condition is not a constant"
    if not bool(c.reshape(-1)[0]) or (limit is not None and limit < 1):
        return "the loop runs zero times"
    nodes = _condition_slice(body)
    carried = [const_array(v) for v in node.inputs[2:]]
    for i in range(max_trips):
        known = {id(body.inputs[0]): np.array(i, np.int64), id(body.inputs[1]): np.array(True)}
        known.update({id(v): a for v, a in zip(body.inputs[2:], carried) if a is not None})
        _evaluate(nodes, known, opset)
        cond = known.get(id(body.outputs[0]), const_array(body.outputs[0]))
        if cond is None or cond.size != 1:
            return "the body's condition is not a compile-time constant"
        if not bool(cond.reshape(-1)[0]) or (limit is not None and i + 1 >= limit):
            return i + 1
        carried = [known.get(id(o), const_array(o)) for o in body.outputs[1:len(node.inputs) - 1]]
    return f"more than max_trip_count {max_trips} iterations"
