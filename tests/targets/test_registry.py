"""Every registered target is a valid TVM target, and x86 presets really change instruction selection."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import tvm

from edgec.targets.registry import TARGETS, get_target


@pytest.mark.parametrize("spec", TARGETS, ids=[t.name for t in TARGETS])
def test_target_constructs(spec):
    t = tvm.target.Target(spec.tvm)
    assert t.kind.name == spec.tvm["kind"]
    if "mtriple" in spec.tvm:
        assert str(t.attrs["mtriple"]) == spec.tvm["mtriple"]


def test_target_names_unique():
    names = [t.name for t in TARGETS]
    assert len(names) == len(set(names))


def _vectorized_matmul():
    from tvm import s_tir, te
    a = te.placeholder((64, 128), name="A")
    b = te.placeholder((128, 64), name="B")
    k = te.reduce_axis((0, 128), name="k")
    c = te.compute((64, 64), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="C")
    sch = s_tir.Schedule(te.create_prim_func([a, b, c]))
    blk = sch.get_sblock("C")
    i, j, kk = sch.get_loops(blk)
    jo, ji = sch.split(j, [None, 16])
    sch.reorder(i, jo, kk, ji)
    sch.vectorize(ji)
    sch.decompose_reduction(blk, kk)
    return sch.mod


def _disassemble(mod, target_name, tmp_path) -> str:
    ex = tvm.compile(mod, target=tvm.target.Target(get_target(target_name).tvm))
    lib = tmp_path / f"{target_name}.so"
    ex.export_library(str(lib))
    return subprocess.run(["objdump", "-d", str(lib)], capture_output=True, text=True, check=True).stdout


def test_x86_presets_differ_in_instructions(tmp_path):
    if shutil.which("objdump") is None or shutil.which("g++") is None:
        pytest.skip("needs objdump and g++ (binutils, g++)")
    mod = _vectorized_matmul()
    base = _disassemble(mod, "x86-64", tmp_path)
    avx512 = _disassemble(mod, "x86-64-avx512", tmp_path)
    assert "zmm" not in base and "ymm" in base  # x86-64 preset is AVX2: 256-bit vectors
    assert "zmm" in avx512


@pytest.mark.parametrize("name,cpu,cpu_vm", [
    ("x86-64", True, True), ("armv8", True, True), ("armv7", True, False),
    ("cuda-sm75", False, False), ("opencl-arm", False, False),
])
def test_cpu_and_vm_predicates(name, cpu, cpu_vm):
    """TargetSpec.is_cpu / is_cpu_vm: the one answer to "CPU target?" and "run by the Relax VM?"."""
    spec = get_target(name)
    assert (spec.is_cpu, spec.is_cpu_vm) == (cpu, cpu_vm)
    assert spec.is_cpu == (tvm.target.Target(spec.tvm).kind.name == "llvm")


def _cache_dir(root, entries):
    for name, (level, kind, size) in entries.items():
        d = root / name
        d.mkdir(parents=True)
        (d / "level").write_text(f"{level}\n")
        (d / "type").write_text(f"{kind}\n")
        (d / "size").write_text(f"{size}\n")
    return str(root)


def test_host_cache_sizes_from_sysfs(tmp_path):
    """The level-N data or unified cache of CPU 0 (never the L1 instruction cache); None when sysfs
    has none (the target keeps the conservative default)."""
    from edgec.targets.registry import host_cache_bytes

    full = _cache_dir(tmp_path / "a", {"index0": (1, "Instruction", "32K"), "index1": (1, "Data", "48K"),
                                       "index2": (2, "Unified", "2048K"), "index3": (3, "Unified", "105M")})
    assert host_cache_bytes(2, full) == 2 * 1024 * 1024
    assert host_cache_bytes(1, full) == 48 * 1024
    assert host_cache_bytes(2, _cache_dir(tmp_path / "b", {"index0": (2, "Unified", "1M")})) == 1024 * 1024
    assert host_cache_bytes(2, _cache_dir(tmp_path / "c", {"index0": (1, "Data", "32K")})) is None
    assert host_cache_bytes(1, _cache_dir(tmp_path / "d", {"index0": (1, "Instruction", "32K")})) is None
    assert host_cache_bytes(2, str(tmp_path / "missing")) is None


@pytest.mark.parametrize("l2, tile", [(512 * 1024, (1, 7)), (1024 * 1024, (2, 7)), (2 * 1024 * 1024, (2, 7))])
def test_wide_conv_tile_follows_the_l2_size(l2, tile):
    """ResNet-18's 512 -> 512 3x3 conv on 7x7 (288 KiB of weights per 16-channel block): two blocks
    per register tile when two panels fit the target's L2, one (7 accumulators, bound by loads)
    when they do not."""
    from edgec.targets.tvm.schedules.conv_nchwc import _tile

    assert _tile(32, 7, 32 * 16 * 9 * 16 * 4, 24, l2) == tile


@pytest.mark.parametrize("k, ow, l1d, tile", [
    (3, 56, 48 * 1024, (3, 1, 7)),   # a 3-block 3x3 sweep (27 KiB of weights) fits 2/3 of a 48 KiB L1
    (3, 56, 32 * 1024, None),        # ... not of a 32 KiB one: the rule's 1-block tile (Zen 4 measured it faster)
    (1, 14, 32 * 1024, (3, 1, 7)),   # a pointwise sweep (3 KiB) fits either
    (1, 56, 32 * 1024, (3, 1, 7)),   # 3 x 8 would need 27 registers with its weights
])
def test_odd_block_tile_follows_the_l1_size(k, ow, l1d, tile):
    """ResNet-18's pruned 64 -> 48 3x3 conv (3 blocks of 16 channels) tiles 3 blocks x 7 pixels
    when the inner weight sweep stays in L1 (1.26-1.31x over 1 x 14 on a 48 KiB-L1 Xeon)."""
    from edgec.targets.tvm.schedules.conv_nchwc import _odd_blocks_tile

    got = _odd_blocks_tile(3, ow, ow, panel_bytes=4 * 16 * k * k * 16 * 4, step_bytes=k * k * 16 * 16 * 4,
                           vregs=26, l2=2 * 1024 * 1024, l1d=l1d)
    assert (None if got is None else (got["ot"], got["yt"], got["wt"])) == tile
