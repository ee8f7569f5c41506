"""div-to-mul: x / c -> x * (1/c) for a constant float divisor c (a single-file plugin).

A division costs several times a multiplication on every CPU (x86 `divps` vs `mulps`, ARM NEON
has no vector divide in armv7), and the backend cannot rewrite a division by a constant tensor
itself: the constant is only a parameter when the code is generated. By default only divisors
whose every element is a power of two are taken: then 1/c is exact and x * (1/c) equals x / c
bit for bit (both are the one correctly rounded value of the same real number). With
`allow_rounding=true` any finite non-zero divisor is taken; results may then differ from the
division by about one unit in the last place.

Use: edgec compile model.onnx -o out --plugin examples/plugins/div_to_mul.py --passes ...,div-to-mul
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from edgec.infra.pass_base import Pass, PassResult, register_pass
from edgec.ir.domains import is_onnx_domain
from edgec.rewrite import const_array


def reciprocal(c: np.ndarray, allow_rounding: bool) -> np.ndarray | None:
    """1/c in c's dtype, or None when the rewrite would not be safe (see the module doc)."""
    if c.dtype.kind != "f" or c.size == 0 or not np.all(np.isfinite(c)) or np.any(c == 0):
        return None
    with np.errstate(over="ignore", under="ignore"):
        r = (1.0 / c.astype(np.float64)).astype(c.dtype)
    if not np.all(np.isfinite(r)) or np.any(r == 0):
        return None  # 1/c overflows or underflows in c's dtype
    if not allow_rounding:
        mantissa_c, _ = np.frexp(c.astype(np.float64))
        mantissa_r, _ = np.frexp(r.astype(np.float64))
        if not (np.all(np.abs(mantissa_c) == 0.5) and np.all(np.abs(mantissa_r) == 0.5)):
            return None  # not a power of two: 1/c is rounded
    return r


@register_pass
class DivToMul(Pass):
    """Replace x / c (constant float c) by x * (1/c); only exact cases unless allow_rounding=true."""

    name = "div-to-mul"
    options = {"allow_rounding": False}

    def run(self, model: ir.Model, ctx) -> PassResult:
        graph = model.graph
        changed = False
        for node in list(graph):  # the main graph only: Div in If/Loop bodies is left alone
            if node.op_type != "Div" or not is_onnx_domain(node.domain) or len(node.inputs) != 2:
                continue
            x, divisor = node.inputs
            c = const_array(divisor)
            if x is None or c is None or (x.dtype is not None and x.dtype.numpy() != c.dtype):
                continue
            r = reciprocal(c, self.opts["allow_rounding"])
            if r is None:
                continue
            name = f"{divisor.name or 'divisor'}_reciprocal"
            while name in graph.initializers:
                name += "_"
            value = ir.Value(name=name, shape=ir.Shape(r.shape),
                             type=ir.TensorType(ir.DataType.from_numpy(r.dtype)), const_value=ir.tensor(r, name=name))
            graph.register_initializer(value)
            node.op_type = "Mul"  # same inputs, broadcasting and output: names and graph outputs stay
            node.replace_input_with(1, value)
            changed = True
        return PassResult(model, changed)
