"""Runtime-free "call plan": run a Relax model without the TVM runtime (used for armv7).

No armv7 build of the TVM runtime exists on the package registries, so for targets whose
`spec.runtime == "plan"` edgec compiles only the kernels (the TIR PrimFuncs left after
legalization and fusion) and writes the Relax `main` function out as a flat list of kernel calls:

    model.so      the kernels (tvm-ffi packed calling convention, no TVM runtime needed)
    model.plan    text: tensors (dtype, shape, input/const/temp), inputs, outputs, calls in order
    model.consts  the constants (weights), each 64-byte aligned, referenced by offset from the plan

`targets/runtime/edgec_plan_runtime.cc` reads these and implements the same C API
(`edgec_runtime.h`) as the VM runtime, so `edgec-runner` and user code do not change.
See docs/armv7.md for the format and its limits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import tvm
from tvm import relax
from tvm.support import cc

from edgec.errors import TargetError
from edgec.targets.registry import TargetSpec
from edgec.targets.tvm.stack_allocations import cpu_pipeline

PLAN_VERSION = 1
KERNEL_PREFIX = "__tvm_ffi_"  # symbol prefix of PrimFuncs exported with the packed ABI
_SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:/-")


def escape_name(name: str) -> str:
    """Percent-encode a tensor name so it is one whitespace-free token of the plan file."""
    out = "".join(c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in name)
    return out or "%"


@dataclass
class PlanTensor:
    dtype: str
    shape: tuple[int, ...]
    kind: str                  # "input" | "const" | "temp"
    arg: tuple[int, ...] = ()  # input: (index,); const: (offset, nbytes)

    def line(self, tid: int) -> str:
        return " ".join(str(x) for x in (tid, self.dtype, len(self.shape), *self.shape,
                                          self.kind, *self.arg))


@dataclass
class Plan:
    tensors: list[PlanTensor] = field(default_factory=list)
    inputs: list[tuple[int, str]] = field(default_factory=list)   # (tensor id, name)
    outputs: list[tuple[int, str]] = field(default_factory=list)
    calls: list[tuple[str, list[int]]] = field(default_factory=list)  # (symbol, tensor ids)
    consts: bytearray = field(default_factory=bytearray)
    kernels: tvm.IRModule | None = None
    schedules: dict = field(default_factory=dict)  # schedule rule -> number of kernels (build.schedule)

    def text(self) -> str:
        lines = [f"edgec-plan {PLAN_VERSION}", f"tensors {len(self.tensors)}"]
        lines += [t.line(i) for i, t in enumerate(self.tensors)]
        for title, items in (("inputs", self.inputs), ("outputs", self.outputs)):
            lines.append(f"{title} {len(items)}")
            lines += [f"{tid} {escape_name(name)}" for tid, name in items]
        lines.append(f"calls {len(self.calls)}")
        lines += [" ".join([sym, str(len(args)), *map(str, args)]) for sym, args in self.calls]
        return "\n".join(lines) + "\n"

    def metadata(self) -> dict:
        def one(tid, name):
            t = self.tensors[tid]
            return {"name": name, "shape": list(t.shape), "dtype": t.dtype}
        return {"inputs": [one(*x) for x in self.inputs], "outputs": [one(*x) for x in self.outputs],
                "schedules": dict(self.schedules)}


def _tensor_type(ty, what: str) -> tuple[str, tuple[int, ...]]:
    if not isinstance(ty, relax.TensorType) or ty.shape is None:
        raise TargetError(f"call plan: {what} is not a tensor of known shape ({ty})")
    try:
        shape = tuple(int(v) for v in ty.shape.values)
    except (TypeError, ValueError, AttributeError):
        raise TargetError(f"call plan: {what} has a dynamic shape ({ty}); static shapes only") from None
    return str(ty.dtype), shape


class _PlanBuilder:
    def __init__(self):
        self.plan = Plan()
        self.values: dict = {}   # relax Var -> tensor id, or tuple of ids
        self.const_ids: dict = {}

    def new_tensor(self, dtype, shape, kind, arg=()) -> int:
        self.plan.tensors.append(PlanTensor(dtype, tuple(shape), kind, tuple(arg)))
        return len(self.plan.tensors) - 1

    def const(self, c) -> int:
        key = c  # relax exprs hash/compare by object identity
        if key not in self.const_ids:
            arr = c.value.numpy().copy(order="C")  # ascontiguousarray makes a 0-d scalar 1-d
            self.plan.consts += b"\0" * (-len(self.plan.consts) % 64)
            offset = len(self.plan.consts)
            self.plan.consts += arr.tobytes()
            self.const_ids[key] = self.new_tensor(str(arr.dtype), arr.shape, "const",
                                                  (offset, arr.nbytes))
        return self.const_ids[key]

    def value(self, expr):
        """Tensor id (or tuple of ids) an argument/result expression refers to."""
        if isinstance(expr, tvm.ir.expr.Constant):
            return self.const(expr)
        if isinstance(expr, relax.Var):
            if expr not in self.values:
                raise TargetError(f"call plan: unbound variable {expr}")
            return self.values[expr]
        if isinstance(expr, tvm.ir.expr.Tuple):
            return tuple(self.value(f) for f in expr.fields)
        if isinstance(expr, tvm.ir.expr.TupleGetItem):
            return self.value(expr.tuple_value)[int(expr.index)]
        if isinstance(expr, relax.If):
            raise TargetError(_CONTROL_FLOW)
        raise TargetError(f"call plan: unsupported expression {type(expr).__name__}: "
                          f"{' '.join(str(expr).split())[:160]}")

    def call_tir(self, call, var) -> object:
        callee, args = call.args[0], call.args[1]
        if len(call.args) > 2:
            raise TargetError(f"call plan: call_tir with symbolic shape arguments ({callee})")
        arg_ids = []
        for a in args.fields:
            v = self.value(a)
            if isinstance(v, tuple):
                raise TargetError(f"call plan: tuple argument to kernel {callee.name_hint}")
            arg_ids.append(v)
        out_types = call.ty_args[0]
        multi = isinstance(out_types, relax.TupleType)
        outs = []
        for i, ty in enumerate(out_types.fields if multi else [out_types]):
            dtype, shape = _tensor_type(ty, f"output {i} of {callee.name_hint}")
            outs.append(self.new_tensor(dtype, shape, "temp"))
        self.plan.calls.append((KERNEL_PREFIX + callee.name_hint, arg_ids + outs))
        return tuple(outs) if multi else outs[0]

    def binding(self, b) -> None:
        if not isinstance(b, relax.VarBinding):
            raise TargetError(f"call plan: unsupported binding {type(b).__name__} ({b.var})")
        v = b.value
        if isinstance(v, tvm.ir.expr.Call):
            if isinstance(v.op, tvm.ir.GlobalVar):  # a Relax function: a run-time Loop's, or an If branch
                raise TargetError(_CONTROL_FLOW)
            if not (isinstance(v.op, tvm.ir.Op) and v.op.name == "relax.call_tir"):
                what = v.op.name if isinstance(v.op, tvm.ir.Op) else str(v.op)
                raise TargetError(f"call plan: '{what}' is not a kernel call; only call_tir "
                                  "(legalized, static-shape ops) can run without the TVM runtime")
            self.values[b.var] = self.call_tir(v, b.var)
        else:
            self.values[b.var] = self.value(v)


_CONTROL_FLOW = ("call plan: the model has run-time control flow (If or Loop); armv7's call plan runs a "
                 "fixed list of kernels: compile it for an armv8 or x86 target")


def _legalize(mod: tvm.IRModule, target: tvm.target.Target, spec: TargetSpec, used: dict) -> tvm.IRModule:
    """The CPU backend's graph optimization and rule schedules (build.optimize_relax, build.schedule:
    blocked layout, edgec's kernels, int8 kernels), as for a VM library; the kernels' parallel loops
    run on the plan runtime's thread pool (edgec_set_num_threads)."""
    from edgec.targets.tvm.build import optimize_relax, schedule

    with target:
        mod = tvm.transform.Sequential(relax.backend.cpu_generic.pipeline.library_dispatch_passes(target))(mod)
    mod = optimize_relax(mod, target, spec, threads=1)
    mod = schedule(mod, spec, target, used, threads=1)
    with target:
        return relax.transform.DeadCodeElimination(["main"])(mod)


