"""One TIR kernel for a whole LSTM / GRU / RNN recurrence (after the input projection).

Unrolled, an LSTM over S steps is S x (GEMV + a dozen elementwise ops) tiny kernels; each Relax VM
call, allocation and thread-pool fork costs more than its arithmetic (a 16-step bidirectional LSTM
ran 5.5x onnxruntime). Here the input projection X·Wᵀ + biases of every step is one matmul in the
graph (`ops/rnn.py`), and this kernel runs the time loop: per direction (directions in parallel),
per step, per batch row,

    gates = h_prev · Rᵀ          register-tiled: L gate columns x RB batch rows accumulate over k in
                                 local vectors; Rᵀ is stored [H, G*H] so each k reads contiguous
                                 columns, and a column panel stays in cache across the batch rows
    cell update                  ONNX's formulas, vectorized, polynomial exp (mathfuncs.py)

Buffers (D directions, B batch, H hidden, G gates):
    xw [S*B, D*G*H]  input projection with the biases that add to it
    rt [D, H, G*H]   Rᵀ per direction (the quantized LSTM's centered R as int8 / int16: a quarter /
                     half of the bytes to stream per step, converted to float32 in the GEMV)
    h0 [D, B, H], c0 [D, B, H] (LSTM), peep [D, 3H] (LSTM: i, o, f), rbh [D, H] (GRU Rb_h)
    gb [D, G*H]      the quantized LSTM's Wb + Rb (zeros, unused, for a float LSTM)
    y  [S, D, B, H]  every step's H (ONNX Y with layout 0); yh / yc [D, B, H] final H / C
    work [D, B, G*H] scratch (an output nobody reads; GRU with linear_before_reset=0: [D, B, 4H],
                     r * h_prev at 2H and its product with R_hᵀ at 3H)

The final states live in yh / yc from the start (copied from h0 / c0) and are updated in place, so
the previous H is read from one contiguous row whatever the direction.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from tvm import tirx
from tvm.script import tirx as T

from edgec.targets.tvm.mathfuncs import (
    sigmoid_rational,
    sigmoid_scalar,
    tanh_rational,
    tanh_scalar,
    unfused,
)

F32 = "float32"


def _relu(v):
    return tirx.max(v, tirx.const(0.0, F32))


ACTIVATIONS = {"Sigmoid": sigmoid_scalar, "Tanh": tanh_scalar, "Relu": _relu}
# the quantized LSTM's: onnxruntime's own approximations (see `_lstm`)
QUANTIZED_ACTIVATIONS = {**ACTIVATIONS, "Sigmoid": sigmoid_rational, "Tanh": tanh_rational}


def _lanes(n: int, widest: int) -> int:
    """The widest power of two <= `widest` dividing `n`."""
    lanes = widest
    while n % lanes:
        lanes //= 2
    return lanes


@dataclass(frozen=True)
class RecurrenceSpec:
    op: str                       # LSTM | GRU | RNN
    seq: int
    batch: int
    hidden: int
    reverse: tuple[bool, ...]     # per direction
    acts: tuple[tuple[str, ...], ...]  # per direction, ONNX names
    lbr: bool = False             # GRU linear_before_reset
    peephole: bool = False        # LSTM with P
    quantized: bool = False       # com.microsoft DynamicQuantizeLSTM (see _lstm)
    weights: str = F32            # dtype of rt: int8 / int16 for the quantized LSTM's centered R

    @property
    def gates(self) -> int:
        return {"LSTM": 4, "GRU": 3, "RNN": 1}[self.op]


def _step_index(spec: RecurrenceSpec, d, s):
    """The time index direction `d` processes at its step `s`."""
    last = spec.seq - 1
    rev = spec.reverse
    if all(rev):
        return last - s
    if not any(rev):
        return s
    assert rev == (False, True), rev  # bidirectional: direction 1 runs backwards
    return s + d * (last - 2 * s)


def _act(spec: RecurrenceSpec, d, which: int, v):
    """Activation `which` of direction `d` applied to `v` (directions may differ)."""
    acts = QUANTIZED_ACTIVATIONS if spec.quantized else ACTIVATIONS
    names = {a[which] for a in spec.acts}
    if len(names) == 1:
        return acts[names.pop()](v)
    return tirx.Select(d == 0, acts[spec.acts[0][which]](v), acts[spec.acts[1][which]](v))


def _helpers(spec: RecurrenceSpec):
    """ts(d, s): the time index direction d runs at step s; act(d, which, v): its activation."""
    return functools.partial(_step_index, spec), functools.partial(_act, spec)


def _gemv(spec: RecurrenceSpec):
    """A macro: dst[d, b, dst_off + c] = sum_k src[d, b, src_off + k] * rt[d, k, col0 + c] for the
    `ncols` columns from col0 and every batch row b."""
    B, H = spec.batch, spec.hidden
    L = _lanes(H, 32)                     # H divides every column range used
    RB = 2 if B % 2 == 0 else 1           # batch rows per register tile (2 x 4 vectors on AVX2)

    @T.macro
    def gemv(d, rt, src, src_off, dst, dst_off, col0, ncols):
        for jo, bo in T.grid(ncols // L, B // RB):
            acc = T.alloc_buffer((RB, L), F32, scope="local")
            for bi in T.unroll(RB):
                for ji in T.vectorized(L):
                    acc[bi, ji] = T.float32(0)
            for k in range(H):
                for bi in T.unroll(RB):
                    for ji in T.vectorized(L):
                        acc[bi, ji] = acc[bi, ji] + src[d, bo * RB + bi, src_off + k] * T.Cast(F32, rt[d, k, col0 + jo * L + ji])
            for bi in T.unroll(RB):
                for ji in T.vectorized(L):
                    dst[d, bo * RB + bi, dst_off + jo * L + ji] = acc[bi, ji]

    return gemv


def work_size(spec: RecurrenceSpec) -> int:
    """The last axis of the kernel's scratch output."""
    h = spec.hidden
    return 4 * h if spec.op == "GRU" and not spec.lbr else spec.gates * h + (h if spec.quantized else 0)


