"""The TVM backend's entry point used by edgec.api: lower, build, export, bundle."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import onnx_ir as ir
import tvm
from tvm import relax

from edgec.targets.registry import TargetSpec
from edgec.targets.tvm.build import build_library
from edgec.targets.tvm.half import native_float16
from edgec.targets.tvm.lower import lower_model
from edgec.targets.tvm.schedules.int8_dot import dot_instructions
from edgec.targets.tvm.symbolic import format_dim
from edgec.targets.tvm.weights import write_weight_plan
from edgec.weights import MIN_CONSTANT_BYTES, WEIGHTS_FILE, row_tables


@dataclass
class BackendResult:
    library: str
    tvm_target: str
    lowering: dict
    extra_files: tuple[str, ...] = ()
    weights: dict | None = None  # {"file": "weights.bin", "tensors": [...]} when weights are separate
    output_shapes: list | None = None  # per graph output: the static shape the compiled code returns, or None


def output_shapes(mod: tvm.IRModule) -> list:
    """The shapes `main` returns, per output: ints, and for a dim computed from symbolic input
    dims its expression as text (`seq`, `seq * 2`); None where the shape is data-dependent. What
    the artifact really gives, whatever shapes the ONNX graph still declares."""
    ret = mod["main"].ret_ty
    fields = list(ret.fields) if isinstance(ret, relax.TupleType) else [ret]
    out = []
    for f in fields:
        s = getattr(f, "shape", None)
        if not isinstance(s, relax.ShapeExpr):
            out.append(None)  # unknown rank or a data-dependent shape
            continue
        out.append([format_dim(d) for d in s.values])
    return out


def compile_to(model: ir.Model, spec: TargetSpec, out_dir: Path, lib_name: str = "model.so",
               records: str | None = None, threads: int | None = None, symbolic: bool = False,
               weight_min_bytes: int | None = None, dim_bounds: dict | None = None) -> BackendResult:
    """Lower `model` and build it for `spec` into `out_dir` (library + any runtime side files).
    `records`: a tuning-records file from `edgec tune` (CPU VM targets); `threads`: the thread
    count the schedules are sized for (default: this machine's cores); `weight_min_bytes`:
    initializers at least this big go to a separate weights file (CPU VM targets, see
    edgec.weights) instead of into the library."""
    recs = None
    if records is not None:
        from edgec.targets.tvm.tune.records import Records

        recs = Records.load(records)
        if not spec.is_cpu_vm:
            from edgec.errors import TargetError

            raise TargetError(f"--records applies to CPU targets with the VM runtime, not '{spec.name}'")
    if weight_min_bytes is not None and not spec.is_cpu_vm:
        from edgec.errors import TargetError

        raise TargetError(f"a separate weights file applies to CPU targets with the VM runtime, not '{spec.name}'")
    # with `symbolic`, dynamic input dims stay symbolic, except for armv7's call plan (a fixed kernel list)
    mod, report = lower_model(model, weight_min_bytes=weight_min_bytes, symbolic=symbolic and spec.runtime != "plan",
                              cpu=spec.is_cpu, dot=dot_instructions(spec),
                              native_half=native_float16(spec.features, spec.arch, model.metadata_props),
                              dim_bounds=dim_bounds)
    shapes = output_shapes(mod)
    if spec.runtime == "plan":  # kernels + call plan, no TVM runtime on the device (armv7)
        from edgec.targets.tvm.plan import build_plan_library

        stage = out_dir / "_plan"
        build_plan_library(mod, spec, stage, name=Path(lib_name).stem,
                           output_names=[v.name for v in model.graph.outputs])
        schedules = json.loads((stage / "metadata.json").read_text()).get("schedules", {})
        extra = []
        for f in stage.iterdir():
            if f.name != "metadata.json":
                shutil.move(str(f), out_dir / f.name)
                extra.append(f.name)
        shutil.rmtree(stage)
        return BackendResult(lib_name, str(tvm.target.Target(spec.tvm)), {**report.to_json(), "schedules": schedules},
                             tuple(sorted(set(extra) - {lib_name})), output_shapes=shapes)
    if not spec.is_cpu:  # GPU: device source (+ binaries) beside the host library
        from edgec.targets.tvm.build import optimize_relax, tvm_target
        from edgec.targets.tvm.gpu import build_gpu

        target = tvm_target(spec)
        files, kernels = build_gpu(optimize_relax(mod, target), spec, target, out_dir, lib_name)
        return BackendResult(lib_name, str(target), {**report.to_json(), "device_kernels": kernels}, tuple(files),
                             output_shapes=shapes)
    res = build_library(mod, spec, out_dir / lib_name, recs, threads,
                        None if weight_min_bytes is None else min(weight_min_bytes, MIN_CONSTANT_BYTES))
    weights = None
    if res.weight_plan:  # initializers as parameters, and constants lifted (build.optimize_relax)
        inits = model.graph.initializers
        sources = [(n, inits[n].const_value) for n in report.weights]
        entries = write_weight_plan(res.weight_plan, sources, out_dir / WEIGHTS_FILE)
        rows = row_tables(model)
        for e in entries:
            if e["name"] in rows:
                e["access"] = "rows"
        weights = {"file": WEIGHTS_FILE, "tensors": entries}
    lowering = {**report.to_json(), "schedules": res.schedules}
    if res.generic_kernels:  # which kernels run generic code (schedules.GENERIC_RULES), by rule
        lowering["generic_kernels"] = res.generic_kernels
    if res.records:
        lowering["records"] = res.records
    if res.in_place_inputs:  # read where the caller's array is, at any element-aligned address
        lowering["inputs_in_place"] = res.in_place_inputs
    return BackendResult(lib_name, res.tvm_target, lowering, weights=weights, output_shapes=shapes)


def tune(model: ir.Model, spec: TargetSpec, records: str, trials: int, weight_min_bytes: int | None = None, **kw):
    """Lower `model` as compile_to does and tune its kernels (see tune.driver.tune_model)."""
    from edgec.targets.tvm.tune.driver import tune_model

    mod, _ = lower_model(model, weight_min_bytes=weight_min_bytes, symbolic=True, dot=dot_instructions(spec),
                         native_half=native_float16(spec.features, spec.arch, model.metadata_props))
    return tune_model(mod, spec, records, trials, **kw)


def make_bundle(spec: TargetSpec, artifact_dir: Path, metadata: dict, lib_name: str = "model.so") -> Path:
    """A self-contained deployable directory `artifact_dir/bundle` (runner, C API, runtime)."""
    from edgec.targets.tvm.bundle import make_bundle as _make_bundle

    return _make_bundle(spec, artifact_dir / lib_name, metadata, artifact_dir / "bundle")
