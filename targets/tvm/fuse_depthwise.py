"""Fuse a blocked depthwise conv (and its elementwise epilogue) into the 1x1 conv that reads it,
before FuseOps: one kernel computes each output row tile's depthwise values for all channels,
keeps them in cache, and runs the pointwise conv on them (schedules/dwconv_pointwise.py). The
depthwise output of an inverted-residual block (MobileNetV2) is never written to memory and read
back, and the pair costs one fork-join of the thread pool instead of two.

FuseOps never puts two convs in one kernel, so the chain is grouped here: the kernels from the
depthwise conv through the elementwise ones (bias, activation) to the 1x1 conv and its
elementwise epilogue (bias, residual add) become one Primitive Relax function, which FuseTIR
turns into one PrimFunc. Only such chains: each value passed along is used once (the depthwise
output is needed nowhere else), every shape static, the next conv pointwise (a 3x3 conv would
read the neighbouring rows' depthwise values).
"""

from __future__ import annotations

import tvm
from tvm import relax, s_tir

from edgec.targets.tvm import relax_bindings as rb
from edgec.targets.tvm.layout import CONV_BLOCK, DWCONV_BLOCK

_ELEMENTWISE = 1  # OpPatternKind kBroadcast and below


def _blocks(func: tvm.tirx.PrimFunc) -> dict:
    """Root block name -> its loop extents."""
    try:
        sch = s_tir.Schedule(func)
        return {sch.get(b).name_hint: [int(sch.get(lp).extent) for lp in sch.get_loops(b)]
                for b in sch.get_child_blocks(sch.get_sblock("root"))}
    except Exception:  # noqa: BLE001 - no root block, symbolic extents: not a kernel fused here
        return {}


def _func_kind(func) -> str | None:
    if not isinstance(func, tvm.tirx.PrimFunc):
        return None
    blocks = _blocks(func)
    if DWCONV_BLOCK in blocks and CONV_BLOCK not in blocks:
        return "depthwise"
    if CONV_BLOCK in blocks and DWCONV_BLOCK not in blocks:
        return "pointwise" if blocks[CONV_BLOCK][-2:] == [1, 1] else None
    pattern = func.attrs.get("op_pattern") if func.attrs is not None else None
    return "elementwise" if pattern is not None and int(pattern) <= _ELEMENTWISE else None


def _kind(kinds: dict, call) -> str | None:
    """'depthwise', 'pointwise', 'elementwise' or None for a binding value (`kinds`: per kernel)."""
    if not (isinstance(call, relax.Call) and isinstance(call.op, tvm.ir.Op) and call.op.name == "relax.call_tir"):
        return None
    return kinds.get(call.args[0].name_hint)


def _shape(var) -> list[int] | None:
    try:
        return [int(d) for d in var.ty.shape]
    except (AttributeError, TypeError):  # symbolic or unknown
        return None


def _tensor_vars(call) -> list:
    return [a for a in rb.call_tir_args(call) if isinstance(a, relax.Var)]


def _use_counts(func: relax.Function, bindings) -> dict:
    uses: dict = {}

    @relax.expr_functor.visitor
    class _Count(relax.PyExprVisitor):
        def visit_var_(self, var):  # noqa: N802
            uses[var] = uses.get(var, 0) + 1

        def visit_dataflow_var_(self, var):  # noqa: N802
            uses[var] = uses.get(var, 0) + 1

    counter = _Count()
    for b in bindings:
        counter.visit_expr(b.value)
    counter.visit_expr(func.body.body)
    return uses


def _chain_from(b, producer, uses, consumers, kinds) -> list | None:
    """The bindings [depthwise, elementwise..., pointwise, elementwise...] whose pointwise conv is
    binding `b`, or None. Every value passed along the chain has one use."""
    v = b.value.args[1].fields[0]
    back = []
    while isinstance(v, relax.Var) and uses.get(v, 0) == 1 and v in producer:
        kind = _kind(kinds, producer[v].value)
        back.append(producer[v])
        if kind == "depthwise":
            break
        inputs = [a for a in _tensor_vars(producer[v].value) if a in producer]
        if kind != "elementwise" or len(inputs) != 1 or len(_tensor_vars(producer[v].value)) != 1:
            return None
        v = inputs[0]
    else:
        return None
    chain = [*reversed(back), b]
    if any(_shape(c.var) != _shape(chain[0].var) for c in chain[1:-1]):
        return None  # an elementwise kernel between the convs grows the depthwise values (broadcast)
    shape = _shape(b.var)
    while uses.get(chain[-1].var, 0) == 1 and chain[-1].var in consumers:
        nxt = consumers[chain[-1].var]
        if _kind(kinds, nxt.value) != "elementwise" or _shape(nxt.var) != shape:
            break
        chain.append(nxt)
    return chain


