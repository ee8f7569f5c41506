"""ONNX LSTM / GRU / RNN -> one input-projection matmul + one recurrence kernel (`rnn_kernel.py`).

What this takes is `rnn_lowerable` (targets/lowerable.py); `decompose-rnn{native=1}` (set for CPU
targets) leaves exactly those nodes to it and unrolls the rest. The projection X·Wᵀ of every step
and direction is one [S*B, I] x [I, D*G*H] matmul, which gets the packed matmul schedule; the
biases that simply add to it (Wb + Rb; GRU with linear_before_reset keeps Rb_h apart) are folded
into it. Y is produced in layout 0 ([S, D, B, H]) and transposed for layout 1.
"""

from __future__ import annotations

import numpy as np
from tvm import relax

from edgec.passes.control.rnn_plan import GATES, plan
from edgec.targets.lowerable import rnn_lowerable
from edgec.targets.tvm.lower_context import const, shape_of
from edgec.targets.tvm.ops import Unsupported, lowers
from edgec.targets.tvm.rnn_kernel import RecurrenceSpec, recurrence_kernel, work_size

_R = relax.op
F32 = "float32"


def _zeros(shape: list[int]) -> relax.Expr:
    return const(np.zeros(shape, np.float32))


def _state(ctx, x, d: int, b: int, h: int, layout: int) -> relax.Expr:
    """An initial state as [D, B, H] (zeros when absent); layout 1 gives it as [B, D, H]."""
    if x is None:
        return _zeros([d, b, h])
    return ctx.emit(_R.permute_dims(x, [1, 0, 2])) if layout == 1 else x


@lowers("LSTM", "GRU", "RNN")
def rnn(ctx, node, xs):
    why = rnn_lowerable(node)
    if why:
        raise Unsupported(why)
    p = plan(node)
    x = xs[0]
    shape = shape_of(x)
    if shape is None:
        raise Unsupported("the shape of X is not static")
    if p.layout == 1:
        x = ctx.emit(_R.permute_dims(x, [1, 0, 2]))
    seq, batch, inp = shape[p.layout], shape[1 - p.layout], shape[2]
    d, h, g = len(p.reverse), p.hidden, GATES[p.op]
    gh = g * h

    # projection of every step: [S*B, I] x [I, D*G*H] (+ the biases that add to it)
    w = ctx.emit(_R.permute_dims(_R.reshape(xs[1], [d * gh, inp]), [1, 0]))
    xw = ctx.emit(_R.matmul(_R.reshape(x, [seq * batch, inp]), w))
    bias = xs[3] if len(xs) > 3 else None
    rbh = _zeros([d, h])
    if bias is not None:
        wb = _R.strided_slice(bias, [1], [0], [gh])
        rb = _R.strided_slice(bias, [1], [gh], [2 * gh])
        if p.op == "GRU" and p.lbr:  # Rb_h sits inside r * (...): only its z, r parts add up front
            rbh = ctx.emit(_R.strided_slice(rb, [1], [2 * h], [3 * h]))
            rb = _R.concat([_R.strided_slice(rb, [1], [0], [2 * h]), _zeros([d, h])], axis=1)
        xw = ctx.emit(_R.add(xw, _R.reshape(_R.add(wb, rb), [d * gh])))
    rt = ctx.emit(_R.permute_dims(xs[2], [0, 2, 1]))     # [D, H, G*H]
    h0 = _state(ctx, xs[5] if len(xs) > 5 else None, d, batch, h, p.layout)

    spec = RecurrenceSpec(p.op, seq, batch, h, tuple(p.reverse), tuple(tuple(a) for a in p.acts), p.lbr,
                          p.op == "LSTM" and len(xs) > 7 and xs[7] is not None)
    fn = ctx.bb.add_func(recurrence_kernel(spec), f"edgec_{p.op.lower()}")
    state = relax.TensorType([d, batch, h], F32)
    y_ty = relax.TensorType([seq, d, batch, h], F32)
    work = relax.TensorType([d, batch, work_size(spec)], F32)
    if p.op == "LSTM":
        c0 = _state(ctx, xs[6] if len(xs) > 6 else None, d, batch, h, p.layout)
        peep = xs[7] if spec.peephole else _zeros([d, 3 * h])
        out = ctx.emit(relax.call_tir(fn, [xw, rt, h0, c0, peep], [y_ty, state, state, work]))
        results = [relax.TupleGetItem(out, i) for i in range(3)]
    else:
        args = [xw, rt, h0, rbh] if p.op == "GRU" else [xw, rt, h0]
        out = ctx.emit(relax.call_tir(fn, args, [y_ty, state, work]))
        results = [relax.TupleGetItem(out, i) for i in range(2)]
    if p.layout == 1:  # Y [B, S, D, H], Y_h / Y_c [B, D, H]
        results = [_R.permute_dims(results[0], [2, 0, 1, 3])] + [_R.permute_dims(r, [1, 0, 2]) for r in results[1:]]
    return [ctx.emit(r) for r in results]
