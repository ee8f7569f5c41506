"""Every CUDA preset compiles: TVM's generated CUDA source becomes a cubin for the preset's SM
architecture and PTX for its compute capability. No GPU here, so running says so (exit 2)."""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from edgec.targets.registry import TARGETS
from tests.conftest import EXAMPLES

CUDA = [t for t in TARGETS if t.arch == "cuda"]


def _nvcc_available() -> bool:
    return shutil.which("nvcc") is not None or any(Path("/usr/local").glob("cuda*/bin/nvcc"))


needs_nvcc = pytest.mark.skipif(not _nvcc_available(), reason="nvcc (CUDA toolkit) not installed")


def _cubin_sm(path: Path) -> int:
    head = path.read_bytes()[:64]
    assert head[:4] == b"\x7fELF"
    return (struct.unpack_from("<I", head, 48)[0] >> 8) & 0xFF  # e_flags: SM version in bits 8..15


@needs_nvcc
@pytest.mark.parametrize("spec", CUDA, ids=[t.name for t in CUDA])
def test_cuda_preset_yields_cubin_for_its_arch(spec, tmp_path, run_cli):
    art = tmp_path / "art"
    r = run_cli("compile", EXAMPLES / "small_cnn.onnx", "-t", spec.name, "-o", art)
    assert r.code == 0, r
    arch = spec.tvm["arch"]
    sm = int(arch.split("_")[1])
    assert _cubin_sm(art / f"kernels.{arch}.cubin") == sm
    ptx = (art / f"kernels.compute_{sm}.ptx").read_text()
    assert f".target sm_{sm}" in ptx
    meta = json.loads((art / "metadata.json").read_text())
    kernels = meta["lowering"]["device_kernels"]
    assert kernels and all(f".entry {k}(" in ptx for k in kernels)
    assert "threadIdx" in (art / "kernels.cu").read_text()  # GPU-scheduled, not a serial loop
    r = run_cli("run", art)
    assert r.code == 2 and "no GPU" in r.err


def test_opencl_target_ships_kernel_source(tmp_path, run_cli):
    if shutil.which("aarch64-linux-gnu-g++") is None:
        pytest.skip("needs aarch64-linux-gnu-g++ for the AArch64 host side")
    art = tmp_path / "art"
    r = run_cli("compile", EXAMPLES / "small_cnn.onnx", "-t", "opencl-arm", "-o", art)
    assert r.code == 0, r
    src = (art / "kernels.cl").read_text()
    kernels = json.loads((art / "metadata.json").read_text())["lowering"]["device_kernels"]
    assert kernels and all(f"__kernel void {k}(" in src for k in kernels)
    assert "get_local_id" in src  # GPU-scheduled
    assert (art / "model.so").read_bytes()[18] == 183  # ELF e_machine EM_AARCH64: host side for the board
