"""MatMulNBits with int8 activations (its accuracy_level 4, as onnxruntime's CPU kernel and
llama.cpp's Q4 x Q8 dot products compute it) on targets with an integer dot-product instruction
(schedules/int8_dot.py: vpdpbusd, sdot).

Per row of A and per block b of `bs` rows of K (the weights' block), A is quantized symmetrically:
sa = max|a| / 127, aq = round(a / sa) in [-127, 127]. With the weights stored as q - c (c = 0, or
128 for 8-bit weights on sdot, whose operands are both signed) and their zero points zp:

    out[m, n] = sum_b sw[n, b] sa[m, b] (sum_{k in b} aq[m, k] (q[n, k] - c) - (zp[n, b] - c) asum[m, b])

where asum[m, b] = sum_{k in b} aq[m, k], computed once per row (not per column). The inner sum is
the dot-product instruction's: vpdpbusd with the weights as its unsigned operand and the int8
activations as its signed one (no shift of either, no correction term), or sdot (int8 x int8).
Per column and block the kernel reads the packed weights, one float scale and, for asymmetric
weights, one uint8 zero point: as many bytes as MatMulNBits' own storage (zero points of 4-bit
weights one byte instead of half of one).

Weights are repacked at compile time (`repack`) into panels of TILES tiles of L columns (L = 16
lanes for VNNI, 4 for sdot): [N / (TILES L), Kp / 4, TILES, L, 4] for 8 bits; for 4 bits two
nibbles per byte, [N / (TILES L), Kp / 8, TILES, L, 4], byte [p, g, t, l, r] holding k = 8g + r
(low nibble) and k = 8g + 4 + r (high nibble) of column (p TILES + t) L + l, so one 64-byte load
gives two tiles' k groups, and a panel streams from memory as one sequential run. Per-column
constants (scales, zero points) are [N / (TILES L), kb, TILES L], contiguous per panel and block.
The schedule rule `matmul_nbits_int8` recognizes the blocks by name.
"""

from __future__ import annotations

import numpy as np
from tvm import te, tirx

from edgec.targets.tvm.nbits_matmul import padded_k

NB8_AMAX = "edgec_nb8_amax"    # max |a| per row and block
NB8_SCALE = "edgec_nb8_scale"  # A's scale per row and block: max |a| / 127 (once, not per column)
NB8_QUANT = "edgec_nb8_quant"  # aq (int8), K padded
NB8_ASUM = "edgec_nb8_asum"    # sum of aq per row and block
NB8_W = "edgec_nb8_w"          # 4-bit weights unpacked to 8-bit tiles (computed per tile, in registers)
NB8_ACC = "edgec_nb8_acc"      # int32 dot products per row, block and column
NB8 = "edgec_nb8"              # the scaled sum over blocks, columns padded to whole panels
NB8_OUT = "edgec_nb8_out"      # the true columns
TILES = 4  # column tiles per panel: streamed together (independent accumulators, A's bytes loaded once)


def weight_center(bits: int, w_dtype: str) -> int:
    """c: what is subtracted from the stored weights so that they fit the intrinsic's operand."""
    return 128 if bits == 8 and w_dtype == "int8" else 0


