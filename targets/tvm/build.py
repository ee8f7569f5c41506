"""Build a lowered Relax module for a target and export a shared library."""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import tvm
from tvm import relax
from tvm.support import cc

from edgec.errors import EdgecError, InternalError, TargetError
from edgec.targets.dot import dot_instructions
from edgec.targets.registry import TargetSpec
from edgec.targets.tvm.fuse_depthwise import fuse_depthwise_into_pointwise
from edgec.targets.tvm.layout import convert_to_blocked, legalize_map
from edgec.targets.tvm.schedules import apply_schedules, context_for
from edgec.targets.tvm.stack_allocations import cpu_pipeline
from edgec.targets.tvm.unaligned_inputs import relax_input_alignment
from edgec.targets.tvm.weights import (
    PACK_MAX_BYTES,
    lift_large_constants,
    lift_weight_transforms,
    weight_param_names,
)


@dataclass
class BuildResult:
    library: Path
    tvm_target: str
    schedules: dict = field(default_factory=dict)  # schedule rule -> number of kernels
    records: dict = field(default_factory=dict)    # tuning records applied: {"file", "tuned", "rule", ...}
    weight_plan: list = field(default_factory=list)  # targets.tvm.weights.WeightParam per weight parameter
    generic_kernels: dict = field(default_factory=dict)  # rule -> kernel names running generic code
    in_place_inputs: list = field(default_factory=list)  # graph inputs read at any element-aligned address


def tvm_target(spec: TargetSpec) -> tvm.target.Target:
    try:
        if spec.is_cpu:
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


_OPAQUE = 8  # relay/relax OpPatternKind kOpaque: FuseOps leaves the kernel alone


