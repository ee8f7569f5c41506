"""Build a lowered Relax module for a target and export a shared library."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import tvm
from tvm import relax
from tvm.support import cc

from edgec.errors import TargetError
from edgec.targets.registry import TargetSpec


@dataclass
class BuildResult:
    library: Path
    tvm_target: str


def tvm_target(spec: TargetSpec) -> tvm.target.Target:
    try:
        if spec.tvm.get("kind") == "llvm":
            return tvm.target.Target(spec.tvm)
        return tvm.target.Target(spec.tvm, host=spec.host_tvm or {"kind": "llvm"})
    except Exception as e:
        raise TargetError(f"TVM rejects target '{spec.name}' {spec.tvm}: {' '.join(str(e).split())[:200]}") from None


def cross_fcompile(spec: TargetSpec):
    if not spec.cross_compiler:
        return None
    if shutil.which(spec.cross_compiler) is None:
        raise TargetError(
            f"target '{spec.name}' needs the cross compiler '{spec.cross_compiler}': "
            f"apt-get install {spec.toolchain_package}")
    return cc.cross_compiler(spec.cross_compiler)


def optimize_relax(mod: tvm.IRModule, target: tvm.target.Target) -> tvm.IRModule:
    """Graph-level Relax passes before codegen: legalize, fold, fuse into TIR kernels."""
    seq = tvm.transform.Sequential([
        relax.transform.DecomposeOpsForInference(),
        relax.transform.CanonicalizeBindings(),
        relax.transform.FoldConstant(),
        relax.transform.LegalizeOps(),
        relax.transform.AnnotateTIROpPattern(),
        relax.transform.FoldConstant(),
        relax.transform.FuseOps(),
        relax.transform.FuseTIR(),
        relax.transform.DeadCodeElimination(),
    ])
    with target:
        return seq(mod)


def build_library(mod: tvm.IRModule, spec: TargetSpec, out_lib: Path) -> BuildResult:
    target = tvm_target(spec)
    fcompile = cross_fcompile(spec)
    mod = optimize_relax(mod, target)
    ex = tvm.compile(mod, target=target)
    out_lib = Path(out_lib)
    if fcompile is None:
        ex.export_library(str(out_lib))
    else:
        ex.export_library(str(out_lib), fcompile=fcompile)
    return BuildResult(out_lib, str(target))
