"""unroll-loop: unroll Loop/Scan nodes with a static, small trip count into copies of their body."""

from __future__ import annotations

import logging

import numpy as np
import onnx_ir as ir

from edgec.infra.pass_base import Pass, PassResult, register_pass
from edgec.ir.constants import const_array
from edgec.ir.domains import onnx_opset
from edgec.passes.cleanup._common import (
    all_graphs,
    int_attr,
    ints_attr,
    is_standard,
)
from edgec.passes.control._common import (
    Emitter,
    Namer,
    move_initializers,
    name_counts,
    rebind_output,
)
from edgec.passes.control._loop_trips import simulated_trip_count

logger = logging.getLogger(__name__)


def _true(v: ir.Value | None, cond_in: ir.Value | None = None) -> bool:
    """`v` is constantly true, or is the loop's own incoming condition passed through."""
    if v is None:
        return True
    while True:
        if cond_in is not None and v is cond_in:
            return True
        p = v.producer()
        if p is not None and p.op_type == "Identity" and is_standard(p) and p.inputs[0] is not None:
            v = p.inputs[0]
            continue
        break
    arr = const_array(v)
    return arr is not None and arr.size == 1 and bool(arr.reshape(-1)[0])


def loop_trip_count(node: ir.Node, max_trips: int, opset: int = 1) -> int | str:
    """The static trip count of a Loop, or the reason not to unroll it. A condition that is not
    constantly true is simulated on constants (TF while_loop counters, see `_loop_trips`)."""
    body = node.attributes["body"].as_graph()
    if not _true(body.outputs[0], body.inputs[1]):
        return simulated_trip_count(node, max_trips, opset)
    m = const_array(node.inputs[0]) if node.inputs and node.inputs[0] is not None else None
    if m is None:
        return "the trip count is not a constant"
    if not _true(node.inputs[1] if len(node.inputs) > 1 else None):
        return "the initial condition is not constantly true"
    trips = int(m.reshape(-1)[0])
    if trips < 1:
        return f"trip count {trips}"
    return trips if trips <= max_trips else f"trip count {trips} > max_trip_count {max_trips}"


def _scan_plan(node: ir.Node, max_trips: int) -> tuple | str:
    body = node.attributes["body"].as_graph()
    n_scan = int_attr(node, "num_scan_inputs", 0)
    n_state = len(node.inputs) - n_scan
    scans = node.inputs[n_state:]
    in_axes = ints_attr(node, "scan_input_axes") or [0] * n_scan
    in_dirs = ints_attr(node, "scan_input_directions") or [0] * n_scan
    n_out = len(body.outputs) - n_state
    out_axes = ints_attr(node, "scan_output_axes") or [0] * n_out
    out_dirs = ints_attr(node, "scan_output_directions") or [0] * n_out
    trips = set()
    for k, v in enumerate(scans):
        if v is None or v.shape is None or not isinstance(v.shape[in_axes[k] % len(v.shape)], int):
            return "a scan input's length is not static"
        in_axes[k] %= len(v.shape)
        trips.add(int(v.shape[in_axes[k]]))
    if len(trips) != 1:
        return "no scan inputs or scan inputs of different lengths"
    for k, a in enumerate(out_axes):
        if a < 0:
            o = body.outputs[n_state + k]
            if o.shape is None:
                return "a negative scan output axis with unknown rank"
            out_axes[k] = a % (len(o.shape) + 1)
    (t,) = trips
    if t < 1 or t > max_trips:
        return f"trip count {t} (max_trip_count {max_trips})"
    return t, n_state, in_axes, in_dirs, out_axes, out_dirs


class _Body:
    """Copies of a loop body, inserted through an emitter."""

    def __init__(self, graph: ir.Graph, body: ir.Graph, e: Emitter, namer: Namer):
        self.body, self.e, self.namer = body, e, namer
        self.outputs = list(body.outputs)
        body.outputs.clear()  # the body is consumed: release its outputs so its initializers can move
        move_initializers(body, graph, namer, name_counts(body))  # once, shared by all copies

    def copy(self, bindings: list[ir.Value], suffix: str) -> list[ir.Value]:
        clone = self.body.clone(allow_outer_scope_values=True)  # outer-scope values stay shared
        vmap = dict(zip(self.body.inputs, bindings))
        for cloned_input, bound in zip(clone.inputs, bindings):
            cloned_input.replace_all_uses_with(bound)
        for node, cloned in zip(self.body, clone):
            vmap.update(zip(node.outputs, cloned.outputs))
        nodes = list(clone)
        clone.remove(nodes)
        for node, new in zip(self.body, nodes):
            new.name = self.namer.fresh(f"{node.name or node.op_type}{suffix}")
            for o in new.outputs:
                if o.name:
                    o.name = self.namer.fresh(f"{o.name}{suffix}")
            self.e.nodes.append(new)
        return [vmap.get(o, o) for o in self.outputs]


