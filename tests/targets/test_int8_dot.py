"""The integer dot-product intrinsics: a u8 x s8 matmul tensorized with `vpdpbusd` is exact
(against int64 numpy) and its object code holds the instruction; `intrinsic_for` reads features."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import tvm
from tvm import s_tir, te

from edgec.targets.registry import get_target, missing_host_features
from edgec.targets.tvm.build import tvm_target
from edgec.targets.tvm.schedules import int8_dot as D


def _tensorized_matmul(m: int, n: int, k: int, a_dtype: str, lanes: int, intrin: str):
    """C[m, n] = A[m, k] (a_dtype) x B (int8, packed [n/lanes, k/4, lanes, 4]), inner tile tensorized."""
    a = te.placeholder((m, k), a_dtype, name="A")
    b = te.placeholder((n // lanes, k // 4, lanes, 4), "int8", name="B")
    r = te.reduce_axis((0, k), "k")
    c = te.compute((m, n), lambda i, j: te.sum(
        a[i, r].astype("int32") * b[j // lanes, r // 4, j % lanes, r % 4].astype("int32"), axis=r), name="C")
    sch = s_tir.Schedule(te.create_prim_func([a, b, c]))
    blk = sch.get_sblock("C")
    i, j, kk = sch.get_loops(blk)
    jo, ji = sch.split(j, [None, lanes])
    ko, ki = sch.split(kk, [None, 4])
    sch.reorder(i, jo, ko, ji, ki)
    sch.decompose_reduction(blk, ko)
    sch.tensorize(ji, intrin)
    return sch.mod


def test_vnni_matmul_is_exact_and_uses_vpdpbusd(tmp_path):
    spec = get_target("x86-64-vnni")
    lib = tvm.compile(_tensorized_matmul(32, 48, 64, "uint8", 16, D.VNNI_16x4), target=tvm_target(spec))
    so = tmp_path / "mm.so"
    lib.export_library(str(so))
    asm = subprocess.run(["objdump", "-d", str(so)], capture_output=True, text=True, check=True).stdout
    assert "vpdpbusd" in asm
    if missing_host_features(spec):
        pytest.skip(f"this CPU lacks {missing_host_features(spec)}: compiled and disassembled, not run")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (32, 64)).astype(np.uint8)  # full range: vpmaddubsw would saturate here
    w = rng.integers(-128, 128, (64, 48)).astype(np.int8)
    packed = w.reshape(16, 4, 3, 16).transpose(2, 0, 3, 1).copy()
    out = tvm.runtime.tensor(np.zeros((32, 48), np.int32))
    lib(tvm.runtime.tensor(a), tvm.runtime.tensor(packed), out)
    np.testing.assert_array_equal(out.numpy(), a.astype(np.int64) @ w.astype(np.int64))


def test_sdot_matmul_builds_for_armv8_2_with_sdot(tmp_path):
    from tvm.support import cc

    spec = get_target("armv8.2")
    if shutil.which(spec.cross_compiler) is None:
        pytest.skip(f"needs {spec.cross_compiler} (apt-get install -y $(cat .ci/apt-packages.txt))")
    mod = _tensorized_matmul(8, 16, 32, "int8", 4, D.SDOT_4x4)
    so = tmp_path / "sdot.so"
    tvm.compile(mod, target=tvm_target(spec)).export_library(str(so), fcompile=cc.cross_compiler(spec.cross_compiler))
    asm = subprocess.run(["aarch64-linux-gnu-objdump", "-d", str(so)], capture_output=True, text=True, check=True).stdout
    assert any("\tsdot\t" in line for line in asm.splitlines())


@pytest.mark.parametrize("features,want", [
    (("avx2", "fma", "avx512f", "avx512vnni"), "vnni"), (("avx512_vnni",), "vnni"),
    (("neon", "dotprod"), "sdot"), (("avx2", "fma"), "pmaddwd"), (("neon",), "neon"), (("sse4.2",), None)])
def test_intrinsic_for_reads_features(features, want):
    assert D.intrinsic_for(features) == want
