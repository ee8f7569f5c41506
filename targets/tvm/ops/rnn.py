"""ONNX LSTM / GRU / RNN -> one input-projection matmul + one recurrence kernel (`rnn_kernel.py`).

What this takes is `rnn_lowerable` (targets/lowerable.py); `decompose-rnn{native=1}` (set for CPU
targets) leaves exactly those nodes to it and unrolls the rest. The projection X·Wᵀ of every step
and direction is one [S*B, I] x [I, D*G*H] matmul, which gets the packed matmul schedule; the
biases that simply add to it (Wb + Rb; GRU with linear_before_reset keeps Rb_h apart) are folded
into it, except the quantized LSTM's, which the kernel adds after h·Rᵀ (onnxruntime's order: see
`rnn_kernel._lstm`). Y is produced in layout 0 ([S, D, B, H]) and transposed for layout 1.
"""

from __future__ import annotations

import numpy as np
from tvm import relax

from edgec.passes.control.rnn_plan import GATES, MS, QLSTM, plan
from edgec.targets.lowerable import qlstm_weights, rnn_lowerable
from edgec.targets.tvm.lower_context import const, shape_of
from edgec.targets.tvm.ops import Unsupported, lowers
from edgec.targets.tvm.ops.quant_util import dynamic_qparams, f32, i32, quantize
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


def _quantized_projection(ctx, node, x2, d: int, gh: int, inp: int) -> relax.Expr:
    """X·W of a DynamicQuantizeLSTM as its DynamicQuantizeMatMul products compute it: X of every
    step quantized to uint8 at once, centered, times the centered int8 weights (exact in float32:
    `qlstm_exact`), scaled by x_scale * w_scale per column."""
    x_scale, x_zp = dynamic_qparams(ctx, x2)
    xq = quantize(ctx, x2, x_scale, x_zp, "uint8")
    x_c = f32(ctx, ctx.emit(_R.subtract(i32(ctx, xq), i32(ctx, x_zp))))
    w_c, w_scale = qlstm_weights(node, 1)                       # [D, I, 4H], [D, 4H]
    w = np.ascontiguousarray(w_c.transpose(1, 0, 2).reshape(inp, d * gh).astype(np.float32))
    acc = ctx.emit(_R.matmul(x_c, const(w)))
    return ctx.emit(_R.multiply(acc, ctx.emit(_R.multiply(x_scale, const(w_scale.reshape(d * gh))))))


@lowers("DynamicQuantizeLSTM", domain=MS)
def dynamic_quantize_lstm(ctx, node, xs):
    """com.microsoft DynamicQuantizeLSTM: inputs as LSTM's, then W / R scales and zero points (8-11)."""
    return rnn(ctx, node, xs)


@lowers("LSTM", "GRU", "RNN")
def rnn(ctx, node, xs):
    if not ctx.cpu:
        raise Unsupported("the recurrence kernel is CPU code; for GPU targets decompose-rnn (in the default "
                          "pipeline) unrolls LSTM/GRU/RNN")
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

    quantized = node.op_type == QLSTM
    # projection of every step: [S*B, I] x [I, D*G*H] (+ the biases that add to it)
    x2 = _R.reshape(x, [seq * batch, inp])
    if quantized:
        xw = _quantized_projection(ctx, node, ctx.emit(x2), d, gh, inp)
    else:
        w = ctx.emit(_R.permute_dims(_R.reshape(xs[1], [d * gh, inp]), [1, 0]))
        xw = ctx.emit(_R.matmul(x2, w))
    bias = xs[3] if len(xs) > 3 else None
    rbh = _zeros([d, h])
    gate_bias = _zeros([d, gh])  # the quantized LSTM's Wb + Rb, added after h·Rᵀ as onnxruntime does
    if bias is not None:
        wb = _R.strided_slice(bias, [1], [0], [gh])
        rb = _R.strided_slice(bias, [1], [gh], [2 * gh])
        if p.op == "GRU" and p.lbr:  # Rb_h sits inside r * (...): only its z, r parts add up front
            rbh = ctx.emit(_R.strided_slice(rb, [1], [2 * h], [3 * h]))
            rb = _R.concat([_R.strided_slice(rb, [1], [0], [2 * h]), _zeros([d, h])], axis=1)
        if quantized:
            gate_bias = ctx.emit(_R.add(wb, rb))
        else:
            xw = ctx.emit(_R.add(xw, _R.reshape(_R.add(wb, rb), [d * gh])))
    if quantized:  # R [D, H, 4H] (already K-major), centered; its scales per column
        r_c, r_scale = qlstm_weights(node, 2)
        r_dtype = "int8" if np.abs(r_c).max(initial=0) <= 127 else "int16"
        rt, rs = const(r_c.astype(r_dtype)), const(r_scale)
    else:
        rt = ctx.emit(_R.permute_dims(xs[2], [0, 2, 1]))     # [D, H, G*H]
        rs = const(np.ones((d, gh), np.float32))
    h0 = _state(ctx, xs[5] if len(xs) > 5 else None, d, batch, h, p.layout)

    spec = RecurrenceSpec(p.op, seq, batch, h, tuple(p.reverse), tuple(tuple(a) for a in p.acts), p.lbr,
                          p.op == "LSTM" and len(xs) > 7 and xs[7] is not None, quantized,
                          r_dtype if quantized else F32)
    fn = ctx.bb.add_func(recurrence_kernel(spec), f"edgec_{p.op.lower()}")
    state = relax.TensorType([d, batch, h], F32)
    y_ty = relax.TensorType([seq, d, batch, h], F32)
    work = relax.TensorType([d, batch, work_size(spec)], F32)
    if p.op == "LSTM":
        c0 = _state(ctx, xs[6] if len(xs) > 6 else None, d, batch, h, p.layout)
        peep = xs[7] if spec.peephole else _zeros([d, 3 * h])
        out = ctx.emit(relax.call_tir(fn, [xw, rt, h0, c0, peep, rs, gate_bias], [y_ty, state, state, work]))
        results = [relax.TupleGetItem(out, i) for i in range(3)]
    else:
        args = [xw, rt, h0, rbh] if p.op == "GRU" else [xw, rt, h0]
        out = ctx.emit(relax.call_tir(fn, args, [y_ty, state, work]))
        results = [relax.TupleGetItem(out, i) for i in range(2)]
    if p.layout == 1:  # Y [B, S, D, H], Y_h / Y_c [B, D, H]
        results = [_R.permute_dims(results[0], [2, 0, 1, 3])] + [_R.permute_dims(r, [1, 0, 2]) for r in results[1:]]
    return [ctx.emit(r) for r in results]
