"""ONNX `If` -> Relax `If`: a runtime condition selects one of two branches at run time.

`lower_model` calls `lower_if` itself (it carries subgraphs, so it is not in the lowering table):
each branch is lowered with edgec's own lowerings into a SeqExpr of its own (its bindings run only
when the branch is taken), with the outer scope's values visible. A constant condition lowers only
the branch it takes, inline. Both branches must give every output the same static shape and dtype
(Relax would otherwise type the result with an unknown shape); anything else is `Unsupported`
(exit 2). A function containing an If is built from plain binding blocks and `lower_model` runs
`ConvertToDataflow` afterwards, so fusion still sees the pure parts as dataflow blocks.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import onnx_ir as ir
from tvm import relax

from edgec.ir.domains import is_onnx_domain
from edgec.targets.tvm.guards import thread_guards
from edgec.targets.tvm.lower_context import LowerContext, const, shape_of, shape_of_type
from edgec.targets.tvm.ops import Unsupported

_R = relax.op

# lower_graph(graph): lower `graph`'s initializers and nodes into the current block of ctx.bb
LowerGraph = Callable[[ir.Graph], None]


def has_control_flow(graph: ir.Graph) -> bool:
    """True if `graph` (not counting its subgraphs) holds an If or Loop that lower_if / lower_loop
    may lower: those need plain binding blocks."""
    return any(n.op_type in ("If", "Loop") and is_onnx_domain(n.domain) for n in graph)


def _branch(node: ir.Node, key: str) -> ir.Graph:
    a = node.attributes.get(key)
    if a is None or a.type != ir.AttributeType.GRAPH:
        raise Unsupported(f"the If has no {key} graph")
    g = a.as_graph()
    if len(g.outputs) != len(node.outputs):
        raise Unsupported(f"{key} has {len(g.outputs)} outputs, the If {len(node.outputs)}")
    return g


def as_tensor(ctx: LowerContext, expr: relax.Expr) -> relax.Expr:
    if isinstance(getattr(expr, "ty", None), relax.ShapeType):
        return ctx.bb.emit(_R.shape_to_tensor(expr))
    return expr


def _lower_branch_inline(ctx: LowerContext, g: ir.Graph, lower_graph: LowerGraph) -> list[relax.Expr]:
    lower_graph(g)
    return [as_tensor(ctx, ctx.values[v.name]) for v in g.outputs]


def describe_type(ty) -> str:
    if isinstance(ty, relax.TensorType):
        s = shape_of_type(ty)
        return f"{'?' if s is None else list(s)} {ty.dtype}"
    return type(ty).__name__


def _as_call(ctx: LowerContext, seq: relax.SeqExpr, name: str) -> relax.SeqExpr:
    """The branch body `seq` as a private Relax function of the outer values it reads, and a
    SeqExpr calling it: FuseOps fuses the dataflow blocks of every function, not those nested
    in an If, so a branch of its own fuses (and is scheduled) like the main graph."""
    free = list(relax.analysis.free_vars(seq))
    fn = relax.utils.copy_with_new_vars(relax.Function(free, seq, ret_ty=seq.body.ty))
    gv = ctx.bb.add_func(fn, re.sub(r"\W", "_", name))
    return relax.SeqExpr([], relax.Call(gv, free))


def _lower_branch(ctx: LowerContext, g: ir.Graph, key: str, lower_graph: LowerGraph, node_name: str):
    """Lower branch `g` into a function of its own; returns (a SeqExpr calling it, output types)."""
    bb = ctx.bb
    values, constants, guards = dict(ctx.values), dict(ctx.constants), ctx.guards
    ctx.guards = []
    bb.begin_scope()
    bb._begin_binding_block()
    closed = False
    try:
        outs = _lower_branch_inline(ctx, g, lower_graph)
        for i, (v, o) in enumerate(zip(g.outputs, outs)):
            if not isinstance(getattr(o, "ty", None), relax.TensorType) or shape_of(o) is None:
                raise Unsupported(f"{key} output {i} ('{v.name}') is {describe_type(getattr(o, 'ty', None))}, "
                                  "not a tensor of static shape")
        if ctx.guards:  # checks inside the branch run only when it is taken
            outs[0] = thread_guards(bb, ctx.guards, outs[0])
        body = outs[0] if len(outs) == 1 else bb.emit(relax.Tuple(outs))
        block = bb._end_block()
        closed = True
        return _as_call(ctx, relax.SeqExpr([block], body), f"{node_name}_{key}"), [o.ty for o in outs]
    finally:
        if not closed:
            bb._end_block()
        bb.end_scope()
        ctx.values, ctx.constants, ctx.guards = values, constants, guards


def _condition(ctx: LowerContext, node: ir.Node, cond: relax.Expr | None) -> relax.Expr:
    ty = getattr(cond, "ty", None)
    if not isinstance(ty, relax.TensorType):
        raise Unsupported(f"the condition is {describe_type(ty)}, not a tensor")
    shape = shape_of(cond)
    if shape is None or int(np.prod(shape, dtype=np.int64)) != 1:
        raise Unsupported(f"the condition has shape {'?' if shape is None else shape}, not a single element")
    if str(ty.dtype) != "bool":
        cond = ctx.bb.emit(_R.not_equal(cond, const(np.zeros((), str(ty.dtype)))))
    if shape:
        cond = ctx.bb.emit(_R.reshape(cond, []))
    return cond


def lower_if(ctx: LowerContext, node: ir.Node, inputs: list, lower_graph: LowerGraph) -> list[relax.Expr]:
    """The If's outputs: a constant condition inlines the taken branch, a runtime one builds
    a Relax If over both branches."""
    then_g, else_g = _branch(node, "then_branch"), _branch(node, "else_branch")
    c = ctx.const_array(node.inputs[0]) if node.inputs else None
    if c is not None:
        if c.size != 1:
            raise Unsupported(f"the condition has shape {list(c.shape)}, not a single element")
        return _lower_branch_inline(ctx, then_g if bool(c.reshape(-1)[0]) else else_g, lower_graph)
    cond = _condition(ctx, node, inputs[0] if inputs else None)
    then_seq, then_tys = _lower_branch(ctx, then_g, "then_branch", lower_graph, node.name or "If")
    else_seq, else_tys = _lower_branch(ctx, else_g, "else_branch", lower_graph, node.name or "If")
    for i, (a, b) in enumerate(zip(then_tys, else_tys)):
        if shape_of_type(a) != shape_of_type(b) or str(a.dtype) != str(b.dtype):
            raise Unsupported(f"output {i} is {describe_type(a)} in then_branch but {describe_type(b)} in else_branch; "
                              "edgec needs both branches to give the same static shape and dtype")
    out = ctx.bb.emit(relax.If(cond, then_seq, else_seq))
    if len(node.outputs) == 1:
        return [out]
    return [ctx.bb.emit(relax.TupleGetItem(out, i)) for i in range(len(node.outputs))]
