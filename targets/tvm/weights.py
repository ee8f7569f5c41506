"""Weight parameters (initializers in an artifact's weights.bin, see edgec.weights) keep their
compile-time repacking.

With weights as constants, packing (packed-B MatMul panels, blocked or packed conv kernels,
transposes of transposed weights) is a `layout_transform` on a constant that FoldConstant folds.
With weights as function parameters, the same legalizations emit it on the parameter, and
`lift_weight_transforms` takes every kernel call that reads exactly one weight parameter out of
`main`: its result becomes a new parameter, computed at compile time by `write_weight_plan`,
**one weight at a time** (map it, run the transform kernel, write the result, unmap), so the
compile holds at most one weight and its packed copy, and the run gets packed weights with no
work at load. Only weights up to PACK_MAX_BYTES are packed, which bounds that copy.

Weights a lowering computes itself at compile time (MatMulNBits repacks its packed integers into
its kernel's layout) are Relax constants, and so are weights folded by FoldConstant; with a
weights file, `lift_large_constants` turns every constant of at least the weights-file threshold
into a parameter too, written from its value: the library then holds code and small constants
only, and every big array is mapped once from weights.bin at run time (an embedded constant lives
in the mapped library and again as the runtime's deserialized copy).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tvm
from tvm import relax

from edgec.weights import source_array, write_weights

# inputs a lowering needs as compile-time constants (it repacks them; no run-time path): such
# initializers stay in the library whatever their size
_PACKED_AT_COMPILE_TIME = {("com.microsoft", "MatMulNBits"): (1, 2, 3)}


def as_weight(v, min_bytes: int | None, dtypes: set[str]) -> bool:
    """Whether initializer `v` becomes a weight parameter (weights.bin) rather than a constant:
    at least `min_bytes` (None: never), whole bytes, a dtype in `dtypes`, and read by no lowering
    that needs it at compile time."""
    t = v.const_value
    if min_bytes is None or t.nbytes < min_bytes or t.dtype.bitwidth < 8:
        return False
    if any(i in _PACKED_AT_COMPILE_TIME.get((n.domain, n.op_type), ()) for n, i in v.uses()):
        return False
    try:
        return str(np.dtype(t.dtype.numpy())) in dtypes
    except Exception:  # noqa: BLE001 - a dtype numpy does not know: a constant
        return False


_MAX_GROWTH = 2.0  # a lifted transform may at most double its weight (padding), not broadcast it
# Weights up to this size are repacked (legalizations treat them like constants): the compile then
# holds one such weight and its packed copy at a time. Bigger ones keep their ONNX layout (the
# kernels read them unpacked): a compile of any model stays within ~2 x this plus its baseline.
PACK_MAX_BYTES = 256 << 20


@dataclass
class WeightParam:
    """One parameter of `main` after the inputs: weight parameter number `source` of the lowered
    function as is (func None), or `func` (a PrimFunc reading the weight, writing the result)
    applied to it; `label` names the transform."""
    source: int
    shape: tuple[int, ...]
    dtype: str
    func: tvm.tirx.PrimFunc | None = None
    label: str = ""
    value: object = None  # a constant lifted by lift_large_constants (a TVM tensor): written as is


def _tensor_info(ty) -> tuple[tuple[int, ...], str] | None:
    if not isinstance(ty, relax.TensorType) or ty.shape is None:
        return None
    try:
        return tuple(int(d) for d in ty.shape), str(ty.dtype)
    except (TypeError, AttributeError):
        return None


def weight_param_names(mod: tvm.IRModule, max_bytes: int | None = None) -> frozenset[str]:
    """Names of `main`'s weight parameters (those after `num_input`), at most `max_bytes` big."""
    func = mod["main"]
    if "num_input" not in func.attrs:
        return frozenset()
    out = set()
    for p in func.params[int(func.attrs["num_input"]):]:
        info = _tensor_info(p.ty)
        if max_bytes is None or (info is not None and np.prod(info[0]) * np.dtype(info[1]).itemsize <= max_bytes):
            out.add(p.name)
    return frozenset(out)


