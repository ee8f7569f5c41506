"""Elementwise math whose TVM lowering is not accurate enough (tanh) or not fast enough (GELU and
sigmoid: libm's scalar erff/expf per element), as TE computes.

TVM lowers `tanh` on CPUs to (1 - e^-2x) / (1 + e^-2x): for small |x| the numerator cancels, and
the relative error grows as |x| shrinks (tanh(-5.4e-5) came out 1.8e-4 off, so x - tanh(x) had
the wrong sign: the differential fuzzer's seed 30108). `tanh_accurate` is Cephes' tanhf: an odd
minimax polynomial for |x| <= 0.625 (no cancellation; a few ulp), 1 - 2 / (e^2|x| + 1) above
(no cancellation there either: e^2|x| >= 3.49), signed; NaN stays NaN, +-inf gives +-1.
"""

from __future__ import annotations

from tvm import te, tirx, topi

# Cephes tanhf.c, |x| <= 0.625: tanh(x) = x + x^3 P(x^2)
_P = (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1, -3.33332819422e-1)


def tanh_accurate(x: te.Tensor) -> te.Tensor:
    dt = x.dtype

    def c(v: float):
        return tirx.const(v, dt)

    def f(*i):
        v = x(*i)
        z = tirx.abs(v)
        big = c(1.0) - c(2.0) / (tirx.exp(c(2.0) * z) + c(1.0))
        s = v * v
        p = c(_P[0])
        for k in _P[1:]:
            p = p * s + c(k)
        small = p * s * v + v
        return tirx.Select(z > c(0.625), tirx.Select(v < c(0.0), -big, big), small)

    return te.compute(x.shape, f, name="tanh")


def gelu_fast(x):
    """(x * (1 + erf(x / sqrt(2)))) * 0.5 with TOPI's vectorizable polynomial erf, in the order torch
    exports GELU (so a huge x overflows to inf as onnxruntime's unfused graph does)."""
    e = topi.fast_erf(te.compute(x.shape, lambda *i: x(*i) / tirx.const(1.4142135623730951, x.dtype), name="gelu_scale"))
    return te.compute(x.shape, lambda *i: (x(*i) * (tirx.const(1.0, x.dtype) + e(*i))) * tirx.const(0.5, x.dtype),
                      name="gelu")


def sigmoid_fast(x):
    """1 / (1 + e^-x) with TOPI's vectorizable polynomial exp; NaN stays NaN (fast_exp clamps its
    input, which would turn a NaN into a number)."""
    e = topi.fast_exp(te.compute(x.shape, lambda *i: -x(*i), name="sigmoid_neg"))
    one = tirx.const(1.0, x.dtype)
    return te.compute(x.shape, lambda *i: tirx.Select(tirx.isnan(x(*i)), x(*i), one / (one + e(*i))),
                      name="sigmoid")
