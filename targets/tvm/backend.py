"""The TVM backend's entry point used by edgec.api: lower, build, export."""

from __future__ import annotations

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


def compile_to(model: ir.Model, spec: TargetSpec, out_dir: Path, lib_name: str = "model.so") -> BackendResult:
    mod, report = lower_model(model)
    res = build_library(mod, spec, out_dir / lib_name)
    return BackendResult(lib_name, res.tvm_target, report.to_json())


def tvm_version() -> str:
    return tvm.__version__
