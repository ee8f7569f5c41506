"""Structural matching of a pattern DAG against the IR, with backtracking for commutative ops.

`Matcher.matches(pattern, node)` yields every consistent binding (a `Match`) rooted at `node`;
nothing in the graph is touched. When nothing matches, `Matcher.failure` holds the reason found
deepest in the pattern (for the rewrite trace).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from edgec.ir.constants import const_array
from edgec.ir.domains import normalize_domain, onnx_opset
from edgec.rewrite.pattern import Const, NodeOutput, NodePattern, ValuePattern, Var, attr_matches

__all__ = ["Match", "Matcher", "attr_value", "normalize_domain"]


def attr_value(node: ir.Node, name: str, default=None):
    a = node.attributes.get(name)
    if a is None:
        return default
    v = a.value
    if isinstance(v, ir.TensorProtocol):
        return v.numpy()
    return list(v) if isinstance(v, (list, tuple)) or type(v).__name__ == "RepeatedCompositeContainer" else v


def _keeps_shape(shape, cshape: tuple[int, ...]) -> bool:
    """Broadcasting a constant of shape `cshape` against `shape` gives `shape` back."""
    if len(cshape) > len(shape):
        return False
    return all(c == 1 or c == dim for c, dim in zip(reversed(cshape), reversed(list(shape))))


def scalar_broadcast_reason(patterns: list, values: list) -> str:
    """Why a scalar pattern constant (`op.scalar`) cannot stand for a scalar here: it must not
    broadcast the node's other, non-constant inputs to a larger shape, or a rewrite that drops it
    (x + 3 ... -> HardSwish(x)) would change the output's shape. A [3, 1, 1] constant of 3.0s
    added to a [2, 8] input makes [3, 2, 8]. When no other input has a known shape, only a rank-0
    constant is proven neutral."""
    for pat, v in zip(patterns, values):
        if not (isinstance(pat, Const) and pat.value is not None) or v is None:
            continue
        arr = const_array(v)
        if arr is None:
            continue
        others = [o for q, o in zip(patterns, values) if q is not pat and o is not None and const_array(o) is None]
        shapes = [o.shape for o in others if o.shape is not None]
        if not shapes and arr.ndim:
            return f"constant '{v.name}' of shape {list(arr.shape)} may broadcast an input of unknown shape"
        for shape in shapes:
            if not _keeps_shape(shape, arr.shape):
                return f"constant '{v.name}' of shape {list(arr.shape)} broadcasts an input of shape {list(shape)}"
    return ""


@dataclass
class Match:
    """A successful structural match: bound values, matched nodes, and helpers for `check`."""

    model: ir.Model
    graph: ir.Graph
    root: ir.Node
    output: ir.Value
    values: dict[str, ir.Value]
    named_nodes: dict[str, ir.Node]
    nodes: list[ir.Node] = field(default_factory=list)  # distinct matched nodes, root first

    def __getitem__(self, name: str) -> ir.Value:
        return self.values[name]

    def get(self, name: str) -> ir.Value | None:
        return self.values.get(name)

    def const(self, name: str) -> np.ndarray | None:
        return const_array(self.values.get(name))

    def const_value_of(self, value: ir.Value | None) -> np.ndarray | None:
        return const_array(value)

    def node(self, name: str) -> ir.Node:
        return self.named_nodes[name]

    def attr(self, node_name: str, attr: str, default=None):
        return attr_value(self.named_nodes[node_name], attr, default)

    @property
    def opset(self) -> int:
        return onnx_opset(self.model, 0)


@dataclass
class _State:
    values: dict[str, ir.Value]
    nodes: dict[int, ir.Node]  # id(NodePattern) -> node
    named: dict[str, ir.Node]

    def bind_value(self, name: str, v: ir.Value) -> _State:
        return _State({**self.values, name: v}, self.nodes, self.named)

    def bind_node(self, p: NodePattern, n: ir.Node) -> _State:
        named = {**self.named, p.name: n} if p.name else self.named
        return _State(self.values, {**self.nodes, id(p): n}, named)


class Matcher:
    def __init__(self) -> None:
        self.failure = ""
        self._depth = -1

    def _fail(self, depth: int, reason: str) -> None:
        if depth >= self._depth:
            self._depth, self.failure = depth, reason

    def matches(self, model: ir.Model, pattern: NodeOutput, node: ir.Node) -> Iterator[Match]:
        self.failure, self._depth = "", -1
        if pattern.index >= len(node.outputs):
            self._fail(0, f"root {node.op_type} has no output {pattern.index}")
            return
        for st in self._node(pattern.node, node, _State({}, {}, {}), 0):
            seen: dict[int, ir.Node] = {}
            for n in st.nodes.values():
                seen.setdefault(id(n), n)
            ordered = [node] + [n for n in seen.values() if n is not node]
            yield Match(model, node.graph, node, node.outputs[pattern.index], st.values, st.named, ordered)

    def _value(self, p: ValuePattern | None, v: ir.Value | None, st: _State, d: int) -> Iterator[_State]:
        if p is None:
            if v is None:
                yield st
            else:
                self._fail(d, "expected an absent optional input")
            return
        if v is None:
            self._fail(d, f"input for {p!r} is absent")
            return
        if isinstance(p, Var):
            yield from self._bind(p.name, v, st, d)
        elif isinstance(p, Const):
            arr = const_array(v)
            if arr is None:
                self._fail(d, f"'{v.name}' is not a constant")
                return
            if p.value is not None and (arr.size == 0 or not np.allclose(arr.astype(np.float64), p.value, rtol=0, atol=p.atol)):
                self._fail(d, f"constant '{v.name}' is not {p.value:g}")
                return
            yield from (self._bind(p.name, v, st, d) if p.name else iter([st]))
        elif isinstance(p, NodeOutput):
            producer = v.producer()
            if producer is None:
                self._fail(d, f"'{v.name}' is not produced by {p.node.op_type}")
                return
            if v.index() != p.index:
                self._fail(d, f"'{v.name}' is output {v.index()} of {producer.op_type}, expected {p.index}")
                return
            yield from self._node(p.node, producer, st, d)
        else:  # pragma: no cover - programming error in a rule
            raise TypeError(f"unknown pattern element {p!r}")

    def _bind(self, name: str, v: ir.Value, st: _State, d: int) -> Iterator[_State]:
        bound = st.values.get(name)
        if bound is None:
            yield st.bind_value(name, v)
        elif bound is v:
            yield st
        else:
            self._fail(d, f"'{name}' would bind two different values ('{bound.name}', '{v.name}')")

    def _node(self, p: NodePattern, n: ir.Node, st: _State, d: int) -> Iterator[_State]:
        prior = st.nodes.get(id(p))
        if prior is not None:
            if prior is n:
                yield st
            else:
                self._fail(d, f"{p.op_type} pattern node matched two different nodes")
            return
        if n.op_type != p.op_type or normalize_domain(n.domain) != p.domain:
            self._fail(d, f"expected {p.op_type}, found {n.op_type}")
            return
        if any(m is n for m in st.nodes.values()):
            self._fail(d, f"node {n.name or n.op_type} matched by two pattern nodes")
            return
        for key, spec in p.attrs.items():
            if not attr_matches(spec, attr_value(n, key)):
                self._fail(d + 1, f"{n.op_type} attribute {key}={attr_value(n, key)!r} does not match")
                return
        inputs = list(n.inputs) + [None] * max(0, len(p.inputs) - len(n.inputs))
        extra = inputs[len(p.inputs):]
        if not p.allow_other_inputs and any(x is not None for x in extra):
            self._fail(d + 1, f"{n.op_type} has {len(n.inputs)} inputs, pattern expects {len(p.inputs)}")
            return
        st = st.bind_node(p, n)
        own = inputs[: len(p.inputs)]
        orders = [own, own[::-1]] if p.commutative else [own]
        for order in orders:
            reason = scalar_broadcast_reason(p.inputs, order)
            if reason:
                self._fail(d + 1, f"{n.op_type}: {reason}")
                continue
            yield from self._inputs(p.inputs, order, st, d + 1)

    def _inputs(self, ps: list, vs: list, st: _State, d: int) -> Iterator[_State]:
        if not ps:
            yield st
            return
        for st1 in self._value(ps[0], vs[0], st, d):
            yield from self._inputs(ps[1:], vs[1:], st1, d)
