"""CUDA targets: TVM 0.27 (this wheel) applies DLight GPU schedules and emits CUDA C source but
never calls a device compiler, so edgec compiles the generated source with nvcc itself: a cubin
for the preset's SM architecture and PTX for its compute capability (JIT forward compatibility).

Artifact files: model.so (host side: Relax VM executable with the CUDA module embedded as
source), kernels.cu, kernels.<sm_XX>.cubin, kernels.<compute_XX>.ptx. No GPU is available to
this project, so CUDA artifacts are compile-tested only; `edgec run` says so."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import tvm

from edgec.errors import TargetError
from edgec.targets.registry import TargetSpec

_KERNEL = re.compile(r'extern "C" __global__ void (?:__launch_bounds__\(\d+\) )?(\w+)\(')


def _device_sources(module) -> list[str]:
    out = []
    if module.kind == "cuda":
        out.append(module.inspect_source("cuda"))
    for imp in module.imports:
        out += _device_sources(imp)
    return out


def nvcc() -> str:
    path = shutil.which("nvcc") or next((str(p) for p in Path("/usr/local").glob("cuda*/bin/nvcc")), None)
    if path is None:
        raise TargetError("CUDA targets need nvcc (the CUDA toolkit) on PATH to compile TVM's kernels")
    return path


def compile_kernels(source: str, arch: str, out_dir: Path) -> list[str]:
    """nvcc the source into a cubin for `arch` (sm_XX) and PTX for compute_XX; returns file names."""
    cu = out_dir / "kernels.cu"
    cu.write_text(source)
    compute = arch.replace("sm_", "compute_")
    files = {f"kernels.{arch}.cubin": ["-cubin", f"-arch={arch}"],
             f"kernels.{compute}.ptx": ["-ptx", f"-arch={compute}"]}
    for name, flags in files.items():
        p = subprocess.run([nvcc(), *flags, "-O3", str(cu), "-o", str(out_dir / name)],
                           capture_output=True, text=True)
        if p.returncode != 0:
            err = " | ".join(p.stderr.strip().splitlines()[-3:])
            raise TargetError(f"nvcc failed for {arch}: {err[:300]}")
    return ["kernels.cu", *files]


def build_cuda(mod: tvm.IRModule, spec: TargetSpec, target: tvm.target.Target, out_dir: Path,
               lib_name: str) -> tuple[list[str], list[str]]:
    """Build `mod` for a CUDA target; returns (side files, kernel names)."""
    ex = tvm.compile(mod, target=target)
    ex.export_library(str(out_dir / lib_name))
    sources = _device_sources(ex.mod)
    if not sources:
        raise TargetError(f"TVM produced no CUDA module for target '{spec.name}'")
    source = "\n".join(sources)
    files = compile_kernels(source, spec.tvm["arch"], out_dir)
    return files, _KERNEL.findall(source)
