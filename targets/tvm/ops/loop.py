"""ONNX `Loop` with a run-time trip count or condition -> private recursive Relax functions.

`unroll-loop` unrolls a Loop whose trip count is known at compile time. What is left reaches
`lower_loop`. Relax has no while loop, and the VM runs each call on the native stack, so one
call per iteration would overflow it after a few thousand iterations. Instead, with s = (i, cond,
v_1..v_n) and `go(s)` = cond and i < M (either check absent when the Loop has no M / cond):

    step(s)     = go(s) ? (i + 1, body(i, cond, v_1..v_n)) : s          # one iteration
    run(s, d)   = d == 0 ? step(s) : rep(s, d - 1, F)                   # up to F**d iterations
    rep(s, d, k)= k != 0 and go(s) ? rep(run(s, d), d, k - 1) : s       # run(., d) k times

and the Loop is rep((0, cond_0, v_initial), D, -1): F**D iterations per frame of the outermost
recursion, about F * D frames deep inside (F = 16, D = 6: 16.7M iterations per frame). Every
function also takes M and the outer values the body reads. The body is lowered with edgec's own
lowerings into `step`, so its pure parts fuse and get schedules like the main graph.
Loop-carried values must keep one static shape and dtype. Not supported (one-line
`Unsupported`, exit 2): scan outputs (their length is the run-time trip count), a Loop with
neither M nor a condition (it never ends).

A Loop without an initial condition starts with cond = true and still stops when the body's
condition turns false, as onnxruntime runs it (and as `unroll-loop` counts trips). The ONNX
specification calls that Loop a for loop whose body condition is ignored, and onnx's reference
evaluator runs it zero times: three readings; edgec follows the runtime users validate on.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import onnx_ir as ir
from tvm import relax

from edgec.targets.tvm.guards import thread_guards
from edgec.targets.tvm.lower_context import LowerContext, const, shape_of, shape_of_type
from edgec.targets.tvm.ops import Unsupported
from edgec.targets.tvm.ops.control import as_tensor, describe_type

_R = relax.op

LowerGraph = Callable[[ir.Graph], None]

_I64 = relax.TensorType([], "int64")
_BOOL = relax.TensorType([], "bool")


def _body(node: ir.Node) -> ir.Graph:
    a = node.attributes.get("body")
    if a is None or a.type != ir.AttributeType.GRAPH:
        raise Unsupported("the Loop has no body graph")
    return a.as_graph()


def _scalar(ctx: LowerContext, x: relax.Expr | None, dtype: str, what: str) -> relax.Expr | None:
    """`x` as a scalar of `dtype` (None stays None: the input is absent)."""
    if x is None:
        return None
    ty = getattr(x, "ty", None)
    shape = shape_of(x) if isinstance(ty, relax.TensorType) else None
    if shape is None or int(np.prod(shape, dtype=np.int64)) != 1:
        raise Unsupported(f"the {what} is {describe_type(ty)}, not a single-element tensor")
    if str(ty.dtype) != dtype:
        x = ctx.bb.emit(_R.not_equal(x, const(np.zeros((), str(ty.dtype)))) if dtype == "bool"
                        else _R.astype(x, dtype))
    if shape:
        x = ctx.bb.emit(_R.reshape(x, []))
    return x


def _carried_type(x: relax.Expr, i: int) -> relax.TensorType:
    ty = getattr(x, "ty", None)
    if not isinstance(ty, relax.TensorType) or shape_of(x) is None:
        raise Unsupported(f"loop-carried value {i} is {describe_type(ty)}, not a tensor of static shape")
    return relax.TensorType(list(shape_of(x)), str(ty.dtype))


def _same(a: relax.TensorType, b) -> bool:
    return (isinstance(b, relax.TensorType) and str(a.dtype) == str(b.dtype)
            and shape_of_type(a) == shape_of_type(b))


_FANOUT, _DEPTH = 16, 6


def _go(bb: relax.BlockBuilder, i: relax.Var, c: relax.Var, trips: relax.Var | None) -> relax.Expr:
    """Whether the next iteration runs: cond and i < M (no M: cond alone)."""
    if trips is None:
        return c
    return bb.emit(_R.logical_and(c, bb.emit(_R.less(i, trips))))


def _unpack(bb: relax.BlockBuilder, t: relax.Expr, n: int) -> list[relax.Expr]:
    return [bb.emit(relax.TupleGetItem(t, k)) for k in range(n)]


def lower_loop(ctx: LowerContext, node: ir.Node, inputs: list, lower_graph: LowerGraph) -> list[relax.Expr]:
    body = _body(node)
    n_carried = len(node.inputs) - 2
    if n_carried < 0 or len(body.inputs) != n_carried + 2:
        raise Unsupported(f"the body has {len(body.inputs)} inputs for {max(n_carried, 0)} loop-carried values")
    n_scan = len(body.outputs) - 1 - n_carried
    if n_scan < 0:
        raise Unsupported(f"the body has {len(body.outputs)} outputs for {n_carried} loop-carried values")
    if n_scan:
        raise Unsupported(f"the Loop has {n_scan} scan output(s) and a trip count only known at run time; "
                          "edgec supports run-time Loops over loop-carried values only (fix the trip count "
                          "with --input-shape if it follows from the input shapes)")
    bb = ctx.bb
    trips = _scalar(ctx, inputs[0] if inputs else None, "int64", "trip count M")
    cond0 = _scalar(ctx, inputs[1] if len(inputs) > 1 else None, "bool", "initial condition")
    if trips is None and cond0 is None:
        raise Unsupported("the Loop has neither a trip count nor a condition: it never ends")
    carried = list(inputs[2:])
    if any(x is None for x in carried):
        raise Unsupported("a loop-carried initial value is absent")
    tys = [_carried_type(x, k) for k, x in enumerate(carried)]
    name = re.sub(r"\W", "_", node.name or "Loop")

    i_var, c_var = relax.Var("iter", _I64), relax.Var("cond", _BOOL)
    state = [i_var, c_var, *[relax.Var(f"v{k}", t) for k, t in enumerate(tys)]]
    trips_var = relax.Var("trips", _I64) if trips is not None else None
    extra = [trips_var] if trips_var is not None else []
    ret = relax.TupleType([_I64, _BOOL, *tys])
    step_fn, outer = _step(ctx, body, state, extra, ret, lower_graph)
    step_gv = bb.add_func(step_fn, f"{name}_step")
    passed = [*extra, *outer]  # every function's trailing parameters, passed on unchanged
    d_var, k_var = relax.Var("depth", _I64), relax.Var("count", _I64)
    run_params, rep_params = [*state, *passed, d_var], [*state, *passed, d_var, k_var]
    run_gv = bb.add_func(_placeholder(run_params, state, ret), f"{name}_run")
    rep_gv = bb.add_func(_placeholder(rep_params, state, ret), f"{name}_rep")
    n = len(state)

    def run_then():
        return bb.emit(relax.Call(step_gv, [*state, *passed]))

    def run_else():
        d1 = bb.emit(_R.subtract(d_var, const(np.array(1, np.int64))))
        return bb.emit(relax.Call(rep_gv, [*state, *passed, d1, const(np.array(_FANOUT, np.int64))]))

    def rep_then():
        s2 = _unpack(bb, bb.emit(relax.Call(run_gv, [*state, *passed, d_var])), n)
        k1 = bb.emit(_R.subtract(k_var, const(np.array(1, np.int64))))
        return bb.emit(relax.Call(rep_gv, [*s2, *passed, d_var, k1]))

    def run_cond():
        return bb.emit(_R.equal(d_var, const(np.array(0, np.int64))))

    def rep_cond():
        go = _go(bb, i_var, c_var, trips_var)
        return bb.emit(_R.logical_and(go, bb.emit(_R.not_equal(k_var, const(np.array(0, np.int64))))))

    bb.update_func(run_gv, _branching(bb, run_params, ret, run_cond, run_then, run_else))
    bb.update_func(rep_gv, _branching(bb, rep_params, ret, rep_cond, rep_then, lambda: relax.Tuple(state)))
    start = [const(np.array(0, np.int64)), cond0 if cond0 is not None else const(np.array(True)),
             *carried, *([trips] if trips is not None else []), *outer,
             const(np.array(_DEPTH, np.int64)), const(np.array(-1, np.int64))]
    res = bb.emit(relax.Call(rep_gv, start))
    return [bb.emit(relax.TupleGetItem(res, 2 + k)) for k in range(n_carried)]


def _branching(bb: relax.BlockBuilder, params: list[relax.Var], ret: relax.TupleType, cond, then, other
               ) -> relax.Function:
    """fn(params) = cond() ? then() : other(), each callback emitting into its own block."""
    bb.begin_scope(params)
    try:
        blocks = []
        for make in (cond, then, other):
            bb._begin_binding_block()
            try:
                expr = make()
            finally:
                blocks.append(bb._end_block())
            if make is cond:
                flag = expr
            elif make is then:
                yes = relax.SeqExpr([blocks[-1]], expr)
            else:
                no = relax.SeqExpr([blocks[-1]], expr)
    finally:
        bb.end_scope()
    fn = relax.Function(params, relax.SeqExpr([blocks[0]], relax.If(flag, yes, no)), ret_ty=ret)
    return relax.utils.copy_with_new_vars(fn)


def _step(ctx: LowerContext, body: ir.Graph, state: list[relax.Var], extra: list[relax.Var],
          ret: relax.TupleType, lower_graph: LowerGraph) -> tuple[relax.Function, list[relax.Var]]:
    """step(state, M, outer) = go(state) ? (i + 1, body(state)) : state, with the body lowered by
    edgec; also returns the outer values the body reads (the function's last parameters)."""
    bb = ctx.bb
    i_var, c_var, v_vars = state[0], state[1], state[2:]
    values, constants, guards = dict(ctx.values), dict(ctx.constants), ctx.guards
    ctx.guards = []
    bb.begin_scope([*state, *extra])
    bb._begin_binding_block()
    open_block = True
    try:
        go = _go(bb, i_var, c_var, extra[0] if extra else None)
        head = bb._end_block()
        bb._begin_binding_block()
        ctx.values[body.inputs[0].name] = i_var
        ctx.values[body.inputs[1].name] = c_var
        for bv, v in zip(body.inputs[2:], v_vars):
            ctx.values[bv.name] = v
        lower_graph(body)
        outs = [as_tensor(ctx, ctx.values[v.name]) for v in body.outputs]
        for k, (v, o) in enumerate(zip(v_vars, outs[1:])):
            if not _same(v.ty, getattr(o, "ty", None)):
                raise Unsupported(f"loop-carried value {k} enters as {describe_type(v.ty)} and leaves the body as "
                                  f"{describe_type(getattr(o, 'ty', None))}; edgec needs one static shape and dtype")
        cond_next = _scalar(ctx, outs[0], "bool", "body's condition output")
        if ctx.guards:  # checks inside the body run on every iteration
            cond_next = thread_guards(bb, ctx.guards, cond_next)
        i_next = bb.emit(_R.add(i_var, const(np.array(1, np.int64))))
        result = bb.emit(relax.Tuple([i_next, cond_next, *outs[1:]]))
        step = bb._end_block()
        open_block = False
    finally:
        if open_block:
            bb._end_block()
        bb.end_scope()
        ctx.values, ctx.constants, ctx.guards = values, constants, guards
    own = {*state, *extra}
    outer = [v for v in relax.analysis.free_vars(relax.SeqExpr([step], result)) if v not in own]
    if_ = relax.If(go, relax.SeqExpr([step], result), relax.SeqExpr([], relax.Tuple(list(state))))
    fn = relax.Function([*state, *extra, *outer], relax.SeqExpr([head], if_), ret_ty=ret)
    return relax.utils.copy_with_new_vars(fn), outer


def _placeholder(params: list[relax.Var], state: list[relax.Var], ret: relax.TupleType) -> relax.Function:
    """A function of the right signature returning its state: it types the GlobalVar that calls
    refer to before the real function exists; `update_func` then replaces it."""
    fn = relax.Function(params, relax.SeqExpr([], relax.Tuple(list(state))), ret_ty=ret)
    return relax.utils.copy_with_new_vars(fn)
