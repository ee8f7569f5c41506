"""Integer dot-product tensor intrinsics: the instructions int8 kernels are tensorized with.

Each intrinsic computes C[i] += sum_k A[k] * B[i, k] (k < 4) for a row of int32 lanes:
- `VNNI_16x4`: x86 `vpdpbusd` on 512-bit registers (AVX-512 VNNI): A is 4 uint8 (broadcast),
  B a 16x4 int8 tile, 16 int32 lanes. TVM's own `dot_16x4_vnni` passes the operands as
  <16 x i32>, which the LLVM 22 inside the wheel refuses (its intrinsic takes <64 x i8>), so this
  one hands over the same bytes as uint8x64/int8x64 (same description, the impl re-typed).
- `SDOT_4x4`: AArch64 `sdot` (armv8.2 dotprod): A 4 int8 (broadcast), B 4x4 int8, 4 int32 lanes
  Mixed uint8 x int8 needs i8mm's `usdot`, so uint8 activations are
  shifted to int8 (x - 128) before such a kernel and the shift corrected with 128 * sum(B).
- `PMADDWD_8x2`: x86 AVX2 `vpmaddwd` (no VNNI): A 2 int16 (broadcast), B 8x2 int16, 8 int32 lanes
  (uint8 / int8 operands widened to int16; exact, unlike `vpmaddubsw`, which saturates).
- `VNNI_16x4_UB`: `vpdpbusd` with B (the 16x4 tile) as the unsigned operand and A signed: unsigned
  4/8-bit weights times int8 activations (MatMulNBits' int8-activation kernel).
NEON without dotprod ("neon") has no intrinsic: its kernels' vector loops become widening
multiply-accumulates.

`intrinsic_for(features)` (edgec.targets.dot, no TVM import) says which of them a target can use: building
`sdot` for a CPU without dotprod aborts LLVM (the whole process), so the check is on the target's
declared features, never on a try.
"""

from __future__ import annotations

from tvm.s_tir import TensorIntrin
from tvm.script import tirx as T

from edgec.targets.dot import INT8_X4, dot_instructions, intrinsic_for  # noqa: F401 - re-exported

# Our own descriptions and implementations: importing TVM's (tvm.s_tir.tensor_intrin) parses every
# intrinsic of every backend (CUDA's hundreds) and took minutes on a loaded 2-core machine.
VNNI_16x4 = "edgec_dot_16x4_vnni"
VNNI_16x4_UB = "edgec_dot_16x4_vnni_ub"  # the same with uint8 B (weights) and int8 A (activations)
SDOT_4x4 = "edgec_dot_4x4_sdot"
PMADDWD_8x2 = "edgec_dot_8x2_pmaddwd"


def _desc(lanes: int, a_dtype: str, k: int = 4, b_dtype: str = "int8"):
    """C[i] += sum_j int32(A[j]) * int32(B[i, j]), i < lanes, j < k."""

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (k,), a_dtype, offset_factor=1)
        B = T.match_buffer(b, (lanes, k), b_dtype, offset_factor=1)
        C = T.match_buffer(c, (lanes,), "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0:lanes], A[0:k], B[0:lanes, 0:k])
            T.writes(C[0:lanes])
            for i in T.serial(0, lanes):
                for j in T.serial(0, k):
                    with T.sblock("update"):
                        vi, vj = T.axis.remap("SR", [i, j])
                        C[vi] = C[vi] + T.cast(A[vj], "int32") * T.cast(B[vi, vj], "int32")

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


def _impl_vnni_unsigned_b():
    """`vpdpbusd` with the roles swapped: B's 16x4 tile is the unsigned operand, A's 4 int8 (broadcast)
    the signed one, so that unsigned weights (0..15, 0..255) meet signed activations unshifted."""

    @T.prim_func(s_tir=True)
    def impl(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (4,), "int8", offset_factor=1)
        B = T.match_buffer(b, (16, 4), "uint8", offset_factor=1)
        C = T.match_buffer(c, (16,), "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0:16], A[0:4], B[0:16, 0:4])
            T.writes(C[0:16])
            a_i32 = T.reinterpret(A.vload([0], "int8x4"), dtype="int32")
            C[T.ramp(T.int32(0), 1, 16)] = T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id("llvm.x86.avx512.vpdpbusd.512"),
                C.vload([0], dtype="int32x16"),
                B.vload([0, 0], dtype="uint8x64"),
                T.reinterpret(T.broadcast(a_i32, 16), dtype="int8x64"),
                dtype="int32x16",
            )

    return impl


def _impl_pmaddwd():
    """C[0:8] += vpmaddwd(A's 2 int16 broadcast to 8 pairs, B's 8x2 int16 tile): AVX2 `vpmaddwd` sums
    the two int16 x int16 products of each pair into an int32 lane (exact: |products| < 2^30) and
    does not accumulate, so the add is separate (LLVM fuses nothing here: vpmaddwd + vpaddd)."""

    @T.prim_func(s_tir=True)
    def impl(a: T.handle, b: T.handle, c: T.handle) -> None:
        A = T.match_buffer(a, (2,), "int16", offset_factor=1)
        B = T.match_buffer(b, (8, 2), "int16", offset_factor=1)
        C = T.match_buffer(c, (8,), "int32", offset_factor=1)
        with T.sblock("root"):
            T.reads(C[0:8], A[0:2], B[0:8, 0:2])
            T.writes(C[0:8])
            a_i32 = T.reinterpret(A.vload([0], "int16x2"), dtype="int32")
            C[T.ramp(T.int32(0), 1, 8)] = C.vload([0], dtype="int32x8") + T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id("llvm.x86.avx2.pmadd.wd"),
                T.reinterpret(T.broadcast(a_i32, 8), dtype="int16x16"),
                B.vload([0, 0], dtype="int16x16"),
                dtype="int32x8",
            )

    return impl


TensorIntrin.register(VNNI_16x4, _desc(16, "uint8"), _impl(16, "uint8", "llvm.x86.avx512.vpdpbusd.512"),
                      override=True)
TensorIntrin.register(VNNI_16x4_UB, _desc(16, "int8", b_dtype="uint8"), _impl_vnni_unsigned_b(), override=True)
TensorIntrin.register(SDOT_4x4, _desc(4, "int8"), _impl(4, "int8", "llvm.aarch64.neon.sdot.v4i32.v16i8"),
                      override=True)
TensorIntrin.register(PMADDWD_8x2, _desc(8, "int16", 2, "int16"), _impl_pmaddwd(), override=True)


# (intrinsic, output lanes, activation dtype the intrinsic reads) per instruction family; "neon"
# (ARM NEON without dotprod) has no intrinsic: the kernels' vector loops become widening
# multiply-accumulates (int8 x int8 -> int16 products -> int32)
INTRINSICS = {
    "vnni": (VNNI_16x4, 16, "uint8"),
    "sdot": (SDOT_4x4, 4, "int8"),
    "neon": (None, 16, "int8"),
    "pmaddwd": (PMADDWD_8x2, 8, "int16"),
}

# (intrinsic, output lanes, weight dtype) for signed int8 activations times a tile of weights
# (nbits_int8): vpdpbusd reads the weights unsigned, sdot signed
WEIGHT_TILE_INTRINSICS = {
    "vnni": (VNNI_16x4_UB, 16, "uint8"),
    "sdot": (SDOT_4x4, 4, "int8"),
}
