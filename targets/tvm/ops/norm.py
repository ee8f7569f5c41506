"""Normalizations: LayerNormalization (any axis, Mean/InvStdDev outputs, stash_type),
RMSNormalization, LpNormalization."""

from __future__ import annotations

from tvm import relax

from edgec.targets.tvm.lower_context import attr, const, dtype_of, shape_of
from edgec.targets.tvm.ops import Unsupported, lowers
from edgec.targets.tvm.ops.cast import onnx_dtype

_R = relax.op


def _stash(ctx, node, x):
    """Compute in the stash_type precision (float32 by default), as the ONNX function body does."""
    st = onnx_dtype(attr(node, "stash_type", 1)) or "float32"
    return x if dtype_of(x) == st else ctx.emit(_R.astype(x, st))


def _axes_from(node, rank: int) -> list[int]:
    axis = int(attr(node, "axis", -1))
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis < rank:
        raise Unsupported(f"axis {attr(node, 'axis', -1)} out of range for rank {rank}")
    return list(range(axis, rank))


@lowers("LayerNormalization")
def layer_norm(ctx, node, xs):
    x, scale = xs[0], xs[1]
    bias = xs[2] if len(xs) > 2 else None
    s = shape_of(x)
    if s is None:
        return NotImplemented
    axes = _axes_from(node, len(s))
    eps = float(attr(node, "epsilon", 1e-5))
    dt = dtype_of(x)
    wanted = [o is not None and bool(o.name) for o in node.outputs]
    vec = [s[axes[0]]]  # relax.nn.layer_norm takes gamma/beta of exactly the normalized shape
    params_ok = shape_of(scale) == vec and (bias is None or shape_of(bias) == vec)
    if dt == "float32" and len(axes) == 1 and not any(wanted[1:]) and params_ok:
        b = bias if bias is not None else _R.zeros_like(scale)
        return _R.nn.layer_norm(x, scale, b, axes=axes, epsilon=eps)
    xu = _stash(ctx, node, x)
    sdt = dtype_of(xu)
    mean = ctx.emit(_R.mean(xu, axis=axes, keepdims=True))
    dev = ctx.emit(_R.subtract(xu, mean))
    var = ctx.emit(_R.mean(_R.multiply(dev, dev), axis=axes, keepdims=True))
    std = ctx.emit(_R.sqrt(_R.add(var, const(eps, sdt))))
    norm = ctx.emit(_R.divide(dev, std))
    if sdt != dt:
        norm = ctx.emit(_R.astype(norm, dt))
    y = ctx.emit(_R.multiply(norm, scale))
    if bias is not None:
        y = ctx.emit(_R.add(y, bias))
    inv = ctx.emit(_R.divide(const(1.0, sdt), std))
    return [y, mean, inv]


@lowers("RMSNormalization")
def rms_norm(ctx, node, xs):
    rank = xs[0].ty.ndim
    if rank < 0:
        return NotImplemented
    return rms_normalize(ctx, node, xs[0], xs[1], _axes_from(node, rank))[0]


def rms_normalize(ctx, node, x, scale, axes: list[int]):
    """(X / sqrt(mean(X^2 over axes) + epsilon) * scale, 1 / sqrt(...) kept in the stash type):
    ONNX RMSNormalization and onnxruntime's (Skip)SimplifiedLayerNormalization (ops/ort_norm.py)."""
    eps = float(attr(node, "epsilon", 1e-5))
    dt = dtype_of(x)
    xu = _stash(ctx, node, x)
    sdt = dtype_of(xu)
    ms = ctx.emit(_R.mean(_R.multiply(xu, xu), axis=axes, keepdims=True))
    rms = ctx.emit(_R.sqrt(_R.add(ms, const(eps, sdt))))
    norm = ctx.emit(_R.divide(xu, rms))
    if sdt != dt:
        norm = ctx.emit(_R.astype(norm, dt))
    y = ctx.emit(_R.multiply(norm, scale))
    return y, _R.divide(const(1.0, sdt), rms)


@lowers("LpNormalization")
def lp_norm(ctx, node, xs):
    x = xs[0]
    s = shape_of(x)
    if s is None or not s:
        return NotImplemented
    axis = int(attr(node, "axis", -1))
    axis = axis + len(s) if axis < 0 else axis
    p = int(attr(node, "p", 2))
    dt = dtype_of(x)
    if p == 1:
        n = ctx.emit(_R.sum(_R.abs(x), axis=[axis], keepdims=True))
    elif p == 2:
        n = ctx.emit(_R.sqrt(_R.sum(_R.multiply(x, x), axis=[axis], keepdims=True)))
    else:
        raise Unsupported(f"LpNormalization p={p} (ONNX allows 1 or 2)")
    zero = ctx.emit(_R.equal(n, const(0.0, dt)))
    safe = ctx.emit(_R.where(zero, _R.ones_like(n), n))
    return _R.where(zero, _R.zeros_like(x), _R.divide(x, safe))
