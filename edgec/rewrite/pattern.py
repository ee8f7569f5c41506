"""Pattern graphs for the rewrite engine.

A rule's `pattern(op, x, w, ...)` method builds a small DAG with the `PatternBuilder` `op`:
`op.Relu(op.Conv(x, w, _allow_other_inputs=True))`. Parameters after `op` become `Var`s (match
any value, bound by name; a name used twice must bind the same value). `op.const("s")` matches
a constant (initializer or Constant node) and `op.scalar(0.5)` a constant whose every element is
close to 0.5. Keyword arguments that do not start with `_` constrain attributes: a plain value
must equal the attribute, a callable receives the attribute's Python value (None if absent).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edgec.ir.domains import is_onnx_domain, normalize_domain

COMMUTATIVE_OPS = frozenset({"Add", "Mul", "Max", "Min", "And", "Or", "Xor", "Equal"})


class ValuePattern:
    """Base of the things a pattern input can be."""


@dataclass(eq=False)
class Var(ValuePattern):
    name: str

    def __repr__(self) -> str:
        return self.name


@dataclass(eq=False)
class Const(ValuePattern):
    """A constant tensor; `value` (if given) must match every element within `atol`."""

    name: str | None = None
    value: float | None = None
    atol: float = 1e-6

    def __repr__(self) -> str:
        return f"const({self.name or self.value})"


@dataclass(eq=False)
class NodePattern:
    op_type: str
    domain: str
    inputs: list[ValuePattern | None]
    attrs: dict[str, Any]
    name: str | None = None
    num_outputs: int = 1
    allow_other_inputs: bool = False
    outputs: list[NodeOutput] = field(default_factory=list)

    @property
    def commutative(self) -> bool:
        return is_onnx_domain(self.domain) and self.op_type in COMMUTATIVE_OPS and len(self.inputs) == 2

    def __repr__(self) -> str:
        dom = f"{self.domain}." if self.domain else ""
        return f"{dom}{self.op_type}({', '.join(map(repr, self.inputs))})"


@dataclass(eq=False)
class NodeOutput(ValuePattern):
    node: NodePattern
    index: int = 0

    def __repr__(self) -> str:
        return repr(self.node) if self.index == 0 else f"{self.node!r}[{self.index}]"


def attr_matches(spec: Any, value: Any) -> bool:
    """`spec` is a predicate (callable) or an expected value; `value` is the attribute's Python value."""
    if callable(spec):
        return bool(spec(value))
    if value is None:
        return False
    if isinstance(spec, (list, tuple)):
        return isinstance(value, (list, tuple)) and list(value) == list(spec)
    return value == spec


class PatternBuilder:
    """`op.Conv(x, w)` builds a NodePattern and returns its output (a tuple if `_outputs` > 1)."""

    def __getattr__(self, op_type: str) -> Callable[..., Any]:
        if op_type.startswith("_"):
            raise AttributeError(op_type)

        def make(*inputs: Any, _domain: str = "", _outputs: int = 1, _name: str | None = None,
                 _allow_other_inputs: bool = False, **attrs: Any):
            node = NodePattern(op_type, normalize_domain(_domain), [self._coerce(i) for i in inputs], attrs, _name,
                               _outputs, _allow_other_inputs)
            node.outputs = [NodeOutput(node, i) for i in range(_outputs)]
            return node.outputs[0] if _outputs == 1 else tuple(node.outputs)

        return make

    def const(self, name: str | None = None) -> Const:
        return Const(name)

    def scalar(self, value: float, atol: float = 1e-6, name: str | None = None) -> Const:
        return Const(name, float(value), atol)

    @staticmethod
    def _coerce(x: Any) -> ValuePattern | None:
        if x is None or isinstance(x, ValuePattern):
            return x
        if isinstance(x, (int, float)):
            return Const(None, float(x))
        raise TypeError(f"pattern input must be a pattern value, a number or None, got {type(x).__name__}")
