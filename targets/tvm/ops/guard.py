"""edgec.AssertEqual: the runtime guard of a shape specialization (`specialize-shape-inputs`).

Y is the compile-time constant `Expected`, so consumers see a constant; the lowering adds a
Relax `assert_op` (emitted by `lower_model` after the dataflow block) that raises, naming the
file, node and op from the `message` attribute, when X differs from Expected at run time.
"""

from __future__ import annotations

import numpy as np
from tvm import relax

from edgec.errors import GUARD_PREFIX, ModelValidationError
from edgec.ir.edgec_ops import EDGEC_DOMAIN
from edgec.targets.tvm.lower_context import attr, const, dtype_of, shape_of
from edgec.targets.tvm.ops import Unsupported, lowers

_R = relax.op


def _message(node) -> str:
    m = attr(node, "message", "") or f"node '{node.name}' (edgec.AssertEqual)"
    return m.decode() if isinstance(m, bytes) else m


@lowers("AssertEqual", domain=EDGEC_DOMAIN)
def assert_equal(ctx, node, xs):
    c = ctx.const_inputs(node, 1)
    if c is None or c[0] is None:
        raise Unsupported("edgec.AssertEqual needs a constant Expected input")
    expected = np.asarray(c[0])
    msg = _message(node)
    known = ctx.const_array(node.inputs[0])
    if known is not None:  # checked at compile time
        if known.shape != expected.shape or not np.array_equal(known, expected):
            raise ModelValidationError(f"{msg}: value {known.tolist()} differs from {expected.tolist()}")
        return ctx.constant(node, expected)
    x = xs[0]
    if shape_of(x) != list(expected.shape) or dtype_of(x) != str(expected.dtype):
        raise ModelValidationError(f"{msg}: runtime value {dtype_of(x)}{shape_of(x)} cannot equal "
                                   f"{expected.dtype}{list(expected.shape)}")
    if expected.size:
        bad = ctx.emit(_R.astype(_R.not_equal(x, const(expected)), "int64"))
        ok = ctx.emit(_R.equal(_R.sum(bad), const(np.int64(0))))
        ctx.guard(ok, f"{GUARD_PREFIX}{msg}: the runtime value differs from the compiled {expected.tolist()}")
    return ctx.constant(node, expected)
