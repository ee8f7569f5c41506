"""The TVM backend's entry point used by edgec.api: lower, build, export, bundle."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import onnx_ir as ir
import tvm

from edgec.targets.registry import TargetSpec
from edgec.targets.tvm.build import build_library
from edgec.targets.tvm.lower import lower_model


@dataclass
class BackendResult:
    library: str
    tvm_target: str
    lowering: dict
    extra_files: tuple[str, ...] = ()


def compile_to(model: ir.Model, spec: TargetSpec, out_dir: Path, lib_name: str = "model.so") -> BackendResult:
    """Lower `model` and build it for `spec` into `out_dir` (library + any runtime side files)."""
    mod, report = lower_model(model)
    if spec.runtime == "plan":  # kernels + call plan, no TVM runtime on the device (armv7)
        from edgec.targets.tvm.plan import build_plan_library

        stage = out_dir / "_plan"
        build_plan_library(mod, spec, stage, name=Path(lib_name).stem,
                           output_names=[v.name for v in model.graph.outputs])
        extra = []
        for f in stage.iterdir():
            if f.name != "metadata.json":
                shutil.move(str(f), out_dir / f.name)
                extra.append(f.name)
        shutil.rmtree(stage)
        return BackendResult(lib_name, str(tvm.target.Target(spec.tvm)), report.to_json(),
                             tuple(sorted(set(extra) - {lib_name})))
    if spec.tvm.get("kind") != "llvm":  # GPU: device source (+ binaries) beside the host library
        from edgec.targets.tvm.build import optimize_relax, tvm_target
        from edgec.targets.tvm.gpu import build_gpu

        target = tvm_target(spec)
        files, kernels = build_gpu(optimize_relax(mod, target), spec, target, out_dir, lib_name)
        return BackendResult(lib_name, str(target), {**report.to_json(), "device_kernels": kernels}, tuple(files))
    res = build_library(mod, spec, out_dir / lib_name)
    return BackendResult(lib_name, res.tvm_target, report.to_json())


def make_bundle(spec: TargetSpec, artifact_dir: Path, metadata: dict, lib_name: str = "model.so") -> Path:
    """A self-contained deployable directory `artifact_dir/bundle` (runner, C API, runtime)."""
    from edgec.targets.tvm.bundle import make_bundle as _make_bundle

    return _make_bundle(spec, artifact_dir / lib_name, metadata, artifact_dir / "bundle")


def tvm_version() -> str:
    return tvm.__version__
