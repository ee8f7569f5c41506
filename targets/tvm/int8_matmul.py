"""The int8 matmul kernel for targets with an integer dot-product instruction (schedules/int8_dot.py).

Computes, exactly in int32 (wrapping as int32 arithmetic does),
    out[..., m, n] = sum_k (A[..., m, k] - a_zp) * Bc[k, n]
for A uint8 or int8 [..., M, K] (static shape), a per-tensor zero point a_zp (a run-time int32
scalar, e.g. DynamicQuantizeLinear's) and a constant Bc whose values fit int8 (B - b_zp, folded at
compile time). Bc is packed as [N/L, K/4, L, 4] (zero-padded to whole tiles: L = 16 int32 lanes for
VNNI, 4 for sdot) so that one tensorized step reads one contiguous L x 4 tile; without a dot
product (NEON, "neon") as [N/16, K/4, 4, 16]: per k, 16 columns' weights as one int8 vector, which
the broadcast A value multiplies with widening multiply-accumulates.

The dot-product instructions read A as one type (VNNI: uint8, sdot: int8): an A of the other type
is shifted by 128 (the `edgec_i8mm_a` block, which also zero-pads K to a multiple of 4) and the
shift is corrected with the zero point: out = acc - (a_zp + shift) * colsum(Bc) (`edgec_i8mm_out`,
which also slices the padded columns off). The schedule rule `matmul_int8` recognizes the blocks
by name.
"""

from __future__ import annotations

import numpy as np
from tvm import te, tirx

I8MM = "edgec_i8mm"          # acc[..., m, n] over the padded K and N
I8MM_A = "edgec_i8mm_a"      # A shifted to the intrinsic's type and zero-padded along K
I8MM_OUT = "edgec_i8mm_out"  # acc - zp * colsum, over the true N


def _ceil(a: int, b: int) -> int:
    return -(-a // b) * b


def pack_b(bc: np.ndarray, lanes: int, n_inner: bool = False, group: int = 4, dtype=np.int8) -> np.ndarray:
    """Bc [K, N] (int8 values) -> [ceil(N/lanes), ceil(K/g), lanes, g] of `dtype` (g = `group` k's
    per int32 lane: 4 for vpdpbusd/sdot, 2 for vpmaddwd's int16 pairs; `n_inner`: [..., g, lanes]),
    zero-padded."""
    k, n = bc.shape
    kg, nl = _ceil(k, group), _ceil(n, lanes)
    p = np.zeros((kg, nl), dtype)
    p[:k, :n] = bc
    t = p.reshape(kg // group, group, nl // lanes, lanes)
    return np.ascontiguousarray(t.transpose(2, 0, 1, 3) if n_inner else t.transpose(2, 0, 3, 1))


def packed_lanes(shape) -> tuple[int, bool, int]:
    """(lanes, n_inner, group) of a packed B's shape: dot-product tiles end in the g k's of a step
    ([.., L, g], g = 4 or 2), the widening layout in the 16 columns ([.., 4, 16])."""
    a, b = (int(d) for d in shape[-2:])
    return (b, True, a) if b == 16 and a == 4 else (a, False, b)


def shift_for(a_dtype: str, intrinsic_dtype: str) -> int:
    """What A is shifted by to become the intrinsic's activation type."""
    if a_dtype == intrinsic_dtype or intrinsic_dtype == "int16":  # int16 holds uint8 and int8 as they are
        return 0
    return 128 if intrinsic_dtype == "uint8" else -128


def i8mm(a, bp, colsum, zp, n: int, shift: int, a_type: str):
    """te kernel: A [..., M, K], bp packed B, colsum int32 [N] (or None with zp None), zp int32
    scalar tensor (or None: no correction) -> int32 [..., M, n]."""
    *batch, m, k = (int(d) for d in a.shape)
    nj, kq = (int(d) for d in bp.shape[:2])
    lanes, n_inner, g = packed_lanes(bp.shape)
    k4 = kq * g
    nb = len(batch)
    if k4 != k or shift or str(a.dtype) != a_type:
        def prep(*i):
            v = a[(*i[:-1], tirx.min(i[-1], k - 1))].astype("int32") + shift
            return tirx.if_then_else(i[-1] < k, v, 0).astype(a_type)
        a = te.compute((*batch, m, k4), prep, name=I8MM_A)
    rk = te.reduce_axis((0, k4), "k")
    acc = te.compute(
        (*batch, m, nj * lanes),
        lambda *i: te.sum(a[(*i[:nb], i[nb], rk)].astype("int32")
                          * (bp[i[nb + 1] // lanes, rk // g, rk % g, i[nb + 1] % lanes] if n_inner
                             else bp[i[nb + 1] // lanes, rk // g, i[nb + 1] % lanes, rk % g]).astype("int32"), axis=rk),
        name=I8MM)
    if zp is None and nj * lanes == n:
        return acc
    if zp is None:
        return te.compute((*batch, m, n), lambda *i: acc(*i), name=I8MM_OUT)
    return te.compute((*batch, m, n), lambda *i: acc(*i) - zp() * colsum[i[-1]], name=I8MM_OUT)