def lift_weight_transforms(mod: tvm.IRModule) -> tuple[tvm.IRModule, list[WeightParam]]:
    """Lift `call_tir(f, (w,))` on weight parameters of `main` (those after `num_input`) into new
    parameters; returns the module and the plan of its weight parameters, in order."""
    func = mod["main"]
    num_input = int(func.attrs["num_input"])
    inputs, wparams = list(func.params[:num_input]), list(func.params[num_input:])
    by_var = {w: i for i, w in enumerate(wparams)}
    call_tir = tvm.ir.Op.get("relax.call_tir")
    lifted: dict[str, relax.Var] = {}  # "weight/func" -> new parameter (one per distinct transform)
    plan_new: list[WeightParam] = []
    blocks = []
    for block in func.body.blocks:
        bindings = []
        for b in block.bindings:
            v = b.value if isinstance(b, relax.VarBinding) else None
            if (isinstance(v, relax.Call) and v.op.same_as(call_tir) and len(v.args) == 2
                    and isinstance(v.args[1], relax.Tuple) and len(v.args[1].fields) == 1
                    and v.args[1].fields[0] in by_var):
                w = v.args[1].fields[0]
                out, src = _tensor_info(b.var.ty), _tensor_info(w.ty)
                if out is not None and src is not None and np.prod(out[0]) <= _MAX_GROWTH * max(np.prod(src[0]), 1):
                    fname = v.args[0].name_hint
                    key = f"{by_var[w]}/{fname}"
                    if key not in lifted:
                        lifted[key] = relax.Var(f"{w.name}_{fname}", b.var.ty)
                        plan_new.append(WeightParam(by_var[w], out[0], out[1], mod[v.args[0]], fname))
                    bindings.append(relax.VarBinding(b.var, lifted[key]))
                    continue
            bindings.append(b)
        blocks.append(relax.DataflowBlock(bindings) if isinstance(block, relax.DataflowBlock)
                      else relax.BindingBlock(bindings))
    plan = [WeightParam(i, *_tensor_info(w.ty)) for i, w in enumerate(wparams)]
    if not lifted:
        return mod, plan
    body = relax.SeqExpr(blocks, func.body.body)
    free = set(relax.analysis.free_vars(body))
    keep = [i for i, w in enumerate(wparams) if w in free]  # weights read by more than their transforms
    new = relax.Function(inputs + [wparams[i] for i in keep] + list(lifted.values()), body,
                         func.ret_ty, func.is_pure, func.attrs)
    mod = tvm.IRModule({gv: f for gv, f in mod.functions.items()}, attrs=mod.attrs)
    mod["main"] = new
    mod = relax.transform.DeadCodeElimination()(relax.transform.CanonicalizeBindings()(mod))
    return mod, [plan[i] for i in keep] + plan_new


@relax.expr_functor.mutator
class _ConstantLifter(relax.PyExprMutator):
    """Replaces constants of at least `min_bytes` by new variables (one per constant object)."""

    def __init__(self, mod: tvm.IRModule, min_bytes: int):
        super().__init__(mod)
        self.min_bytes = min_bytes
        self.lifted: dict = {}  # constant -> (its new variable, its value)

    def visit_generic_const_(self, c):
        arr = c.value
        if not isinstance(arr, tvm.runtime.Tensor) or not isinstance(c.ty, relax.TensorType):
            return c
        nbytes = int(np.prod(arr.shape, dtype=np.int64)) * np.dtype(str(arr.dtype)).itemsize
        if nbytes < self.min_bytes:
            return c
        if c not in self.lifted:
            self.lifted[c] = (relax.Var(f"edgec_const{len(self.lifted)}", c.ty), arr)
        return self.lifted[c][0]


def lift_large_constants(mod: tvm.IRModule, min_bytes: int) -> tuple[tvm.IRModule, list[WeightParam]]:
    """Turn constants of `main` of at least `min_bytes` into new weight parameters (after the
    existing ones); returns the module and their plan entries (`value` set), in order."""
    func = mod["main"]
    lifter = _ConstantLifter(mod, min_bytes)
    body = lifter.visit_expr(func.body)
    if not lifter.lifted:
        return mod, []
    new_vars = [v for v, _ in lifter.lifted.values()]
    new = relax.Function(list(func.params) + new_vars, body, func.ret_ty, func.is_pure, func.attrs)
    mod = tvm.IRModule({gv: f for gv, f in mod.functions.items()}, attrs=mod.attrs)
    mod["main"] = new
    plan = [WeightParam(-1, tuple(int(d) for d in arr.shape), str(arr.dtype), label=v.name, value=arr)
            for v, arr in lifter.lifted.values()]
    return mod, plan


def write_weight_plan(plan: list[WeightParam], sources: list[tuple[str, object]], path: str | Path) -> list[dict]:
    """Write the weight parameters of `plan` to the weights file `path`. `sources`: the lowered
    function's weights as (name, onnx-ir tensor), in parameter order. Plain weights are copied;
    transformed ones are computed here on the host, one at a time; lifted constants are written
    from their values."""
    funcs = list({id(p.func): p.func for p in plan if p.func is not None}.values())
    built = {}
    if funcs:
        tir = tvm.IRModule({f"edgec_weight_transform{i}": f.with_attr("global_symbol", f"edgec_weight_transform{i}")
                            for i, f in enumerate(funcs)})
        lib = tvm.compile(tir, target=tvm.target.Target("llvm"))
        built = {id(f): lib[f"edgec_weight_transform{i}"] for i, f in enumerate(funcs)}

    def transformed(p: WeightParam):
        def compute() -> np.ndarray:
            src = source_array(sources[p.source][1])
            out = tvm.runtime.empty(p.shape, p.dtype, tvm.cpu())
            built[id(p.func)](tvm.runtime.from_dlpack(src), out)
            del src  # unmapped before the result is written
            return np.from_dlpack(out)  # no copy
        return compute

    items = []
    for p in plan:
        if p.value is not None:
            items.append((p.label, (lambda v=p.value: np.from_dlpack(v)), p.shape, p.dtype))
            continue
        name, t = sources[p.source]
        if p.func is None:
            items.append((name, t, p.shape, p.dtype))
        else:
            items.append((f"{name}/{p.label}", transformed(p), p.shape, p.dtype))
    return write_weights(items, path)
