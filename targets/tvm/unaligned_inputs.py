"""Graph inputs read in place at any element-aligned address.

TVM's kernels assume every tensor argument 64-byte aligned: the argument binder marks each data
pointer with its buffer's `data_alignment`, and LLVM then emits aligned vector moves, which fault
on any other address. A caller's numpy array is seldom 64-byte aligned (glibc serves large
allocations 16 bytes into a page), so the runtime copied such an input before every call: 50-110
us per call for a 224x224 image on MobileNetV2 (2-4% of its latency), a cold copy of 600 KiB.

`relax_input_alignment` lowers the alignment of the kernel parameters that receive a graph input
to the element size: the input passed straight to `call_tir`, or through a reshape (a view of the
same memory in the VM). It returns the inputs whose every use it could follow and relax; an input
used any other way (a packed call, a nested function, an in-place kernel) keeps the copy. Only the
alignment the compiler may assume changes: the kernels read the same elements. It runs last
before `tvm.compile`, and follows the views tvm.compile will make of reshape kernels.
"""

from __future__ import annotations

import tvm
import tvm_ffi
from tvm import relax
from tvm.s_tir.stmt import MatchBufferRegion
from tvm.tirx.buffer import BufferType, is_buffer_var

from edgec.targets.tvm.relax_bindings import bindings, call_tir_args

# bindings that give another name to the same memory: their result is followed like the input
_VIEWS = ("relax.reshape", "relax.memory.view")


def relax_input_alignment(mod: tvm.IRModule) -> tuple[tvm.IRModule, frozenset[int]]:
    """(`mod` with the kernel parameters fed by `main`'s graph inputs element-aligned, the indices
    of the inputs that may be passed at any element-aligned address)."""
    if "main" not in [gv.name_hint for gv in mod.get_global_vars()] or not isinstance(mod["main"], relax.Function):
        return mod, frozenset()
    # tvm.compile turns reshape kernels into views of their input (RewriteDataflowReshape; the VM's
    # vm.builtin.reshape), so the kernels reading such a view read the caller's memory too (a
    # GPT-2 decoder's attention-mask kernel read `input_ids` that way and faulted on a misaligned
    # array). The uses are collected on the module as it is and as that rewrite leaves it; the
    # module itself is not rewritten here (tvm.compile legalizes before it rewrites).
    uses, unsafe = _input_uses(mod["main"])
    more, unsafe_views = _input_uses(relax.transform.RewriteDataflowReshape()(mod)["main"])
    for key, inputs in more.items():
        uses.setdefault(key, set()).update(inputs)
    unsafe |= unsafe_views
    relaxed: set[int] = set()
    if uses:
        mod = mod.clone()  # the caller's module stays as it was
    for (name, j), inputs in sorted(uses.items()):
        if inputs & unsafe:
            continue
        gv = mod.get_global_var(name)
        func = mod[gv]
        if not isinstance(func, tvm.tirx.PrimFunc) or j >= len(func.params) or not is_buffer_var(func.params[j]) \
                or _matched(func, func.params[j]):
            unsafe |= inputs
            continue
        mod[gv] = _element_aligned(func, j)
        relaxed |= inputs
    return mod, frozenset(relaxed - unsafe)


def _input_uses(main: relax.Function) -> tuple[dict[tuple[str, int], set[int]], set[int]]:
    """((kernel name, parameter position) -> the graph inputs it receives, directly or through a
    view; the inputs also used some other way)."""
    n = int(main.attrs["num_input"]) if main.attrs is not None and "num_input" in main.attrs else len(main.params)
    alias = {p: i for i, p in enumerate(main.params[:n])}
    uses: dict[tuple[str, int], set[int]] = {}
    unsafe: set[int] = set()
    for binding in bindings(main):  # the returned value is read by the caller, not a kernel
        value = binding.value
        if isinstance(value, relax.Var) and value in alias:  # a plain rebinding or a match_cast
            alias[binding.var] = alias[value]
            continue
        if isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op):
            op = value.op.name
            if op in _VIEWS and value.args and isinstance(value.args[0], relax.Var) and value.args[0] in alias:
                alias[binding.var] = alias[value.args[0]]
                if not any(_mentions(a, alias) for a in value.args[1:]):
                    continue
            elif op == "relax.call_tir" and len(value.args) > 1 and isinstance(value.args[0], tvm.ir.GlobalVar):
                gv = value.args[0]
                for j, a in enumerate(call_tir_args(value)):
                    if isinstance(a, relax.Var) and a in alias:
                        uses.setdefault((gv.name_hint, j), set()).add(alias[a])
                    elif _mentions(a, alias):
                        unsafe.update(_mentioned(a, alias))
                if len(value.args) > 2 and _mentions(value.args[2], alias):
                    unsafe.update(_mentioned(value.args[2], alias))
                continue
        unsafe.update(_mentioned(value, alias))
    return uses, unsafe


def _mentioned(expr, alias: dict) -> set[int]:
    found: set[int] = set()

    def visit(e):
        if isinstance(e, relax.Var) and e in alias:
            found.add(alias[e])

    relax.analysis.post_order_visit(expr, visit)
    return found


def _mentions(expr, alias: dict) -> bool:
    return bool(_mentioned(expr, alias))


def _matched(func: tvm.tirx.PrimFunc, param) -> bool:
    """Whether a block of `func` matches a region of `param` to a buffer of its own (a tensorized
    intrinsic's operand: the int8 dot-product kernels'), which keeps the 64-byte alignment."""
    found = []

    def visit(value, visitor):
        if value.source.source.same_as(param):
            found.append(value)
        return visitor.default_visit(value)

    tvm_ffi.structural_visit(func.body, [(MatchBufferRegion, visit)])
    return bool(found)


def _element_aligned(func: tvm.tirx.PrimFunc, j: int) -> tvm.tirx.PrimFunc:
    """`func` with parameter `j` (a buffer variable) declared aligned to its element size only."""
    param = func.params[j]
    t = param.ty
    elem = max(tvm.DataType(t.dtype).bits // 8, 1)
    new = tvm.tirx.Var(param.name, BufferType(t.dtype, t.storage_scope, t.shape, t.strides, t.elem_offset,
                                                  elem, t.offset_factor, t.layout, t.allocated_addr))

    def swap(value, mutator):
        return new if value.same_as(param) else mutator.default_mutate(value)

    return tvm_ffi.structural_mutate(func, [(tvm.ir.expr.Var, swap)])