def recurrence_kernel(spec: RecurrenceSpec) -> tirx.PrimFunc:
    if spec.op == "LSTM":
        return _lstm(spec)
    if spec.op == "GRU":
        return _gru(spec)
    return _rnn(spec)


def _attrs():
    # opaque and scheduled here: the schedule rules and fusion leave it alone
    return {"tir.noalias": True, "op_pattern": 8, "tirx.is_scheduled": True}


def _lstm(spec: RecurrenceSpec) -> tirx.PrimFunc:
    """The LSTM; `rs` [D, 4H] scales h·Rᵀ per column (ones for a float LSTM).

    Quantized (DynamicQuantizeLSTM, as onnxruntime and `decompose-rnn`'s DynamicQuantizeMatMul
    products compute it): at each step H_prev of the whole batch is quantized to uint8 with
    DynamicQuantizeLinear's parameters (range [min(h, 0), max(h, 0)], scale = range / 255, zero point
    round(clip(-min / scale, 0, 255))), centered (q - zp, exact small integers in float32, kept at
    work[4H:]), multiplied by the centered weights rt (the lowering checks every partial sum is an
    integer below 2^24, so float32 is exact in any order), and scaled by h_scale * rs.

    The rest of the quantized step is onnxruntime's arithmetic, operation for operation: gate input
    (X·W + H·R) + (Wb + Rb) (`gb`), its activations (`sigmoid_rational` / `tanh_rational`, MLAS's),
    C = f * C_prev + i * g with both products rounded (no fused multiply-add). The requantization of
    H at every step makes this recurrence ill-conditioned: an element of H / scale within a few ulps
    of a rounding tie moves by a whole quantization step when H differs by an ulp, and that step
    reaches every gate of the next step through R (tashkeel_rawi_int8: one such element at step 53
    of 64 moved the model's output by 0.022 with edgec's own, more accurate, activations). With the
    same operations the integer products (exact) and everything after them agree with onnxruntime
    to the bit wherever it runs MLAS's FMA kernels (x86 with AVX2 + FMA)."""
    S, B, H, D = spec.seq, spec.batch, spec.hidden, len(spec.reverse)
    GH = 4 * H
    E = _lanes(H, 8)    # cell-update vector width
    peep = spec.peephole
    quant = spec.quantized
    gemv = _gemv(spec)
    W = work_size(spec)
    ts, act = _helpers(spec)

    def pre(xw, work, gb, p, yc, d, b, s, g, j):
        """Gate g's input at hidden index j (the cell state yc feeds the peepholes)."""
        v = xw[ts(d, s) * B + b, d * GH + g * H + j] + work[d, b, g * H + j]
        if peep and g < 3:
            v = v + (unfused(p[d, g * H + j] * yc[d, b, j]) if quant else p[d, g * H + j] * yc[d, b, j])
        return v + gb[d, g * H + j] if quant else v

    def cell(forget, update):
        """f * C_prev + i * g: rounded products then their sum when quantized (as onnxruntime), else
        as LLVM contracts it."""
        return unfused(forget) + unfused(update) if quant else forget + update

    @T.prim_func(private=True)
    def edgec_lstm(xw: T.Buffer((S * B, D * GH), F32), rt: T.Buffer((D, H, GH), spec.weights),
                   h0: T.Buffer((D, B, H), F32), c0: T.Buffer((D, B, H), F32), p: T.Buffer((D, 3 * H), F32),
                   rs: T.Buffer((D, GH), F32), gb: T.Buffer((D, GH), F32),
                   y: T.Buffer((S, D, B, H), F32), yh: T.Buffer((D, B, H), F32), yc: T.Buffer((D, B, H), F32),
                   work: T.Buffer((D, B, W), F32)):
        T.func_attr(_attrs())
        for d in T.parallel(D):
            for b, j in T.grid(B, H):
                yh[d, b, j] = h0[d, b, j]
                yc[d, b, j] = c0[d, b, j]
            for s in range(S):
                hq = T.alloc_buffer((4,), F32, scope="local")  # min, max, scale, zero point of H_prev
                if quant:
                    hq[0] = T.float32(0)
                    hq[1] = T.float32(0)
                    for b, k in T.grid(B, H):
                        hq[0] = T.min(hq[0], yh[d, b, k])
                        hq[1] = T.max(hq[1], yh[d, b, k])
                    hq[2] = T.Select(hq[1] == hq[0], T.float32(1), (hq[1] - hq[0]) / T.float32(255))
                    hq[3] = T.round(T.max(T.min(T.float32(0) - hq[0] / hq[2], T.float32(255)), T.float32(0)))
                    for b, k in T.grid(B, H):
                        work[d, b, GH + k] = T.max(T.min(T.round(yh[d, b, k] / hq[2]) + hq[3], T.float32(255)),
                                                   T.float32(0)) - hq[3]
                    gemv(d, rt, work, GH, work, 0, 0, GH)
                    for b, j in T.grid(B, GH):
                        work[d, b, j] = work[d, b, j] * (hq[2] * rs[d, j])
                else:
                    gemv(d, rt, yh, 0, work, 0, 0, GH)
                for b, jo in T.grid(B, H // E):
                    for ji in T.vectorized(E):
                        # gates i, o, f, c at 0, H, 2H, 3H; peepholes i, o, f
                        yc[d, b, jo * E + ji] = cell(
                            act(d, 0, pre(xw, work, gb, p, yc, d, b, s, 2, jo * E + ji)) * yc[d, b, jo * E + ji],
                            act(d, 0, pre(xw, work, gb, p, yc, d, b, s, 0, jo * E + ji))
                            * act(d, 1, pre(xw, work, gb, p, yc, d, b, s, 3, jo * E + ji)))
                        yh[d, b, jo * E + ji] = (act(d, 0, pre(xw, work, gb, p, yc, d, b, s, 1, jo * E + ji))
                                                 * act(d, 2, yc[d, b, jo * E + ji]))
                        y[ts(d, s), d, b, jo * E + ji] = yh[d, b, jo * E + ji]

    return edgec_lstm


def _gru(spec: RecurrenceSpec) -> tirx.PrimFunc:
    S, B, H, D = spec.seq, spec.batch, spec.hidden, len(spec.reverse)
    GH = 3 * H
    E = _lanes(H, 8)
    lbr = spec.lbr
    # linear_before_reset=0 multiplies r into h before the candidate's product: the GEMV runs over
    # the z, r columns first, then over the candidate's columns with r * h_prev (kept in work[2H:])
    first = GH if lbr else 2 * H
    gemv = _gemv(spec)
    ts, act = _helpers(spec)

    @T.prim_func(private=True)
    def edgec_gru(xw: T.Buffer((S * B, D * GH), F32), rt: T.Buffer((D, H, GH), F32),
                  h0: T.Buffer((D, B, H), F32), rbh: T.Buffer((D, H), F32),
                  y: T.Buffer((S, D, B, H), F32), yh: T.Buffer((D, B, H), F32), work: T.Buffer((D, B, work_size(spec)), F32)):
        T.func_attr(_attrs())
        for d in T.parallel(D):
            for b, j in T.grid(B, H):
                yh[d, b, j] = h0[d, b, j]
            for s in range(S):
                gemv(d, rt, yh, 0, work, 0, 0, first)
                if not lbr:
                    for b, jo in T.grid(B, H // E):
                        for ji in T.vectorized(E):  # r * H_prev
                            work[d, b, 2 * H + jo * E + ji] = act(
                                d, 0, xw[ts(d, s) * B + b, d * GH + H + jo * E + ji] + work[d, b, H + jo * E + ji]
                            ) * yh[d, b, jo * E + ji]
                    gemv(d, rt, work, 2 * H, work, 3 * H, 2 * H, H)
                for b, jo in T.grid(B, H // E):
                    for ji in T.vectorized(E):
                        # candidate n (kept in y), then H = n + z (H_prev - n)
                        if lbr:
                            y[ts(d, s), d, b, jo * E + ji] = act(
                                d, 1, xw[ts(d, s) * B + b, d * GH + 2 * H + jo * E + ji]
                                + act(d, 0, xw[ts(d, s) * B + b, d * GH + H + jo * E + ji] + work[d, b, H + jo * E + ji])
                                * (work[d, b, 2 * H + jo * E + ji] + rbh[d, jo * E + ji]))
                        else:
                            y[ts(d, s), d, b, jo * E + ji] = act(
                                d, 1, xw[ts(d, s) * B + b, d * GH + 2 * H + jo * E + ji] + work[d, b, 3 * H + jo * E + ji])
                        yh[d, b, jo * E + ji] = y[ts(d, s), d, b, jo * E + ji] + act(
                            d, 0, xw[ts(d, s) * B + b, d * GH + jo * E + ji] + work[d, b, jo * E + ji]) * (
                            yh[d, b, jo * E + ji] - y[ts(d, s), d, b, jo * E + ji])
                        y[ts(d, s), d, b, jo * E + ji] = yh[d, b, jo * E + ji]

    return edgec_gru


def _rnn(spec: RecurrenceSpec) -> tirx.PrimFunc:
    S, B, H, D = spec.seq, spec.batch, spec.hidden, len(spec.reverse)
    L = _lanes(H, 8)
    gemv = _gemv(spec)
    ts, act = _helpers(spec)

    @T.prim_func(private=True)
    def edgec_rnn(xw: T.Buffer((S * B, D * H), F32), rt: T.Buffer((D, H, H), F32), h0: T.Buffer((D, B, H), F32),
                  y: T.Buffer((S, D, B, H), F32), yh: T.Buffer((D, B, H), F32), work: T.Buffer((D, B, H), F32)):
        T.func_attr(_attrs())
        for d in T.parallel(D):
            for b, j in T.grid(B, H):
                yh[d, b, j] = h0[d, b, j]
            for s in range(S):
                gemv(d, rt, yh, 0, work, 0, 0, H)
                for b, jo in T.grid(B, H // L):
                    for ji in T.vectorized(L):
                        yh[d, b, jo * L + ji] = act(d, 0, xw[ts(d, s) * B + b, d * H + jo * L + ji] + work[d, b, jo * L + ji])
                        y[ts(d, s), d, b, jo * L + ji] = yh[d, b, jo * L + ji]

    return edgec_rnn
