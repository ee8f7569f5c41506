"""RewriteRule: `pattern` (what to find), `check` (whether to rewrite), `rewrite` (what instead).

    class ConvRelu(RewriteRule):
        def pattern(self, op, x, w):
            return op.Relu(op.Conv(x, w, _allow_other_inputs=True, _name="conv"))

        def check(self, match):
            return MatchResult.success() if match.const("w") is not None else MatchResult.fail("w not constant")

        def rewrite(self, op, match):
            return op.FusedConv(*match.node("conv").inputs, _domain="edgec", activation="Relu")

`pattern` may return a list of alternative patterns. `rewrite` builds new nodes with a
`RewriteBuilder` and returns the value(s) replacing the pattern's output, or None to decline.
Nothing in the graph changes unless the match, `check` and `rewrite` all succeed.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import onnx_ir as ir

from edgec.rewrite.matcher import Match
from edgec.rewrite.pattern import NodeOutput, PatternBuilder, Var


@dataclass(frozen=True)
class MatchResult:
    ok: bool
    reason: str = ""

    @classmethod
    def success(cls) -> MatchResult:
        return cls(True)

    @classmethod
    def fail(cls, reason: str) -> MatchResult:
        return cls(False, reason)

    def __bool__(self) -> bool:
        return self.ok


class RewriteRule:
    """Subclass and implement `pattern`, optionally `check`, and `rewrite`."""

    name: ClassVar[str] = ""
    min_opset: ClassVar[int | None] = None
    max_opset: ClassVar[int | None] = None
    #: If True, matched nodes other than the root may have consumers outside the match (or be graph
    #: outputs); they are then kept, and only the nodes the rewrite leaves dead are removed.
    shared_intermediates: ClassVar[bool] = False

    def __init__(self) -> None:
        self.patterns: list[NodeOutput] = self._build_patterns()

    @property
    def rule_name(self) -> str:
        return self.name or type(self).__name__

    def pattern(self, op: PatternBuilder, *args: Var) -> NodeOutput | list[NodeOutput]:
        raise NotImplementedError

    def check(self, match: Match) -> MatchResult | bool:
        return MatchResult.success()

    def rewrite(self, op: RewriteBuilder, match: Match) -> ir.Value | Sequence[ir.Value] | None:
        raise NotImplementedError

    def opset_reason(self, opset: int | None) -> str:
        """Why this rule cannot run at the model's default-domain opset ('' if it can)."""
        if opset is None:
            return "model does not import the default ONNX domain"
        if self.min_opset is not None and opset < self.min_opset:
            return f"opset {opset} < min_opset {self.min_opset}"
        if self.max_opset is not None and opset > self.max_opset:
            return f"opset {opset} > max_opset {self.max_opset}"
        return ""

    def _build_patterns(self) -> list[NodeOutput]:
        params = list(inspect.signature(self.pattern).parameters)[1:]
        built = self.pattern(PatternBuilder(), *[Var(p) for p in params])
        patterns = list(built) if isinstance(built, list) else [built]
        for p in patterns:
            if not isinstance(p, NodeOutput):
                raise TypeError(f"rule {self.rule_name}: pattern must return a node output, got {p!r}")
        return patterns


class RewriteBuilder:
    """Builds replacement nodes for one rewrite; `op.Gemm(a, b, c, transB=1)` returns the output value.

    Inputs may be values, numpy arrays or Python numbers (these become new initializers).
    `ir.Attr` keyword values are copied under the keyword's name. Nothing is inserted into the
    graph here: the driver commits `nodes`, `initializers` and `functions` only on success.
    """

    def __init__(self, model: ir.Model, match: Match):
        self.model = model
        self.match = match
        self.nodes: list[ir.Node] = []
        self.initializers: list[ir.Value] = []
        self.functions: list[ir.Function] = []

    def __getattr__(self, op_type: str):
        if op_type.startswith("_"):
            raise AttributeError(op_type)

        def make(*inputs: Any, _domain: str = "", _outputs: int = 1, _overload: str = "", **attrs: Any):
            values = [self._value(x) for x in inputs]
            converted = []
            for k, v in attrs.items():
                if v is None:
                    continue
                if isinstance(v, ir.Attr):
                    converted.append(ir.Attr(k, v.type, v.value))
                else:
                    converted.append(ir.convenience.convert_attribute(k, v))
            node = ir.Node(_domain, op_type, values, converted, num_outputs=_outputs, overload=_overload)
            self.nodes.append(node)
            return node.outputs[0] if _outputs == 1 else tuple(node.outputs)

        return make

    def initializer(self, array: np.ndarray, hint: str = "const") -> ir.Value:
        array = np.asarray(array)
        v = ir.Value(name=hint, shape=ir.Shape(array.shape), type=ir.TensorType(ir.DataType.from_numpy(array.dtype)),
                     const_value=ir.tensor(array, name=hint))
        self.initializers.append(v)
        return v

    def add_function(self, fn: ir.Function) -> None:
        self.functions.append(fn)

    def _value(self, x: Any) -> ir.Value | None:
        if x is None or isinstance(x, ir.Value):
            return x
        if isinstance(x, np.ndarray):
            return self.initializer(x)
        if isinstance(x, (int, float)):
            raise TypeError("pass numbers as numpy arrays with an explicit dtype")
        raise TypeError(f"cannot use {type(x).__name__} as a node input")

    def discard(self) -> None:
        """Detach the nodes built so far from their inputs (the rewrite was declined)."""
        for n in self.nodes:
            for i in range(len(n.inputs)):
                n.replace_input_with(i, None)
        self.nodes.clear()
        self.initializers.clear()
        self.functions.clear()