def repack(q: np.ndarray, zp: np.ndarray, scale: np.ndarray, bits: int, block_size: int, k: int, lanes: int,
           w_dtype: str):
    """Unpacked integers (q uint8 [N, kb*bs], zp uint8 [N, kb]) and scales float32 [N, kb] ->
    (w, zero points uint8 [N/P, kb', P] or an int when all are equal, scales float32 [N/P, kb', P]),
    P = TILES * lanes columns per panel, N padded to whole panels and K to `padded_k` (padding:
    weight c, zero point c, scale 0: a padded row of K meets a zero activation, a padded column has
    scale 0)."""
    n = q.shape[0]
    c = weight_center(bits, w_dtype)
    kp = padded_k(k, block_size)
    kb = kp // block_size
    panel = TILES * lanes
    npad = -(-n // panel) * panel
    full = np.full((npad, kp), c, np.int16)
    full[:n, :min(q.shape[1], kp)] = q[:, :kp]
    zfull = np.full((npad, kb), c, np.uint8)
    zfull[:n, :zp.shape[1]] = zp
    s = np.zeros((npad, kb), np.float32)
    s[:n, :scale.shape[1]] = scale

    def per_panel(x):  # [npad, kb] -> [N/P, kb, P]
        return np.ascontiguousarray(x.reshape(npad // panel, panel, kb).transpose(0, 2, 1))

    z_out = int(zp.flat[0]) if zp.size and np.all(zp == zp.flat[0]) else per_panel(zfull)
    # [N/P, TILES, L, Kp/4, 4] -> [N/P, Kp/4, TILES, L, 4]
    tiles = full.reshape(npad // panel, TILES, lanes, kp // 4, 4).transpose(0, 3, 1, 2, 4)
    if bits == 8:
        w = (tiles - c).astype(w_dtype)
    else:
        w = (tiles[:, 0::2] | (tiles[:, 1::2] << 4)).astype(np.uint8)  # [N/P, Kp/8, TILES, L, 4]
    return np.ascontiguousarray(w), z_out, per_panel(s)


def nbits_int8(a, w, zp, s, n: int, k: int, bits: int, block_size: int, w_dtype: str, zp_const: int | None = None):
    """te kernel: A float32 [..., M, k] (symbolic leading dims allowed) and the `repack` operands
    (zp None when the zero point is the constant `zp_const`) -> float32 [..., M, n]."""
    *lead, _ = a.shape
    npanel, kb, panel = (int(d) for d in s.shape)
    lanes = panel // TILES
    kp = kb * block_size
    c = weight_center(bits, w_dtype)

    def aval(i, kk):
        if kp == k:
            return a[(*i, kk)]
        return tirx.if_then_else(kk < k, a[(*i, tirx.min(kk, k - 1))], tirx.const(0, "float32"))

    r1 = te.reduce_axis((0, block_size), "r1")
    amax = te.compute((*lead, kb), lambda *i: te.max(tirx.abs(aval(i[:-1], i[-1] * block_size + r1)), axis=r1),
                      name=NB8_AMAX)
    scale_a = te.compute((*lead, kb), lambda *i: amax(*i) / tirx.const(127.0, "float32"), name=NB8_SCALE)

    def quant(*i):
        sa = scale_a[(*i[:-1], i[-1] // block_size)]
        inv = tirx.if_then_else(sa > 0, tirx.const(1.0, "float32") / sa, tirx.const(0.0, "float32"))
        v = tirx.nearbyint(aval(i[:-1], i[-1]) * inv).astype("int32")
        return tirx.max(tirx.min(v, 127), -127).astype("int8")

    aq = te.compute((*lead, kp), quant, name=NB8_QUANT)
    r2 = te.reduce_axis((0, block_size), "r2")
    asum = te.compute((*lead, kb), lambda *i: te.sum(aq[(*i[:-1], i[-1] * block_size + r2)].astype("int32"), axis=r2),
                      name=NB8_ASUM)
    if bits == 4:
        def unpack(p, g, t, lane, r):
            byte = w[p, g // 2, t, lane, r]
            return ((byte >> (g % 2 * 4).astype("uint8")) & tirx.const(15, "uint8")).astype(w_dtype)
        wu = te.compute((npanel, kp // 4, TILES, lanes, 4), unpack, name=NB8_W)
    else:
        wu = w
    r3 = te.reduce_axis((0, block_size), "r3")

    def dot(*i):  # [.., b, n]: a tile's L lanes contiguous
        j, kk = i[-1], i[-2] * block_size + r3
        return te.sum(aq[(*i[:-2], kk)].astype("int32")
                      * wu[j // panel, kk // 4, j % panel // lanes, j % lanes, r3 % 4].astype("int32"), axis=r3)

    acc = te.compute((*lead, kb, npanel * panel), dot, name=NB8_ACC)
    rb = te.reduce_axis((0, kb), "rb")

    def total(*i):
        j = i[-1]
        p, col = j // panel, j % panel
        z = tirx.const(zp_const - c, "int32") if zp is None else zp[p, rb, col].astype("int32") - c
        v = acc[(*i[:-1], rb, j)] - z * asum[(*i[:-1], rb)]
        return te.sum(v.astype("float32") * (s[p, rb, col] * scale_a[(*i[:-1], rb)]), axis=rb)

    out = te.compute((*lead, npanel * panel), total, name=NB8)
    if npanel * panel == n:
        return out
    return te.compute((*lead, n), lambda *i: out(*i), name=NB8_OUT)
