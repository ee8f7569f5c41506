"""Legalizations of float32 math ops with edgec's vectorizable polynomial functions
(mathfuncs.py, TOPI's fast_exp / fast_erf) instead of TVM's, which call libm's scalar functions per
element (or, for tanh, cancel near 0). Used by layout.legalize_map."""

from __future__ import annotations

from tvm import te, topi

from edgec.targets.tvm.mathfuncs import gelu_fast, gelu_tanh_fast, sigmoid_fast, tanh_accurate


def math_legalizations(vectorized: bool) -> dict:
    """op name -> legalization: the accurate tanh always; with `vectorized` (a CPU target with
    vector lanes) also exp, erf, GELU (both forms), sigmoid and softmax."""
    out = {"relax.tanh": _legalize_tanh}
    if vectorized:
        out["relax.exp"] = _fast("fast_exp")
        out["relax.erf"] = _fast("fast_erf")
        out["relax.nn.gelu"] = _legalize_gelu
        out["relax.nn.gelu_tanh"] = _legalize_gelu_tanh
        out["relax.sigmoid"] = _legalize_sigmoid
        out["relax.nn.softmax"] = _legalize_softmax
    return out


def softmax_fast(x, axis: int):
    """Softmax over the last axis with TOPI's vectorizable polynomial exp (blocks: row max,
    exp(x - max), row sum, divide)."""
    m = topi.max(x, axis=axis)
    e = topi.fast_exp(te.compute(x.shape, lambda *i: x(*i) - m(*i[:-1]), name="softmax_shift"))
    s = topi.sum(e, axis=axis)
    return te.compute(x.shape, lambda *i: e(*i) / s(*i[:-1]), name="softmax_norm")


def _legalize_gelu(bb, call):
    """float32 GELU (erf form) with the polynomial erf: TVM's legalization calls libm's scalar erf
    per element (PP-OCRv6's 1x1 conv + GELU on 64x120x160: 11 ms, of which the conv is ~1 ms)."""
    if str(call.ty.dtype) != "float32":
        from tvm.relax.transform.legalize_ops.nn import _nn_gelu

        return _nn_gelu(bb, call)
    return bb.call_te(gelu_fast, call.args[0], primfunc_name_hint="gelu")


def _legalize_gelu_tanh(bb, call):
    """float32 GELU (tanh form: GPT-2's, recognized by recognize-gelu) with the polynomial tanh: TVM's
    legalization calls libm's scalar expf per element (a decode step's 12 GELUs: ~0.2 ms)."""
    if str(call.ty.dtype) != "float32":
        from tvm.relax.transform.legalize_ops.nn import _nn_gelu_tanh

        return _nn_gelu_tanh(bb, call)
    return bb.call_te(gelu_tanh_fast, call.args[0], primfunc_name_hint="gelu_tanh")


def _legalize_sigmoid(bb, call):
    """float32 sigmoid with the polynomial exp: TVM's calls libm's scalar expf per element (SiLU
    after every YOLOv8 conv)."""
    if str(call.ty.dtype) != "float32":
        from tvm.relax.transform.legalize_ops.common import _call_topi_without_attr

        return _call_topi_without_attr(topi.sigmoid, "tir_sigmoid")(bb, call)
    return bb.call_te(sigmoid_fast, call.args[0], primfunc_name_hint="sigmoid")


def _legalize_softmax(bb, call):
    """float32 softmax: over the last axis as `softmax_fast`; over another axis, between two
    transposes that make it the last (TOPI's strided softmax ran 2.6 ms on YOLOv8's [1, 16, 4,
    2100] DFL softmax over axis 1, the transposes and the row softmax about 0.1 ms)."""
    x = call.args[0]
    nd = x.ty.ndim
    axis = int(call.attrs.axis)
    if str(x.ty.dtype) != "float32" or nd < 1:
        from tvm.relax.transform.legalize_ops.nn import _nn_softmax

        return _nn_softmax(bb, call)
    axis = axis + nd if axis < 0 else axis
    if axis == nd - 1:
        return bb.call_te(softmax_fast, x, axis=nd - 1, primfunc_name_hint="softmax")
    perm = [i for i in range(nd) if i != axis] + [axis]
    inverse = [perm.index(i) for i in range(nd)]
    xt = bb.emit_te(topi.transpose, x, perm, primfunc_name_hint="softmax_in")
    y = bb.emit_te(softmax_fast, xt, axis=nd - 1, primfunc_name_hint="softmax")
    return bb.call_te(topi.transpose, y, inverse, primfunc_name_hint="softmax_out")


def _legalize_tanh(bb, call):
    """float32 tanh accurate near 0 (mathfuncs.py); TVM's own cancels there."""
    if str(call.ty.dtype) != "float32":
        from tvm.relax.transform.legalize_ops.common import _call_topi_without_attr

        return _call_topi_without_attr(topi.tanh)(bb, call)
    return bb.call_te(tanh_accurate, call.args[0], primfunc_name_hint="tanh")


def _fast(name):
    def legalize(bb, call):
        if str(call.ty.dtype) != "float32":
            from tvm.relax.transform.legalize_ops.common import _call_topi_without_attr

            return _call_topi_without_attr(getattr(topi, name[5:]))(bb, call)
        return bb.call_te(getattr(topi, name), call.args[0], primfunc_name_hint=name)

    return legalize
