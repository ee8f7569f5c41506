"""Integer dot-product tensor intrinsics: the instructions int8 kernels are tensorized with.

Each intrinsic computes C[i] += sum_k A[k] * B[i, k] (k < 4) for a row of int32 lanes:
- `VNNI_16x4`: x86 `vpdpbusd` on 512-bit registers (AVX-512 VNNI): A is 4 uint8 (broadcast),
  B a 16x4 int8 tile, 16 int32 lanes. TVM's own `dot_16x4_vnni` passes the operands as
  <16 x i32>, which the LLVM 22 inside the wheel refuses (its intrinsic takes <64 x i8>), so this
  one hands over the same bytes as uint8x64/int8x64 (same description, the impl re-typed).
- `SDOT_4x4`: AArch64 `sdot` (armv8.2 dotprod): A 4 int8 (broadcast), B 4x4 int8, 4 int32 lanes
  Mixed uint8 x int8 needs i8mm's `usdot`, so uint8 activations are
  shifted to int8 (x - 128) before such a kernel and the shift corrected with 128 * sum(B).

`intrinsic_for(features)` (edgec.targets.dot, no TVM import) says which of them a target can use: building
`sdot` for a CPU without dotprod aborts LLVM (the whole process), so the check is on the target's
declared features, never on a try.
"""

from __future__ import annotations

from tvm.s_tir import TensorIntrin
from tvm.script import tirx as T

from edgec.targets.dot import dot_instructions, intrinsic_for  # noqa: F401 - re-exported

# Our own descriptions and implementations: importing TVM's (tvm.s_tir.tensor_intrin) parses every
# intrinsic of every backend (CUDA's hundreds) and took minutes on a loaded 2-core machine.
VNNI_16x4 = "edgec_dot_16x4_vnni"
SDOT_4x4 = "edgec_dot_4x4_sdot"


def _desc(lanes: int, a_dtype: str):
    """C[i] += sum_k int32(A[k]) * int32(B[i, k]), i < lanes, k < 4."""

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (4,), a_dtype, offset_factor=1)
        B = T.match_buffer(b, (lanes, 4), "int8", offset_factor=1)
        C = T.match_buffer(c, (lanes,), "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0:lanes], A[0:4], B[0:lanes, 0:4])
            T.writes(C[0:lanes])
            for i in T.serial(0, lanes):
                for k in T.serial(0, 4):
                    with T.sblock("update"):
                        vi, vk = T.axis.remap("SR", [i, k])
                        C[vi] = C[vi] + T.cast(A[vk], "int32") * T.cast(B[vi, vk], "int32")

    return desc


def _impl(lanes: int, a_dtype: str, llvm_name: str):
    """The same with one instruction: A's 4 bytes broadcast to every lane group, B's tile as one
    vector of int8 (LLVM 22's vpdpbusd/sdot take <N x i8> operands)."""
    a4, ab, bb, cc = f"{a_dtype}x4", f"{a_dtype}x{4 * lanes}", f"int8x{4 * lanes}", f"int32x{lanes}"

    @T.prim_func(s_tir=True)
    def impl(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (4,), a_dtype, offset_factor=1)
        B = T.match_buffer(b, (lanes, 4), "int8", offset_factor=1)
        C = T.match_buffer(c, (lanes,), "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0:lanes], A[0:4], B[0:lanes, 0:4])
            T.writes(C[0:lanes])
            a_i32 = T.reinterpret(A.vload([0], a4), dtype="int32")
            C[T.ramp(T.int32(0), 1, lanes)] = T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id(llvm_name),
                C.vload([0], dtype=cc),
                T.reinterpret(T.broadcast(a_i32, lanes), dtype=ab),
                B.vload([0, 0], dtype=bb),
                dtype=cc,
            )

    return impl


TensorIntrin.register(VNNI_16x4, _desc(16, "uint8"), _impl(16, "uint8", "llvm.x86.avx512.vpdpbusd.512"),
                      override=True)
TensorIntrin.register(SDOT_4x4, _desc(4, "int8"), _impl(4, "int8", "llvm.aarch64.neon.sdot.v4i32.v16i8"),
                      override=True)


# (intrinsic, output lanes, activation dtype the intrinsic reads) per instruction family; "neon"
# (ARM NEON without dotprod) has no intrinsic: the kernels' vector loops become widening
# multiply-accumulates (int8 x int8 -> int16 products -> int32)
INTRINSICS = {
    "vnni": (VNNI_16x4, 16, "uint8"),
    "sdot": (SDOT_4x4, 4, "int8"),
    "neon": (None, 16, "int8"),
}
