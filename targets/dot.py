"""Which integer dot-product instructions a target has ("vnni", "sdot", "neon": NEON without a dot
product, whose int8 kernels use widening multiply-accumulates; "pmaddwd": AVX2, int16 pairs; or
None), from its declared
features: what the int8 kernels (targets/tvm/schedules/int8_dot.py) are built with, and whether
the default pipeline fuses QDQ regions into integer ops (edgec/pipelines.py). No TVM import."""

from __future__ import annotations

# the families whose intrinsic reads 8-bit tiles of 4 k's (kernels written for that tile only:
# nbits_int8, MatMulNBits with int8 activations)
INT8_X4 = frozenset({"vnni", "sdot"})


def intrinsic_for(features) -> str | None:
    """'vnni' / 'sdot' / 'neon' / 'pmaddwd' (AVX2 without VNNI) / None: the dot-product instruction a
    target with these features has."""
    fs = {str(f).lstrip("+").replace("_", "").lower() for f in features}
    if "avx512vnni" in fs:
        return "vnni"
    if "dotprod" in fs:
        return "sdot"
    if "neon" in fs:
        return "neon"
    if "avx2" in fs:
        return "pmaddwd"
    return None


def dot_instructions(spec) -> str | None:
    """`intrinsic_for` a TargetSpec: its declared features and its LLVM `mattr` (CPU targets only)."""
    if not spec.is_cpu:
        return None
    return intrinsic_for([*spec.features, *spec.tvm.get("mattr", [])])