def depthwise_chains(mod: tvm.IRModule, func: relax.Function, threads: int = 1) -> list[list]:
    """Binding chains depthwise conv -> elementwise kernels -> 1x1 conv -> elementwise kernels
    whose output rows split evenly over `threads` (the rule's parallel loop runs over rows: 7x7
    pairs on 2 threads, 4 rows against 3, measured no faster fused than apart)."""
    kinds = {gv.name_hint: _func_kind(f) for gv, f in mod.functions.items()}
    bindings = rb.bindings(func)
    producer = {b.var: b for b in bindings}
    uses = _use_counts(func, bindings)
    consumers = {}
    for b in bindings:
        if isinstance(b.value, relax.Call) and b.value.op == tvm.ir.Op.get("relax.call_tir"):
            for a in _tensor_vars(b.value):
                consumers.setdefault(a, b)
    chains = []
    for b in bindings:
        if _kind(kinds, b.value) != "pointwise" or not isinstance(b.value.args[1], relax.Tuple):
            continue
        shape = _shape(b.var)  # [N, C/b, H, W, b]
        if shape is not None and len(shape) == 5 and shape[2] % threads == 0:
            chain = _chain_from(b, producer, uses, consumers, kinds)
            if chain is not None:
                chains.append(chain)
    return chains


def _group_function(bb: relax.BlockBuilder, chain: list, index: int):
    """A Primitive Relax function running the chain's kernels (FuseTIR makes it one PrimFunc);
    returns (its GlobalVar, the outside values it takes)."""
    inside = {b.var for b in chain}
    outside = []  # values from outside, constants too (FuseTIR takes no constant in a Primitive function)
    for b in chain:
        for a in rb.call_tir_args(b.value):
            if a not in inside and all(not a.same_as(o) for o in outside):
                outside.append(a)
    params = [relax.Var(f"p{i}", a.ty) for i, a in enumerate(outside)]
    remap = {a: p for a, p in zip(outside, params)}
    lookup = lambda a: next((p for o, p in remap.items() if o.same_as(a)), a)  # noqa: E731
    sub = relax.BlockBuilder()
    name = f"fused_depthwise_pointwise{index}"
    with sub.function(name, params, attrs={"Primitive": True}, private=True):
        with sub.dataflow():
            last = None
            for b in chain:
                call = b.value
                args = relax.Tuple([lookup(a) for a in rb.call_tir_args(call)])
                last = remap[b.var] = sub.emit(relax.Call(call.op, [call.args[0], args], call.attrs, call.ty_args))
            out = sub.emit_output(last)
        sub.emit_func_output(out)
    func = next(f for f in sub.get().functions.values())
    return bb.add_func(func, name), outside  # the same chain twice (equal shapes): one function


def fuse_depthwise_into_pointwise(threads: int):
    """The module pass, for kernels whose parallel loops are split over `threads` threads."""
    return tvm.transform.module_pass(lambda mod, _ctx: _fuse(mod, threads), opt_level=0,
                                     name="FuseDepthwiseIntoPointwise")


def _fuse(mod: tvm.IRModule, threads: int) -> tvm.IRModule:
    gv_main = next((gv for gv in mod.functions if gv.name_hint == "main"), None)
    if gv_main is None or not isinstance(mod[gv_main], relax.Function):
        return mod
    main = mod[gv_main]
    chains = depthwise_chains(mod, main, threads)
    if not chains:
        return mod
    bb = relax.BlockBuilder(mod)
    dropped, replaced = set(), {}
    for i, chain in enumerate(chains):
        gv, outside = _group_function(bb, chain, i)
        dropped.update(b.var for b in chain[:-1])
        replaced[chain[-1].var] = relax.Call(gv, outside)

    @relax.expr_functor.mutator
    class _Group(relax.PyExprMutator):
        def visit_var_binding_(self, binding):  # noqa: N802
            if binding.var in dropped:
                return None
            if binding.var in replaced:
                self.builder_.emit_normalized(
                    relax.VarBinding(binding.var, self.builder_.normalize(replaced[binding.var])))
                return None
            return super().visit_var_binding_(binding)

    out = bb.get()
    mutator = _Group(out)
    new_main = mutator.visit_expr(main)
    out = mutator.builder_.get()
    out[gv_main] = new_main
    return out
