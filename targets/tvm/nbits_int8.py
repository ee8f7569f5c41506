"""MatMulNBits with int8 activations (its accuracy_level 4, as onnxruntime's CPU kernel and
llama.cpp's Q4 x Q8 dot products compute it) on targets with an integer dot-product instruction
(schedules/int8_dot.py: vpdpbusd, sdot).

Per row of A and per block b of `bs` rows of K (the weights' block), A is quantized symmetrically:
sa = max|a| / 127, aq = round(a / sa) in [-127, 127]. With the weights centered at c (8 for 4
bits, 128 for 8 bits) so that they fit int8, and their zero points zp:

    out[m, n] = sum_b sw[n, b] sa[m, b] (sum_{k in b} aq[m, k] (q[n, k] - c) + (c - zp[n, b]) asum[m, b])

where asum[m, b] = sum_{k in b} aq[m, k]. The inner sum is the dot-product instruction's: int8 x
int8 (sdot) or, for vpdpbusd, which reads one operand as uint8, aq + 128 and a correction of
128 * wsum[n, b] (wsum: the centered weights' block sums, a compile-time constant).

Weights are repacked at compile time (`repack`) into the intrinsic's tiles [N/L, Kp/4, L, 4]
(L = 16 lanes for VNNI, 4 for sdot), 8-bit ones as int8 (q - 128), 4-bit ones two nibbles per
byte: byte [t, g, l, r] holds k = 8g + r (low nibble) and k = 8g + 4 + r (high nibble) of column
16t + l (uncentered, 0..15), so one 64-byte load gives two tiles. Per-column constants (scales,
block sums, zero-point terms) are [N/L, kb, L] so that the L lanes read them contiguously.
The schedule rule `matmul_nbits_int8` recognizes the blocks by name.
"""

from __future__ import annotations

import numpy as np
from tvm import te, tirx

from edgec.targets.tvm.nbits_matmul import padded_k

NB8_SCALE = "edgec_nb8_scale"  # max |a| per row and block
NB8_QUANT = "edgec_nb8_quant"  # aq (+ 128 for a uint8 intrinsic operand), K padded
NB8_ASUM = "edgec_nb8_asum"    # sum of aq per row and block (asymmetric weights only)
NB8_W = "edgec_nb8_w"          # 4-bit weights unpacked to int8 tiles (computed per tile, in registers)
NB8_ACC = "edgec_nb8_acc"      # int32 dot products per row, block and column
NB8 = "edgec_nb8"              # the scaled sum over blocks, columns padded to whole tiles
NB8_OUT = "edgec_nb8_out"      # the true columns


