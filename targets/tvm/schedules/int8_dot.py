"""Integer dot-product tensor intrinsics: the instructions int8 kernels are tensorized with.

Each intrinsic computes C[i] += sum_k A[k] * B[i, k] (k < 4) for a row of int32 lanes:
- `VNNI_16x4`: x86 `vpdpbusd` on 512-bit registers (AVX-512 VNNI): A is 4 uint8 (broadcast),
  B a 16x4 int8 tile, 16 int32 lanes. TVM's own `dot_16x4_vnni` passes the operands as
  <16 x i32>, which the LLVM 22 inside the wheel refuses (its intrinsic takes <64 x i8>), so this
  one hands over the same bytes as uint8x64/int8x64 (same description, the impl re-typed).
- `SDOT_4x4`: AArch64 `sdot` (armv8.2 dotprod): A 4 int8 (broadcast), B 4x4 int8, 4 int32 lanes
  (TVM's registration). Mixed uint8 x int8 needs i8mm's `usdot`, so uint8 activations are
  shifted to int8 (x - 128) before such a kernel and the shift corrected with 128 * sum(B).

`intrinsic_for(features)` (edgec.targets.dot, no TVM import) says which of them a target can use: building
`sdot` for a CPU without dotprod aborts LLVM (the whole process), so the check is on the target's
declared features, never on a try.
"""

from __future__ import annotations

from tvm.s_tir import TensorIntrin
from tvm.s_tir.tensor_intrin import arm_cpu as _arm  # registers TVM's dot_4x4_i8i8s32_sdot
from tvm.s_tir.tensor_intrin.x86 import dot_product_16x4_u8i8i32_desc
from tvm.script import tirx as T

from edgec.targets.dot import dot_instructions, intrinsic_for  # noqa: F401 - re-exported

VNNI_16x4 = "edgec_dot_16x4_vnni"
SDOT_4x4 = _arm.ARM_DOT_4x4_i8_SDOT_INTRIN


@T.prim_func(s_tir=True)
def _vnni_16x4_impl(
    A: T.Buffer((4,), "uint8", offset_factor=1),
    B: T.Buffer((16, 4), "int8", offset_factor=1),
    C: T.Buffer((16,), "int32", offset_factor=1),
) -> None:
    with T.sblock("root"):
        T.reads(C[0:16], A[0:4], B[0:16, 0:4])
        T.writes(C[0:16])
        a_i32 = T.reinterpret(A.vload([0], "uint8x4"), dtype="int32")
        a_u8x64 = T.reinterpret(T.broadcast(a_i32, 16), dtype="uint8x64")
        b_i8x64 = B.vload([0, 0], dtype="int8x64")
        C[T.ramp(T.int32(0), 1, 16)] = T.call_llvm_pure_intrin(
            T.llvm_lookup_intrinsic_id("llvm.x86.avx512.vpdpbusd.512"),
            C.vload([0], dtype="int32x16"),
            a_u8x64,
            b_i8x64,
            dtype="int32x16",
        )


TensorIntrin.register(VNNI_16x4, dot_product_16x4_u8i8i32_desc, _vnni_16x4_impl, override=True)


# (intrinsic, output lanes, activation dtype the intrinsic reads) per instruction family
INTRINSICS = {
    "vnni": (VNNI_16x4, 16, "uint8"),
    "sdot": (SDOT_4x4, 4, "int8"),
}
