"""State shared by op lowerings while translating edgec IR to a Relax function."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir
from tvm import relax


@dataclass
class LowerContext:
    bb: relax.BlockBuilder
    opset: int
    values: dict[str, relax.Expr] = field(default_factory=dict)
    constants: dict[str, np.ndarray] = field(default_factory=dict)

    def const_array(self, v: ir.Value | None) -> np.ndarray | None:
        """The numpy value of `v` if it is a compile-time constant, else None."""
        if v is None:
            return None
        return self.constants.get(v.name)

    def emit(self, expr: relax.Expr) -> relax.Expr:
        return self.bb.normalize(expr)


def attr(node: ir.Node, name: str, default=None):
    a = node.attributes.get(name)
    if a is None:
        return default
    v = a.value
    if isinstance(v, (list, tuple)):
        return list(v)
    if isinstance(v, ir.TensorProtocol):
        return v.numpy()
    return v