@tvm.transform.module_pass(opt_level=0, name="UnfusedScalarParamKernels")
def unfused_scalar_param_kernels(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
    """Kernels taking a symbolic dim as a scalar parameter (`shape_to_tensor(seq)`: a shape value
    of symbolic.py emitted as a tensor) are kept out of fusion: TVM 0.27's FuseTIR fails on a
    group holding one ("VarRemapGet(source) == nullptr" in RenewDefs). They are tiny (a few
    elements), so fusing them gains nothing."""
    for gv, f in list(mod.functions.items()):
        if isinstance(f, tvm.tirx.PrimFunc) and any(isinstance(p.ty, tvm.ir.PrimType) for p in f.params):
            mod[gv] = f.with_attr("op_pattern", _OPAQUE)
    return mod


def optimize_relax(mod: tvm.IRModule, target: tvm.target.Target, spec: TargetSpec | None = None,
                   weight_plan: list | None = None, lift_min_bytes: int | None = None,
                   threads: int | None = None) -> tvm.IRModule:
    """Graph-level Relax passes before codegen: blocked layout (CPU), legalize, fold, fuse into
    TIR kernels. Weight layout transforms act on constants and are folded here; on weight
    parameters (lowered with a weights file) they are lifted out of `main` (targets.tvm.weights),
    and `weight_plan`, if given, receives the plan of `main`'s weight parameters. With
    `lift_min_bytes` (a weights file), constants at least that big become weight parameters
    too (lift_large_constants). `threads`: what the kernels' parallel loops will be split for
    (schedules.context_for; kernels are grouped for that count)."""
    with target:
        mod = relax.transform.DecomposeOpsForInference()(mod)
        mod = relax.transform.CanonicalizeBindings()(mod)
        packable = weight_param_names(mod, PACK_MAX_BYTES)
        if spec is not None and spec.is_cpu:
            mod = convert_to_blocked(mod, max(spec.vector_bits // 32, 4), packable)
    lanes = max(spec.vector_bits // 32, 4) if spec is not None and spec.is_cpu else 0
    weights = weight_param_names(mod)
    legalize = tvm.transform.Sequential([
        relax.transform.FoldConstant(),
        relax.transform.LegalizeOps(legalize_map(lanes, packable, dot_instructions(spec) if spec is not None else None)),
        relax.transform.AnnotateTIROpPattern(),
        relax.transform.FoldConstant(),
        unfused_scalar_param_kernels,
    ])
    fuse = tvm.transform.Sequential([
        # before FuseOps: depthwise -> pointwise pairs as one kernel (CPU rule dwconv_pointwise)
        *([fuse_depthwise_into_pointwise(context_for(spec, target, threads).threads)]
          if spec is not None and spec.is_cpu else []),
        relax.transform.FuseOps(),
        relax.transform.FuseTIR(),
        relax.transform.DeadCodeElimination(),
    ])
    with target:
        mod = legalize(mod)
        plan = []
        if weights:
            mod, plan = lift_weight_transforms(mod)
        if lift_min_bytes is not None:
            mod, consts = lift_large_constants(mod, lift_min_bytes)
            plan = plan + consts
        if weight_plan is not None:
            weight_plan.extend(plan)
        return fuse(mod)


def schedule(mod: tvm.IRModule, spec: TargetSpec, target: tvm.target.Target, used: dict | None = None,
             records=None, threads: int | None = None, generic: dict | None = None):
    """edgec's rule-based schedules for CPU targets (GPU targets keep TVM's default schedules).
    With `records` (a tune.records.Records), kernels that have a record get the recorded winner
    first (counted as 'records:tuned' / 'records:knobs' / 'records:rule' in `used`). `generic`
    receives the kernels running generic code by rule (schedules.GENERIC_RULES)."""
    if not spec.is_cpu:
        return mod
    ctx = context_for(spec, target, threads)
    if records is not None:
        from edgec.targets.tvm.tune.apply import apply_records

        mod, counts = apply_records(mod, records, target, ctx)
        if used is not None:
            used.update(counts)
    mod, counts = apply_schedules(mod, ctx, generic)
    if used is not None:
        used.update(counts)
    return mod


def build_relax(mod: tvm.IRModule, spec: TargetSpec, target: tvm.target.Target | None = None,
                used: dict | None = None, records=None, threads: int | None = None,
                weight_plan: list | None = None, generic: dict | None = None, lift_min_bytes: int | None = None,
                in_place: set | None = None):
    """Optimize, schedule and compile a Relax module; returns TVM's executable. `used` collects
    how many kernels each schedule rule (or tuning record) took; `weight_plan` the plan of the
    weight parameters (see optimize_relax, as `lift_min_bytes`); `in_place` the indices of the
    graph inputs the kernels read at any element-aligned address (CPU targets; unaligned_inputs)."""
    target = target or tvm_target(spec)
    with backend_stage("graph optimization (blocked layout, legalize, fusion)"):
        mod = optimize_relax(mod, target, spec, weight_plan, lift_min_bytes, threads)
    with backend_stage("schedules"):
        mod = schedule(mod, spec, target, used, records, threads, generic)
    if spec.is_cpu:
        with backend_stage("input alignment"):
            mod, relaxed = relax_input_alignment(mod)
        if in_place is not None:
            in_place.update(relaxed)
    with backend_stage("code generation"):
        return tvm.compile(mod, target=target, tir_pipeline=cpu_pipeline() if spec.is_cpu else "default")


@contextlib.contextmanager
def backend_stage(name: str):
    """A crash inside a backend stage is edgec's bug: an InternalError naming the stage (exit 1)."""
    try:
        yield
    except EdgecError:
        raise
    except Exception as e:
        from edgec.signals import INTERRUPTS

        INTERRUPTS.raise_if_seen()  # TVM wrapped a Ctrl-C / SIGTERM into an FFI error
        raise InternalError(f"backend stage '{name}' crashed: {type(e).__name__}: "
                            f"{' '.join(str(e).split())[:300]}") from e


def build_library(mod: tvm.IRModule, spec: TargetSpec, out_lib: Path, records=None,
                  threads: int | None = None, lift_min_bytes: int | None = None) -> BuildResult:
    """Build and export `mod`; with `lift_min_bytes` (a weights file), the result's
    weight_plan lists the weight parameters to write (see optimize_relax)."""
    target = tvm_target(spec)
    fcompile = cross_fcompile(spec)
    used: dict = {}
    plan: list = []
    generic: dict = {}
    in_place: set = set()
    ex = build_relax(mod, spec, target, used, records, threads, plan, generic, lift_min_bytes, in_place)
    out_lib = Path(out_lib)
    if fcompile is None:
        ex.export_library(str(out_lib))
    else:
        ex.export_library(str(out_lib), fcompile=fcompile)
    applied = {}
    if records is not None:
        applied = {"file": str(records.path), "entries": len(records.tasks),
                   "tuned": used.pop("records:tuned", 0), "knobs": used.pop("records:knobs", 0),
                   "rule": used.pop("records:rule", 0), "failed": used.pop("records:failed", 0)}
        applied["applied"] = applied["tuned"] + applied["knobs"] + applied["rule"]
    return BuildResult(out_lib, str(target), dict(sorted(used.items())), applied, plan,
                       {k: sorted(v) for k, v in sorted(generic.items())}, sorted(in_place))