def lower_to_plan(mod: tvm.IRModule, spec: TargetSpec,
                  output_names: list[str] | None = None) -> Plan:
    """Legalize and fuse `mod` (a Relax module with `main`, weights bound as constants) and turn
    `main` into a `Plan`; `plan.kernels` is the IRModule of PrimFuncs to compile."""
    target = tvm.target.Target(spec.tvm)
    used: dict = {}
    mod = _legalize(mod, target, spec, used)
    main = mod["main"]
    num_input = main.attrs.get("num_input") if main.attrs is not None else None
    if num_input is not None and int(num_input) != len(main.params):
        raise TargetError("call plan: main has weight parameters; bind them as constants first "
                          "(from_onnx(..., keep_params_in_input=False) or relax.transform.BindParams)")
    pb = _PlanBuilder()
    pb.plan.schedules = used
    for i, p in enumerate(main.params):
        dtype, shape = _tensor_type(p.ty, f"input '{p.name}'")
        tid = pb.new_tensor(dtype, shape, "input", (i,))
        pb.values[p] = tid
        pb.plan.inputs.append((tid, str(p.name)))
    body = main.body
    for block in body.blocks:
        for b in block.bindings:
            pb.binding(b)
    result = pb.value(body.body)
    flat = list(result) if isinstance(result, tuple) else [result]
    if any(isinstance(r, tuple) for r in flat):
        raise TargetError("call plan: nested tuple outputs are not supported")
    names = output_names or [f"output{i}" for i in range(len(flat))]
    if len(names) != len(flat):
        raise TargetError(f"call plan: {len(flat)} outputs but {len(names)} output names")
    pb.plan.outputs = list(zip(flat, names))
    used = {sym[len(KERNEL_PREFIX):] for sym, _ in pb.plan.calls}
    pb.plan.kernels = tvm.IRModule({gv: f.with_attr("global_symbol", gv.name_hint)
                                    for gv, f in mod.functions.items()
                                    if isinstance(f, tvm.tirx.PrimFunc) and gv.name_hint in used})
    return pb.plan


def build_plan_library(mod: tvm.IRModule, spec: TargetSpec, out_dir: str | Path,
                       name: str = "model", output_names: list[str] | None = None) -> Path:
    """Compile `mod` for `spec` as kernels + call plan. Writes `<name>.so`, `<name>.plan`,
    `<name>.consts` and `metadata.json` into out_dir; returns the library path."""
    from edgec.targets.tvm.bundle import require_toolchain

    cxx = require_toolchain(spec) if spec.cross_compiler else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan = lower_to_plan(mod, spec, output_names)
    ex = tvm.compile(plan.kernels, target=tvm.target.Target(spec.tvm),
                     tir_pipeline=cpu_pipeline() if spec.is_cpu else "default")
    lib = out / f"{name}.so"
    if cxx:
        ex.export_library(str(lib), fcompile=cc.cross_compiler(cxx))
    else:
        ex.export_library(str(lib))
    (out / f"{name}.plan").write_text(plan.text())
    (out / f"{name}.consts").write_bytes(bytes(plan.consts))
    (out / "metadata.json").write_text(json.dumps(plan.metadata(), indent=1))
    return lib