def _finish(graph: ir.Graph, node: ir.Node, e: Emitter, namer: Namer, finals: list[ir.Value]) -> None:
    fresh = {id(o) for n in e.nodes for o in n.outputs}
    used: set[int] = set()
    for i, (out, v) in enumerate(zip(node.outputs, finals)):
        if out.is_graph_output() and (id(v) not in fresh or id(v) in used or v.is_graph_output()):
            finals[i] = v = e.op("Identity", [v])
        used.add(id(v))
    e.commit()
    for out, v in zip(node.outputs, finals):
        if v.type is None:
            v.type = out.type
        rebind_output(out, v, namer)
    graph.remove(node, safe=True)


def unroll_loop(graph: ir.Graph, node: ir.Node, trips: int, namer: Namer, opset: int) -> None:
    body = node.attributes["body"].as_graph()
    e = Emitter(graph, node, namer, opset, prefix=node.name or "Loop")
    b = _Body(graph, body, e, namer)
    n_carried = len(node.inputs) - 2
    carried = list(node.inputs[2:])
    scans: list[list[ir.Value]] = [[] for _ in range(len(b.outputs) - 1 - n_carried)]
    true = e.value(np.array(True))
    for i in range(trips):
        outs = b.copy([e.value(np.array(i, np.int64)), true, *carried], f"_it{i}")
        carried = outs[1:1 + n_carried]
        for k, v in enumerate(outs[1 + n_carried:]):
            scans[k].append(v)
    stacked = [e.concat([e.unsqueeze(v, [0]) for v in vs], 0) for vs in scans]
    _finish(graph, node, e, namer, carried + stacked)


def unroll_scan(graph: ir.Graph, node: ir.Node, plan: tuple, namer: Namer, opset: int) -> None:
    trips, n_state, in_axes, in_dirs, out_axes, out_dirs = plan
    body = node.attributes["body"].as_graph()
    e = Emitter(graph, node, namer, opset, prefix=node.name or "Scan")
    b = _Body(graph, body, e, namer)
    state = list(node.inputs[:n_state])
    scans: list[list[ir.Value]] = [[] for _ in range(len(b.outputs) - n_state)]
    for t in range(trips):
        elems = [e.index(v, in_axes[k], trips - 1 - t if in_dirs[k] else t)
                 for k, v in enumerate(node.inputs[n_state:])]
        outs = b.copy([*state, *elems], f"_it{t}")
        state = outs[:n_state]
        for k, v in enumerate(outs[n_state:]):
            scans[k].append(v)
    stacked = []
    for k, vs in enumerate(scans):
        vs = vs[::-1] if out_dirs[k] else vs
        stacked.append(e.concat([e.unsqueeze(v, [out_axes[k]]) for v in vs], out_axes[k]))
    _finish(graph, node, e, namer, state + stacked)


_BUDGET_KEY = "edgec.unroll_loop.nodes"  # model.meta: body nodes copied so far in this compile


def _charge_budget(model: ir.Model, node: ir.Node, plan: int | tuple, max_nodes: int) -> int | tuple | str:
    """Unroll bombs: each loop's trip count is bounded, but a nest multiplies out (three nested
    64-trip loops are 262,144 body copies, over the fixpoint iterations). The body copies made over
    the whole compile (`model.meta`, nested bodies counted in full) stay within `max_nodes`; a loop
    over the budget is left alone (the backend then reports it as unsupported)."""
    trips = plan if isinstance(plan, int) else plan[0]
    body = node.attributes["body"].as_graph()
    cost = trips * sum(1 for _ in ir.traversal.RecursiveGraphIterator(body))
    spent = int(model.meta.get(_BUDGET_KEY, 0))
    if spent + cost > max_nodes:
        return f"unrolling would copy {cost:,} nodes, {spent:,} copied already (max_unrolled_nodes {max_nodes:,})"
    model.meta[_BUDGET_KEY] = spent + cost
    return plan


@register_pass
class UnrollLoop(Pass):
    """Unroll Loop (trip count known at compile time, also through a simulated condition) and Scan nodes of at most max_trip_count steps, copying at most max_unrolled_nodes body nodes in all."""

    name = "unroll-loop"
    options = {"max_trip_count": 64, "max_unrolled_nodes": 10000}

    def run(self, model: ir.Model, ctx) -> PassResult:
        opts = self.opts
        max_trips, max_nodes = int(opts["max_trip_count"]), int(opts["max_unrolled_nodes"])
        namer: Namer | None = None
        modified = False
        opset = onnx_opset(model, 1)
        for graph in all_graphs(model.graph):
            for node in list(graph):
                if node.op_type not in ("Loop", "Scan") or not is_standard(node) or node.graph is not graph:
                    continue
                if node.op_type == "Loop":
                    plan = loop_trip_count(node, max_trips, opset)
                else:
                    plan = _scan_plan(node, max_trips) if opset >= 9 else "Scan before opset 9"
                if not isinstance(plan, str):
                    plan = _charge_budget(model, node, plan, max_nodes)
                if isinstance(plan, str):
                    logger.info("unroll-loop: leaving %s (%s): %s", node.name, node.op_type, plan)
                    continue
                namer = namer or Namer(model)
                (unroll_loop if node.op_type == "Loop" else unroll_scan)(graph, node, plan, namer, opset)
                modified = True
        return PassResult(model, modified)
