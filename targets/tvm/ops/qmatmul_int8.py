"""The int8 dot-product path of the quantized matmuls (MatMulInteger, QLinearMatMul, QGemm,
MatMulIntegerToFloat, DynamicQuantizeMatMul): `dot_matmul` returns their int32 accumulator from
the tensorized kernel of targets/tvm/int8_matmul.py, or None when the kernel does not apply; the
caller then takes its generic (exact) path. The kernel applies when the target has a dot-product
instruction (`ctx.dot`), A is uint8/int8 with a static shape of rank >= 2 and a per-tensor zero
point, and B is a constant 2-D matrix whose centered values B - b_zp (b_zp per tensor or per
column, constant) fit int8. Epilogues (requantize, scales, bias) stay Relax ops that fusion puts
after the kernel's reduction."""

from __future__ import annotations

import numpy as np
from tvm import relax

from edgec.targets.tvm.int8_matmul import i8mm, pack_b, shift_for
from edgec.targets.tvm.lower_context import const, dtype_of, has_input, shape_of
from edgec.targets.tvm.ops.quant_util import i32, param_size
from edgec.targets.tvm.schedules.int8_dot import INTRINSICS

_R = relax.op
# instruction families the kernel is enabled for (sdot: armv8.2, 4 lanes, int8 A; neon: no dot
# product, widening multiply-accumulates; both checked under qemu by tests/targets/test_int8_arm.py)
ENABLED = ("vnni", "sdot", "neon", "pmaddwd")


def centered_weight(ctx, node, i_b: int, i_bzp: int, trans_b: bool) -> np.ndarray | None:
    """Constant B - b_zp as int64 [K, N] (B stored [N, K] when `trans_b`), or None when B or its
    zero point is not a compile-time constant, B is not 2-D, or the zero point is not per tensor
    or per column."""
    got = ctx.const_inputs(node, i_b, i_bzp)
    if got is None or got[0] is None or got[0].ndim != 2:
        return None
    b = got[0].astype(np.int64)
    if trans_b:
        b = b.T
    zp = got[1]
    if zp is not None:
        zp = zp.astype(np.int64).reshape(-1)
        if zp.size not in (1, b.shape[1]):
            return None
        b = b - zp[None, :]
    return b


def dot_matmul(ctx, node, xs, a, i_azp: int | None, i_b: int, i_bzp: int, trans_b: bool = False, a_zp=None):
    """int32 (A - a_zp)·(B - b_zp) through the dot-product kernel, or None. A's zero point is input
    `i_azp` of the node (absent: 0) or, when given, the int32 scalar expression `a_zp`."""
    if not ctx.cpu or ctx.dot not in ENABLED:
        return None
    shape = shape_of(a)
    if shape is None or len(shape) < 2 or dtype_of(a) not in ("uint8", "int8"):
        return None
    bc = centered_weight(ctx, node, i_b, i_bzp, trans_b)
    if bc is None or bc.shape[0] != shape[-1] or bc.size == 0 or np.prod(shape) == 0:
        return None
    if bc.min() < -128 or bc.max() > 127:
        return None
    intrin, lanes, a_type = INTRINSICS[ctx.dot]
    if a_zp is None and i_azp is not None and has_input(node, i_azp):
        v = xs[i_azp]
        if param_size(v) != 1:
            return None  # per-row zero points: the generic path
        known = ctx.const_inputs(node, i_azp)
        if known is None or int(known[0].reshape(-1)[0]) != 0:
            a_zp = i32(ctx, ctx.emit(_R.reshape(v, ())) if shape_of(v) else v)
    shift = shift_for(dtype_of(a), a_type)
    zp = a_zp
    if shift:
        zp = relax.const(shift, "int32") if zp is None else ctx.emit(_R.add(zp, relax.const(shift, "int32")))
    wide = a_type == "int16"  # vpmaddwd: int16 pairs
    bp = const(pack_b(bc, lanes, n_inner=intrin is None, group=2 if wide else 4, dtype=np.int16 if wide else np.int8))
    colsum = None if zp is None else const(bc.sum(axis=0).astype(np.int32))
    return ctx.emit(ctx.bb.call_te(i8mm, a, bp, colsum=colsum, zp=zp, n=bc.shape[1], shift=shift, a_type=a_type,
                                   primfunc_name_hint="i8mm"))
