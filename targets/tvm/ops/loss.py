"""Loss ops: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (weights, ignore_index,
reductions none/sum/mean, N-d inputs, optional log_prob output), as onnx's reference computes
them."""

from __future__ import annotations

import numpy as np
from tvm import relax

from edgec.targets.tvm.lower_context import attr, const, dtype_of, shape_of
from edgec.targets.tvm.ops import Unsupported, lowers

_R = relax.op


def _nll(ctx, logp, target, weight, reduction: str, ignore_index, mask_without_weight: bool):
    """-logp[n, target[n, ...], ...] weighted and reduced. `ignore_index` None means none."""
    s, ts = shape_of(logp), shape_of(target)
    if s is None or ts is None or len(s) < 2:
        return NotImplemented
    dt = dtype_of(logp)
    c = s[1]
    t = target if dtype_of(target) == "int64" else ctx.emit(_R.astype(target, "int64"))
    keep = None
    if ignore_index is not None:
        keep = ctx.emit(_R.not_equal(t, const(np.int64(ignore_index))))
        t_safe = ctx.emit(_R.where(keep, t, _R.zeros_like(t)))
    else:
        t_safe = t
    t_safe = ctx.emit(_R.clip(t_safe, 0, c - 1))  # like np.take(mode="clip") in the reference
    picked = ctx.emit(_R.gather_elements(logp, ctx.emit(_R.expand_dims(t_safe, 1)), axis=1))
    loss = ctx.emit(_R.negative(ctx.emit(_R.squeeze(picked, axis=[1]))))
    zero = const(0.0, dt)
    if keep is not None:
        loss = ctx.emit(_R.where(keep, loss, _R.zeros_like(loss)))
    w = None
    if weight is not None:
        w = ctx.emit(_R.take(weight, t_safe, axis=0))
        if keep is not None:
            w = ctx.emit(_R.where(keep, w, _R.zeros_like(w)))
    elif keep is not None and mask_without_weight:
        w = ctx.emit(_R.where(keep, _R.ones_like(loss), _R.zeros_like(loss)))
    if w is not None:
        loss = ctx.emit(_R.multiply(w, loss))
        if reduction == "mean":
            return _R.divide(ctx.emit(_R.sum(loss)), ctx.emit(_R.sum(w)))
    del zero
    if reduction == "mean":
        return _R.mean(loss)
    if reduction == "sum":
        return _R.sum(loss)
    if reduction == "none":
        return loss
    raise Unsupported(f"unknown reduction '{reduction}'")


def _opt(xs, i):
    return xs[i] if len(xs) > i else None


@lowers("NegativeLogLikelihoodLoss")
def nll_loss(ctx, node, xs):
    ii = attr(node, "ignore_index")
    ii = None if ii is None else int(ii)
    red = attr(node, "reduction", "mean")
    red = red.decode() if isinstance(red, bytes) else red
    # onnx's reference averages over all elements when ignore_index == -1 and there is no weight
    return _nll(ctx, xs[0], xs[1], _opt(xs, 2), red, ii, mask_without_weight=ii != -1)


@lowers("SoftmaxCrossEntropyLoss")
def softmax_cross_entropy(ctx, node, xs):
    x = xs[0]
    if shape_of(x) is None:
        return NotImplemented
    ii = attr(node, "ignore_index")
    ii = None if ii is None else int(ii)
    red = attr(node, "reduction", "mean")
    red = red.decode() if isinstance(red, bytes) else red
    logp = ctx.emit(_R.nn.log_softmax(x, axis=1))
    loss = _nll(ctx, logp, xs[1], _opt(xs, 2), red, ii, mask_without_weight=True)
    if loss is NotImplemented:
        return loss
    return [loss, logp]