def repack(q: np.ndarray, zp: np.ndarray, scale: np.ndarray, bits: int, block_size: int, k: int, lanes: int):
    """Unpacked integers (q uint8 [N, kb*bs], zp uint8 [N, kb]) and scales float32 [N, kb] ->
    (w, wsum int32 [N/L, kb', L], zero-point term int32 [N/L, kb', L] or None when every zp = c,
    scales float32 [N/L, kb', L]), N padded to whole tiles and K to `padded_k` (padding: weight c,
    scale 0)."""
    n = q.shape[0]
    c = 8 if bits == 4 else 128
    kp = padded_k(k, block_size)
    kb = kp // block_size
    npad = -(-n // lanes) * lanes
    full = np.full((npad, kp), c, np.int16)
    full[:n, :min(q.shape[1], kp)] = q[:, :kp]
    zfull = np.full((npad, kb), c, np.int32)
    zfull[:n, :zp.shape[1]] = zp
    s = np.zeros((npad, kb), np.float32)
    s[:n, :scale.shape[1]] = scale

    def per_tile(x):  # [npad, kb] -> [N/L, kb, L]
        return np.ascontiguousarray(x.reshape(npad // lanes, lanes, kb).transpose(0, 2, 1))

    wsum = (full - c).reshape(npad, kb, block_size).sum(axis=2).astype(np.int32)
    zterm = None if np.all(zfull == c) else per_tile((c - zfull).astype(np.int32))
    tiles = full.reshape(npad // lanes, lanes, kp // 4, 4).transpose(0, 2, 1, 3)  # [N/L, Kp/4, L, 4]
    if bits == 8:
        w = (tiles - c).astype(np.int8)
    else:
        w = (tiles[:, 0::2] | (tiles[:, 1::2] << 4)).astype(np.uint8)  # [N/L, Kp/8, L, 4]
    return np.ascontiguousarray(w), per_tile(wsum), zterm, per_tile(s)


def nbits_int8(a, w, wsum, zterm, s, n: int, k: int, bits: int, block_size: int, a_type: str):
    """te kernel: A float32 [..., M, k] (symbolic leading dims allowed) and the `repack` operands
    (zterm None for symmetric weights) -> float32 [..., M, n]."""
    *lead, _ = a.shape
    nl, kb, lanes = (int(d) for d in s.shape)
    kp = kb * block_size
    shift = 128 if a_type == "uint8" else 0

    def aval(i, kk):
        if kp == k:
            return a[(*i, kk)]
        return tirx.if_then_else(kk < k, a[(*i, tirx.min(kk, k - 1))], tirx.const(0, "float32"))

    r1 = te.reduce_axis((0, block_size), "r1")
    amax = te.compute((*lead, kb), lambda *i: te.max(tirx.abs(aval(i[:-1], i[-1] * block_size + r1)), axis=r1),
                      name=NB8_SCALE)

    def quant(*i):
        sa = amax[(*i[:-1], i[-1] // block_size)] / tirx.const(127.0, "float32")
        inv = tirx.if_then_else(sa > 0, tirx.const(1.0, "float32") / sa, tirx.const(0.0, "float32"))
        v = tirx.nearbyint(aval(i[:-1], i[-1]) * inv).astype("int32")
        return (tirx.max(tirx.min(v, 127), -127) + shift).astype(a_type)

    aq = te.compute((*lead, kp), quant, name=NB8_QUANT)
    asum = None
    if zterm is not None:
        r2 = te.reduce_axis((0, block_size), "r2")
        asum = te.compute((*lead, kb), lambda *i: te.sum(
            aq[(*i[:-1], i[-1] * block_size + r2)].astype("int32") - shift, axis=r2), name=NB8_ASUM)
    if bits == 4:
        def unpack(t, g, lane, r):
            byte = w[t, g // 2, lane, r]
            return ((byte >> (g % 2 * 4).astype("uint8")) & tirx.const(15, "uint8")).astype("int8") - tirx.const(8, "int8")
        wu = te.compute((nl, kp // 4, lanes, 4), unpack, name=NB8_W)
    else:
        wu = w
    r3 = te.reduce_axis((0, block_size), "r3")
    acc = te.compute((*lead, kb, nl * lanes), lambda *i: te.sum(  # [.., b, n]: a tile's L lanes contiguous
        aq[(*i[:-2], i[-2] * block_size + r3)].astype("int32")
        * wu[i[-1] // lanes, (i[-2] * block_size + r3) // 4, i[-1] % lanes, r3 % 4].astype("int32"), axis=r3),
        name=NB8_ACC)
    rb = te.reduce_axis((0, kb), "rb")

    def total(*i):
        j = i[-1]
        t, lane = j // lanes, j % lanes
        v = acc[(*i[:-1], rb, j)] - shift * wsum[t, rb, lane]
        if zterm is not None:
            v = v + zterm[t, rb, lane] * asum[(*i[:-1], rb)]
        sa = amax[(*i[:-1], rb)] / tirx.const(127.0, "float32")
        return te.sum(v.astype("float32") * (s[t, rb, lane] * sa), axis=rb)

    out = te.compute((*lead, nl * lanes), total, name=NB8)
    if nl * lanes == n:
        return out
    return te.compute((*lead, n), lambda *i: out(*i), name=NB8_OUT)
