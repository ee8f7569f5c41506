"""GPU targets. TVM 0.27 (this wheel) applies DLight GPU schedules and emits device *source*
but never calls a device compiler, so edgec finishes the job per device kind (a table):

- cuda: nvcc compiles the generated source to a cubin for the preset's SM architecture and PTX
  for its compute capability (JIT forward compatibility);
- opencl: the OpenCL C source is shipped as is (OpenCL drivers compile at load time).

Artifact: model.so (host side: Relax VM executable with the device module embedded as source),
kernels.<ext> and any binaries. No GPU is available to this project, so GPU artifacts are
compile-tested only; `edgec run` says so."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import tvm

from edgec.errors import TargetError
from edgec.targets.registry import TargetSpec
from edgec.targets.tvm.build import cross_fcompile

_KERNEL = re.compile(r'(?:extern "C" __global__|__kernel) void (?:__launch_bounds__\(\d+\) )?(\w+)\(')


def nvcc() -> str:
    path = shutil.which("nvcc") or next((str(p) for p in Path("/usr/local").glob("cuda*/bin/nvcc")), None)
    if path is None:
        raise TargetError("CUDA targets need nvcc (the CUDA toolkit) on PATH to compile TVM's kernels")
    return path


def _nvcc_binaries(source_file: Path, spec: TargetSpec, out_dir: Path) -> list[str]:
    arch = spec.tvm["arch"]
    compute = arch.replace("sm_", "compute_")
    files = {f"kernels.{arch}.cubin": ["-cubin", f"-arch={arch}"],
             f"kernels.{compute}.ptx": ["-ptx", f"-arch={compute}"]}
    for name, flags in files.items():
        p = subprocess.run([nvcc(), *flags, "-O3", str(source_file), "-o", str(out_dir / name)],
                           capture_output=True, text=True)
        if p.returncode != 0:
            err = " | ".join(p.stderr.strip().splitlines()[-3:])
            raise TargetError(f"nvcc failed for {arch}: {err[:300]}")
    return list(files)


@dataclass(frozen=True)
class DeviceKind:
    source_ext: str
    compile_binaries: object = None  # fn(source_file, spec, out_dir) -> [file names]


DEVICE_KINDS = {
    "cuda": DeviceKind(".cu", _nvcc_binaries),
    "opencl": DeviceKind(".cl"),
}


def _device_sources(module, kind: str) -> list[str]:
    out = [module.inspect_source("")] if module.kind == kind else []
    for imp in module.imports:
        out += _device_sources(imp, kind)
    return out


def build_gpu(mod: tvm.IRModule, spec: TargetSpec, target: tvm.target.Target, out_dir: Path,
              lib_name: str) -> tuple[list[str], list[str]]:
    """Build `mod` for a GPU target; returns (side files, kernel names)."""
    kind = spec.tvm["kind"]
    if kind not in DEVICE_KINDS:
        raise TargetError(f"no GPU build recipe for TVM target kind '{kind}'")
    recipe = DEVICE_KINDS[kind]
    fcompile = cross_fcompile(spec)
    ex = tvm.compile(mod, target=target)
    if fcompile is None:
        ex.export_library(str(out_dir / lib_name))
    else:
        ex.export_library(str(out_dir / lib_name), fcompile=fcompile)
    sources = _device_sources(ex.mod, kind)
    if not sources:
        raise TargetError(f"TVM produced no {kind} module for target '{spec.name}'")
    source = "\n".join(sources)
    src_file = out_dir / f"kernels{recipe.source_ext}"
    src_file.write_text(source)
    files = [src_file.name]
    if recipe.compile_binaries is not None:
        files += recipe.compile_binaries(src_file, spec, out_dir)
    return files, _KERNEL.findall(source)
