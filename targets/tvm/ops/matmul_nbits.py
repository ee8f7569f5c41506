"""com.microsoft MatMulNBits (onnxruntime-genai's int4 models, onnxruntime's MatMulNBitsQuantizer,
edgec's quantize-weights): float A times 4- or 8-bit block-quantized constant weights, lowered to
the fused-dequantization kernel of targets/tvm/nbits_matmul.py (float32 arithmetic), or, where
the node allows int8 activations (accuracy_level 4, as onnxruntime reads it) and the target has an
integer dot-product instruction, to the int8 kernel of targets/tvm/nbits_int8.py (A quantized per
block, as onnxruntime's CPU kernel does). Elsewhere accuracy_level 4 runs the float32 kernel: at
least as accurate as asked."""

from __future__ import annotations

import numpy as np
from tvm import relax

from edgec.passes.quantization._nbits import unpack
from edgec.targets.tvm import nbits_int8
from edgec.targets.tvm.lower_context import attr, const, dtype_of, has_input
from edgec.targets.tvm.nbits_matmul import nbits_matmul, repack
from edgec.targets.tvm.ops import Unsupported, lowers
from edgec.targets.tvm.schedules.int8_dot import WEIGHT_TILE_INTRINSICS

_R = relax.op


@lowers("MatMulNBits", domain="com.microsoft")
def ms_matmul_nbits(ctx, node, xs):
    k, n, bits, bs = (int(attr(node, a, d)) for a, d in (("K", 0), ("N", 0), ("bits", 4), ("block_size", 0)))
    if not ctx.cpu:
        raise Unsupported("MatMulNBits runs on CPU targets only (its kernel is scheduled by edgec's CPU rules)")
    if has_input(node, 4):
        raise Unsupported("MatMulNBits with g_idx (act-order) is not supported")
    if bits not in (4, 8):
        raise Unsupported(f"MatMulNBits with bits={bits} (4 and 8 are supported)")
    got = ctx.const_inputs(node, 1, 2, 3)
    if got is None:
        raise Unsupported("MatMulNBits needs constant B, scales and zero_points")
    b, scales, zps = got
    a = xs[0]
    if dtype_of(a) != "float32" or scales.dtype != np.float32:
        raise Unsupported(f"MatMulNBits with A of type {dtype_of(a)} / scales {scales.dtype} (float32 is supported)")
    kb = -(-k // bs) if bs else 0
    if k <= 0 or n <= 0 or bs < 16 or bs & (bs - 1) or scales.size != n * kb:
        raise Unsupported(f"MatMulNBits attributes K={k}, N={n}, block_size={bs} do not match its inputs")
    try:
        q, zp = unpack(b, zps, bits, bs, k, n)
    except ValueError as e:
        raise Unsupported(f"MatMulNBits: {e}") from None
    if int(attr(node, "accuracy_level", 0)) == 4 and ctx.dot in WEIGHT_TILE_INTRINSICS:
        _, lanes, w_dtype = WEIGHT_TILE_INTRINSICS[ctx.dot]
        w, zp_k, s = nbits_int8.repack(q, zp, scales.reshape(n, kb), bits, bs, k, lanes, w_dtype)
        zp_const = zp_k if isinstance(zp_k, int) else None
        args = [a, const(w), const(s)] + ([] if zp_const is not None else [const(zp_k)])
        y = ctx.emit(ctx.bb.call_te(_int8_kernel, *args, n=n, k=k, bits=bits, block_size=bs, w_dtype=w_dtype,
                                    zp_const=zp_const, primfunc_name_hint="nbits_int8"))
    else:
        w, zp_k, s = repack(q, zp, scales.reshape(n, kb), bits, bs, k)
        zp_const = zp_k if isinstance(zp_k, int) else None
        args = [a, const(w), const(s)] + ([] if zp_const is not None else [const(zp_k)])
        y = ctx.emit(ctx.bb.call_te(_float_kernel, *args, k=k, bits=bits, block_size=bs, zp_const=zp_const,
                                    primfunc_name_hint="nbits_matmul"))
    if has_input(node, 5):
        y = _R.add(y, xs[5])
    return y


def _float_kernel(a, w, s, zp=None, **kw):
    return nbits_matmul(a, w, s, zp, **kw)


def _int8_kernel(a, w, s, zp=None, **kw):
    return nbits_int8.nbits_int8(a, w, zp, s, **kw)
