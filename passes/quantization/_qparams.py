"""Scales and zero points: per-tensor activations from a calibrated range, per-channel weights.

Conventions (as onnxruntime's quantizer and ONNX QuantizeLinear: q = saturate(round(x / s) + zp)):
- asymmetric activations: s = (hi - lo) / (qmax - qmin), zp = round(qmin - lo / s), with lo <= 0 <= hi
  so that 0 is exact;
- symmetric activations: zp = 0 for signed types (s = max|x| / qmax), 128 for uint8 (s = 2 max|x| / 255);
- weights: symmetric per output channel, int8 restricted to [-127, 127]: s_c = max|w_c| / 127, zp 0;
- bias: int32 with s = s_x * s_w (per channel), if it fits.
A scale is never 0 (an all-zero tensor gets 1.0)."""

from __future__ import annotations

import numpy as np

QRANGE = {"uint8": (0, 255), "int8": (-128, 127), "uint16": (0, 65535), "int16": (-32768, 32767)}


def activation_params(lo: float, hi: float, qtype: str, symmetric: bool) -> tuple[np.float32, np.ndarray]:
    qmin, qmax = QRANGE[qtype]
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if symmetric:
        m = max(-lo, hi)
        if qmin == 0:
            scale, zp = 2 * m / (qmax - qmin), (qmax + 1) // 2
        else:
            scale, zp = m / qmax, 0
    else:
        scale = (hi - lo) / (qmax - qmin)
        zp = 0 if scale == 0 else int(np.clip(np.round(qmin - lo / scale), qmin, qmax))
    scale = np.float32(scale)
    if not np.isfinite(scale) or scale <= 0:
        scale, zp = np.float32(1.0), (0 if qmin < 0 else zp if symmetric else 0)
    return scale, np.array(zp, dtype=qtype)


def weight_params(w: np.ndarray, axis: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(int8 weights, float32 scales, int8 zero points): per channel along `axis`, or per tensor."""
    w64 = w.astype(np.float64)
    if axis is None:
        amax = np.array(np.max(np.abs(w64)) if w64.size else 0.0)
        bshape = ()
    else:
        axes = tuple(i for i in range(w.ndim) if i != axis)
        amax = np.max(np.abs(w64), axis=axes) if w64.size else np.zeros(w.shape[axis])
        bshape = tuple(w.shape[axis] if i == axis else 1 for i in range(w.ndim))
    scale = (amax / 127.0).astype(np.float32)
    scale = np.where(scale > 0, scale, np.float32(1.0)).astype(np.float32)
    q = np.clip(np.round(w64 / scale.astype(np.float64).reshape(bshape)), -127, 127).astype(np.int8)
    return q, scale, np.zeros(scale.shape, np.int8)


def bias_params(b: np.ndarray, x_scale: np.float32, w_scale: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(int32 bias, float32 scale = x_scale * w_scale) or None when a value does not fit int32."""
    scale = (np.float32(x_scale) * w_scale.astype(np.float32)).astype(np.float32)
    if np.any(scale <= 0) or not np.all(np.isfinite(scale)):
        return None
    q = np.round(b.astype(np.float64) / scale.astype(np.float64))
    if not np.all(np.abs(q) < 2**31 - 1):
        return None
    return q.astype(np.int32), scale
