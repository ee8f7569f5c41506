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
from tvm.tirx.op import fma as _fma

# Cephes tanhf.c, |x| <= 0.625: tanh(x) = x + x^3 P(x^2)
_P = (-5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1, -3.33332819422e-1)


def _c(v: float, dt: str):
    return tirx.const(v, dt)


# Cephes expf: e^x = 2^n e^r, n = round(x log2 e), r = x - n ln 2, e^r = 1 + r + r^2 P(r)
_EXP_P = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1)
_EXP_MAX = 88.3762626647949


def exp_poly(v):
    """e^v (float32, as every scalar helper here) as a polynomial that vectorizes (no libm call): a few ulp; the input is
    clamped to +-88.38 (so +-inf gives FLT_MAX-ish / 0 and a NaN becomes a number: callers that must
    keep NaN select it back)."""
    dt = "float32"
    x = tirx.max(tirx.min(v, _c(_EXP_MAX, dt)), _c(-_EXP_MAX, dt))
    n = tirx.floor(x * _c(1.4426950408889634, dt) + _c(0.5, dt))
    r = x - n * _c(0.6931471805599453, dt)
    p = _c(_EXP_P[0], dt)
    for k in _EXP_P[1:]:
        p = p * r + _c(k, dt)
    two_n = tirx.reinterpret(dt, tirx.shift_left(tirx.Cast("int32", n + _c(127.0, dt)), 23))
    return two_n * (p * r * r + r + _c(1.0, dt))


def sigmoid_scalar(v):
    """1 / (1 + e^-v) with `exp_poly`; NaN stays NaN."""
    one = _c(1.0, "float32")
    return tirx.Select(tirx.isnan(v), v, one / (one + exp_poly(-v)))


def tanh_scalar(v):
    """Cephes tanhf (see the module doc) with `exp_poly` for e^2|x|; NaN stays NaN, +-inf gives +-1."""
    dt = "float32"
    z = tirx.abs(v)
    big = _c(1.0, dt) - _c(2.0, dt) / (exp_poly(_c(2.0, dt) * z) + _c(1.0, dt))
    s = v * v
    p = _c(_P[0], dt)
    for k in _P[1:]:
        p = p * s + _c(k, dt)
    small = p * s * v + v
    return tirx.Select(z > _c(0.625, dt), tirx.Select(v < _c(0.0, dt), -big, big), small)


# Eigen's rational approximations of the logistic function and tanh, which onnxruntime's MLAS uses
# (MlasComputeLogistic / MlasComputeTanh; its LSTM kernels call them): odd numerator over even
# denominator in x^2, input clamped to +-18 / +-9, Horner steps fused multiply-adds as its FMA3
# (x86 AVX2) and NEON kernels evaluate them.
_LOGISTIC_P = (4.37031012579801e-11, 1.15627324459942e-07, 6.08574864600143e-05, 8.51377133304701e-03,
               2.48287947061529e-01)
_LOGISTIC_Q = (6.10247389755681e-13, 5.76102136993427e-09, 6.29106785017040e-06, 1.70198817374094e-03,
               1.16817656904453e-01, 9.93151921023180e-01)
_TANH_P = (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
           1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03)
_TANH_Q = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)


def _horner_fma(s, coeffs):
    dt = "float32"
    acc = _fma(s, _c(coeffs[0], dt), _c(coeffs[1], dt))
    for k in coeffs[2:]:
        acc = _fma(s, acc, _c(k, dt))
    return acc


def _rational(v, bound, p, q):
    dt = "float32"
    x = tirx.min(tirx.max(v, _c(-bound, dt)), _c(bound, dt))
    s = x * x
    return x * _horner_fma(s, p) / _horner_fma(s, q)


def sigmoid_rational(v):
    """The logistic function as onnxruntime computes it (to the bit on x86 with FMA): p(x) / q(x) + 0.5,
    at least 0; NaN stays NaN."""
    dt = "float32"
    r = tirx.max(_rational(v, 18.0, _LOGISTIC_P, _LOGISTIC_Q) + _c(0.5, dt), _c(0.0, dt))
    return tirx.Select(tirx.isnan(v), v, r)


def tanh_rational(v):
    """tanh as onnxruntime computes it (to the bit on x86 with FMA); NaN stays NaN."""
    return tirx.Select(tirx.isnan(v), v, _rational(v, 9.0, _TANH_P, _TANH_Q))


def unfused(v):
    """`v` (float32) as computed, never contracted with a following add into a fused multiply-add
    (LLVM contracts a * b + c when it may): an arithmetic fence, which emits no instruction."""
    return tirx.call_llvm_pure_intrin("float32", "llvm.arithmetic.fence", v)


def tanh_accurate(x: te.Tensor) -> te.Tensor:
    return te.compute(x.shape, lambda *i: tanh_scalar(x(*i)), name="tanh")


def gelu_fast(x):
    """(x * (1 + erf(x / sqrt(2)))) * 0.5 with TOPI's vectorizable polynomial erf, in the order torch
    exports GELU (so a huge x overflows to inf as onnxruntime's unfused graph does)."""
    e = topi.fast_erf(te.compute(x.shape, lambda *i: x(*i) / tirx.const(1.4142135623730951, x.dtype), name="gelu_scale"))
    return te.compute(x.shape, lambda *i: (x(*i) * (tirx.const(1.0, x.dtype) + e(*i))) * tirx.const(0.5, x.dtype),
                      name="gelu")


_SQRT_2_OVER_PI = 0.7978845608028654


def gelu_tanh_fast(x):
    """GELU's tanh approximation, (0.5 x) (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), in the order
    GPT-2's export computes it, with `tanh_scalar` (vectorizes: TVM's own legalization calls libm's
    scalar expf per element through topi.tanh). +inf gives inf, -inf NaN (-inf times 0, as the
    unfused graph in onnxruntime), NaN stays NaN."""
    dt = x.dtype

    def f(*i):
        v = x(*i)
        inner = _c(_SQRT_2_OVER_PI, dt) * (v + _c(0.044715, dt) * (v * v * v))
        return (_c(0.5, dt) * v) * (_c(1.0, dt) + tanh_scalar(inner))

    return te.compute(x.shape, f, name="gelu_tanh")


def sigmoid_fast(x):
    """1 / (1 + e^-x) with TOPI's vectorizable polynomial exp; NaN stays NaN (fast_exp clamps its
    input, which would turn a NaN into a number)."""
    e = topi.fast_exp(te.compute(x.shape, lambda *i: -x(*i), name="sigmoid_neg"))
    one = tirx.const(1.0, x.dtype)
    return te.compute(x.shape, lambda *i: tirx.Select(tirx.isnan(x(*i)), x(*i), one / (one + e(*i))),
                      name="sigmoid")
