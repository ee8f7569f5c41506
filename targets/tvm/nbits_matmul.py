"""The weight-only quantized matmul kernel (com.microsoft MatMulNBits; edgec's quantize-weights):
float A [..., M, K] times a 4- or 8-bit block-quantized constant W [K, N], with the dequantization
fused into the inner loop, so the float weights are never materialized:

    out[..., m, n] = sum_k A[..., m, k] * (q[n, k] - zp[n, k // bs]) * scale[n, k // bs]

M and the batch dims may be symbolic (one kernel for prefill and decode). Decode (M = 1) is a
matrix-vector product bound by reading the weights: 4-bit weights are 8x fewer bytes than float32.

Weights are repacked at compile time (`repack`) from MatMulNBits' storage into the kernel's: per
output column n, K padded to whole groups of 32 (and of bs); for 4 bits, byte 16*g + l holds
k = 32*g + l in its low nibble and k = 32*g + 16 + l in its high nibble, so that one contiguous
16-byte load gives 16 consecutive k of one nibble (no byte shuffles in the vector loop). Scales
stay float32 [N, kb]; zero points uint8 [N, kb], or one constant when they are all equal
(symmetric quantization).

Blocks (the schedule rule `matmul_nbits` finds them by name): `edgec_nbits_a` (A zero-padded
along K, only when K is not whole groups), `edgec_nbits_part` (16 per-lane partial sums per
output: the reduction is vectorized across lanes of k), `edgec_nbits` (the sum of the 16 lanes).
"""

from __future__ import annotations

import numpy as np
from tvm import te, tirx

NBITS_A = "edgec_nbits_a"
NBITS_PART = "edgec_nbits_part"
NBITS = "edgec_nbits"
LANES = 16  # k per vector step: one nibble of a 16-byte load


def padded_k(k: int, block_size: int) -> int:
    unit = max(block_size, 2 * LANES)
    return -(-k // unit) * unit


def repack(q: np.ndarray, zp: np.ndarray, scale: np.ndarray, bits: int, block_size: int, k: int):
    """Unpacked integers (passes/quantization/_nbits.unpack: q [N, kb*bs], zp [N, kb]) and scales
    -> (weights uint8 [N, Kp*bits/8], zero points uint8 [N, Kp/bs] or an int when all equal,
    scales float32 [N, Kp/bs]) in the kernel's layout."""
    n = q.shape[0]
    kp = padded_k(k, block_size)
    kb = kp // block_size
    full = np.zeros((n, kp), np.uint8)
    full[:, :q.shape[1]] = q[:, :kp]
    s = np.zeros((n, kb), np.float32)
    s[:, :scale.shape[1]] = scale.reshape(n, -1)
    z = np.zeros((n, kb), np.uint8)
    z[:, :zp.shape[1]] = zp
    zp_out = int(zp.flat[0]) if zp.size and np.all(zp == zp.flat[0]) else z
    if bits == 8:
        return full, zp_out, s
    g = full.reshape(n, kp // 32, 2, 16)
    return (g[:, :, 0, :] | (g[:, :, 1, :] << 4)).reshape(n, kp // 2), zp_out, s


def nbits_matmul(a, w, s, zp, k: int, bits: int, block_size: int, zp_const: int | None):
    """te kernel: A float32 [..., M, k] (symbolic leading dims allowed), w / s / zp as `repack`
    returns them (zp None when zp_const is given) -> float32 [..., M, N]."""
    *lead, _ = a.shape
    n = int(w.shape[0])
    kb = int(s.shape[1])
    kp = kb * block_size
    if kp != k:
        def pad(*i):
            return tirx.if_then_else(i[-1] < k, a[(*i[:-1], tirx.min(i[-1], k - 1))], tirx.const(0, "float32"))
        a = te.compute((*lead, kp), pad, name=NBITS_A)
    rb = te.reduce_axis((0, kb), "rb")
    rg = te.reduce_axis((0, block_size // LANES), "rg")

    def part(*i):
        nn, lane = i[-2], i[-1]
        k0 = rb * block_size + rg * LANES  # a multiple of 16: lanes never cross a nibble or block
        if bits == 4:
            byte = w[nn, tirx.floordiv(k0, 2 * LANES) * LANES + lane]
            q = tirx.bitwise_and(tirx.shift_right(byte, (tirx.floormod(tirx.floordiv(k0, LANES), 2) * 4)
                                                  .astype("uint8")), tirx.const(15, "uint8"))
        else:
            q = w[nn, k0 + lane]
        z = tirx.const(float(zp_const), "float32") if zp is None else zp[nn, rb].astype("float32")
        scale = s[nn, rb]
        weight = q.astype("float32") * scale - z * scale
        return te.sum(a[(*i[:-2], k0 + lane)] * weight, axis=[rb, rg])

    p = te.compute((*lead, n, LANES), part, name=NBITS_PART)
    rl = te.reduce_axis((0, LANES), "rl")
    return te.compute((*lead, n), lambda *i: te.sum(p[(*i, rl)], axis=rl), name=NBITS)
