"""Lower edgec IR to a Relax IRModule, op by op.

Each node goes first to edgec's own lowering table (`edgec.targets.tvm.ops`); where edgec has no
lowering yet, or a lowering declines (returns NotImplemented), the node's converter from TVM's ONNX
frontend is called on the same BlockBuilder. A node neither can lower is an `UnsupportedOpError`
naming the node, op, domain and opset (exit 2), as is a lowering that raises `Unsupported`; any
other exception in edgec's lowering, or Relax rejecting what it emitted, is an `InternalError`
naming the node and op (edgec's bug, exit 1). `LoweringReport` records who lowered what.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir
import tvm
from tvm import relax
from tvm.relax.frontend.onnx import onnx_frontend as fe

from edgec.errors import (
    EdgecError,
    InternalError,
    ModelValidationError,
    UnsupportedOpError,
    UnsupportedTypeError,
)
from edgec.ir.analysis import dim_label
from edgec.ir.constants import constant_node_array
from edgec.ir.domains import is_onnx_domain, normalized_opsets, onnx_opset
from edgec.ir.evaluate import NONDETERMINISTIC, evaluate_node
from edgec.targets.tvm import half, symbolic
from edgec.targets.tvm.guards import thread_guards
from edgec.targets.tvm.lower_context import LowerContext, const
from edgec.targets.tvm.ops import LoweringTable, Unsupported, builtin_lowerings, control, loop
from edgec.targets.tvm.weights import as_weight


@dataclass
class LoweringReport:
    by_edgec: Counter = field(default_factory=Counter)
    by_frontend: Counter = field(default_factory=Counter)
    folded: Counter = field(default_factory=Counter)
    weights: list[str] = field(default_factory=list)  # initializers passed as parameters, in order

    def to_json(self) -> dict:
        out = {"edgec": dict(sorted(self.by_edgec.items())), "tvm-onnx-frontend": dict(sorted(self.by_frontend.items())),
               "folded": dict(sorted(self.folded.items()))}
        if self.weights:
            out["weight_params"] = len(self.weights)
        return out


def _ident(name: str, used: set[str]) -> str:
    base = re.sub(r"\W", "_", name) or "v"
    if not (base[0].isalpha() or base[0] == "_"):
        base = "v_" + base
    out, i = base, 1
    while out in used:
        out, i = f"{base}_{i}", i + 1
    used.add(out)
    return out


_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
           "float16", "float32", "float64", "bfloat16"}


def _tensor_dtype(v: ir.Value, file: str) -> str:
    if v.dtype is None:
        return "float32"
    if v.dtype == ir.DataType.BFLOAT16:
        return "bfloat16"
    try:
        name = str(np.dtype(v.dtype.numpy()))
    except Exception:
        name = v.dtype.name.lower()
    if name not in _DTYPES:
        raise UnsupportedTypeError(f"{file}: graph input/output '{v.name}' has data type {name}, "
                                   f"which edgec's TVM backend does not support")
    return name


def _input_shape(v: ir.Value, file: str, dim_vars: dict[str, tvm.tirx.Var] | None, bounds: dict | None = None) -> list:
    """The input's shape: ints, and for a named or unknown dim a symbolic int64 (one per name,
    shared by every input that names it, within `bounds[name]` = (lo, hi) if given) when
    `dim_vars` is given; else a dynamic dim is an error."""
    if v.shape is None:
        raise ModelValidationError(f"{file}: input '{v.name}' has unknown rank; give it with --input-shape {v.name}=...")
    dims = []
    for i, d in enumerate(v.shape):
        if isinstance(d, int):
            dims.append(d)
            continue
        if dim_vars is None:
            raise ModelValidationError(
                f"{file}: input '{v.name}' has dynamic dimension '{d}'; fix it with --input-shape {v.name}=" +
                ",".join(str(x) if isinstance(x, int) else "N" for x in v.shape))
        name = dim_label(v.name, i, d)
        if name not in dim_vars:
            dim_vars[name] = symbolic.new_dim(re.sub(r"\W", "_", name), (bounds or {}).get(name))
        dims.append(dim_vars[name])
    return dims


def _bound_dims(main: relax.Function, bounds: dict, dim_vars: dict, file: str) -> relax.Function:
    """`--dim NAME=LO..HI`: Relax's memory planning sizes the buffers of a bounded dim for HI
    ("tir_var_upper_bound") instead of allocating per call; a name that is no symbolic input dim
    is an error."""
    unknown = sorted(set(bounds) - set(dim_vars))
    if unknown:
        raise ModelValidationError(f"{file}: --dim {unknown[0]}: the model's symbolic dims are {sorted(dim_vars) or 'none'}")
    return main.with_attr("tir_var_upper_bound", {str(dim_vars[n].name): int(hi) for n, (_, hi) in bounds.items()})


# dtypes a weights file holds (plain numpy dtypes; sub-byte and bfloat16 stay constants)
_WEIGHT_DTYPES = _DTYPES - {"bfloat16"}


def lower_model(model: ir.Model, table: LoweringTable | None = None, weight_min_bytes: int | None = None,
                symbolic: bool = True, cpu: bool = True, dot: str | None = None,
                native_half: bool = False, dim_bounds: dict | None = None) -> tuple[tvm.IRModule, LoweringReport]:
    """Lower `model` to a Relax module with one function `main(inputs..., weights...)`.

    Initializers of at least `weight_min_bytes` (None: none) become parameters after the graph
    inputs (`num_input` counts only the inputs) instead of constants, so their data is never read
    here; `report.weights` lists them in parameter order. Lowerings see them as non-constant.
    With `symbolic`, a named or unknown input dim is a symbolic int64 of main's signature (one per
    name, `edgec.ir.analysis.dim_label`), and shape computations over it are evaluated by
    `symbolic.py`; without, it is an error asking for --input-shape. `cpu` False (a GPU target)
    turns away the lowerings whose hand-written TIR kernels have no thread bindings. `dot` is the
    target's integer dot-product instruction family (`schedules.int8_dot.intrinsic_for`: "vnni",
    "sdot" or None), for the lowerings that lay out int8 weights for it. `native_half`: half.py."""
    table = table or builtin_lowerings()
    file = model.meta.get("edgec.source", model.graph.name or "model")
    g = model.graph
    opset = onnx_opset(model, 1)
    bb = relax.BlockBuilder()
    ctx = LowerContext(bb, opset, file, opset_imports=dict(model.opset_imports), cpu=cpu, dot=dot, native_half=native_half)
    report = LoweringReport()
    used: set[str] = set()
    dim_vars: dict[str, tvm.tirx.Var] | None = {} if symbolic else None
    bounds = dict(dim_bounds or {})
    params = []
    inits = g.initializers
    for v in g.inputs:
        if v.name in inits:
            continue
        dtype = _tensor_dtype(v, file)
        var = relax.Var(_ident(v.name, used), relax.TensorType(_input_shape(v, file, dim_vars, bounds), dtype))
        ctx.values[v.name] = var
        params.append(var)
    num_input = len(params)
    for name, v in inits.items():
        if v.const_value is None:
            continue
        if as_weight(v, weight_min_bytes, _WEIGHT_DTYPES):
            t = v.const_value
            var = relax.Var(_ident(name, used), relax.TensorType([int(d) for d in t.shape], str(np.dtype(t.dtype.numpy()))))
            ctx.values[name] = var
            params.append(var)
            report.weights.append(name)
            continue
        arr = v.const_value.numpy()
        ctx.constants[name] = arr
        if name not in ctx.values:
            ctx.values[name] = const(arr)
    # an If or Loop needs plain binding blocks (Relax has no control flow inside a dataflow block);
    # ConvertToDataflow below regroups the pure bindings into dataflow blocks for fusion
    branches = control.has_control_flow(g)
    try:
        with bb.function("main", params=params):
            with contextlib.nullcontext() if branches else bb.dataflow():
                _lower_nodes(ctx, table, g, report, file)
                outs = []
                for v in g.outputs:
                    if v.name not in ctx.values:
                        raise ModelValidationError(f"{file}: graph output '{v.name}' is not produced by any node")
                    _tensor_dtype(v, file)
                    outs.append(control.as_tensor(ctx, ctx.values[v.name]))
                if ctx.guards:  # runtime checks: the first output passes through them
                    outs[0] = thread_guards(bb, ctx.guards, outs[0])
                result = outs[0] if len(outs) == 1 else relax.Tuple(outs)
                out = bb.emit(result) if branches else bb.emit_output(result)
            bb.emit_func_output(out)
    except BaseException:
        with contextlib.suppress(Exception):
            bb._end_block()  # close the block the scopes left open, or TVM logs a warning on exit
        raise
    mod = bb.get()
    if branches:
        mod = relax.transform.ConvertToDataflow(min_size=1)(mod)
    mod["main"] = mod["main"].with_attr("num_input", num_input)
    if bounds:
        mod["main"] = _bound_dims(mod["main"], bounds, dim_vars or {}, file)
    return mod, report


def _lower_nodes(ctx: LowerContext, table: LoweringTable, g: ir.Graph, report: LoweringReport, file: str) -> None:
    for node in g:
        try:
            _lower_node(ctx, table, node, report, file)
        except EdgecError:
            raise
        except Exception as e:  # Relax rejected what a lowering emitted for this node
            _raise_invalid_node(ctx, node, file, e)
            raise InternalError(f"{file}: lowering node '{node.name or node.op_type}' op '{node.op_type}' "
                                f"produced Relax that TVM rejects: {type(e).__name__}: {_one_line(e)}") from e


def _lower_subgraph(ctx: LowerContext, table: LoweringTable, g: ir.Graph, report: LoweringReport, file: str) -> None:
    """Lower a branch's initializers (as constants) and nodes into the current block; the outer
    scope's values stay visible through ctx.values (their float32 values, ctx.wide, do not: a
    Loop body is a function of its own)."""
    for name, v in g.initializers.items():
        if v.const_value is not None:
            arr = v.const_value.numpy()
            ctx.constants[name] = arr
            ctx.values[name] = const(arr)
    outer, ctx.wide = ctx.wide, {}
    try:
        _lower_nodes(ctx, table, g, report, file)
    finally:
        ctx.wide = outer


def _raise_invalid_node(ctx: LowerContext, node: ir.Node, file: str, cause: Exception) -> None:
    """A node edgec failed to lower is the model's fault (ModelValidationError, exit 2) only when
    onnxruntime refuses it too, on inputs of the same shapes and constants; else the caller
    raises edgec's InternalError."""
    from edgec.reference import node_rejected_by_onnxruntime

    if node.domain == "edgec":  # an op edgec's passes made: never the model's fault
        return
    opsets = normalized_opsets(ctx.opset_imports or {"": ctx.opset})
    why = node_rejected_by_onnxruntime(node, opsets, ctx.constants)
    if why:
        raise ModelValidationError(f"{file}: node '{node.name or node.op_type}' op '{node.op_type}' is invalid: "
                                   f"onnxruntime rejects it as well: {why}") from cause


# ops with subgraphs, lowered by edgec with the subgraphs lowered in place
_CONTROL = {"If": control.lower_if, "Loop": loop.lower_loop}


def _lower_node(ctx: LowerContext, table: LoweringTable, node: ir.Node, report: LoweringReport, file: str) -> None:
    name = node.name or f"{node.op_type}_{id(node):x}"
    if node.op_type == "Constant" and is_onnx_domain(node.domain):
        arr = constant_node_array(node)
        if arr is not None:
            ctx.constants[node.outputs[0].name] = arr
            ctx.values[node.outputs[0].name] = const(arr)
            report.by_edgec["Constant"] += 1
            return
    inputs = [ctx.values.get(v.name) if v is not None else None for v in node.inputs]
    for v, x in zip(node.inputs, inputs):
        if v is not None and x is None:
            raise ModelValidationError(f"{file}: node '{name}' ({node.op_type}) reads '{v.name}', which nothing produces")
    folded = _fold(ctx, node)
    if folded is not None:
        for v, arr in zip(node.outputs, folded):
            if v.name:
                ctx.constants[v.name] = arr
                ctx.values[v.name] = const(arr)
        report.folded[node.op_type] += 1
        return
    if ctx.symbolic or node.op_type in ("Shape", "Size"):
        shapes = symbolic.evaluate(ctx, node, inputs)
        if shapes is not None:
            dtypes = [_tensor_dtype(v, ctx.file) if v.dtype is not None else "int64" for v in node.outputs]
            symbolic.bind_shape_values(ctx, node, shapes, dtypes)
            report.folded[node.op_type] += 1
            return
    fn = table.get(node.domain, node.op_type)
    if node.op_type in _CONTROL and is_onnx_domain(node.domain):
        fn = functools.partial(_CONTROL[node.op_type],
                               lower_graph=lambda sub: _lower_subgraph(ctx, table, sub, report, file))
    wide = half.wide_inputs(ctx, node, inputs)  # float16 computed in float32 (targets/tvm/half.py)
    if wide is not None:
        inputs = wide
    result = NotImplemented
    if fn is not None:
        try:
            result = fn(ctx, node, inputs)
        except Unsupported as e:
            raise UnsupportedOpError(name, node.op_type, node.domain, _version(ctx, node), file,
                                     detail=_one_line(e)) from e
        except EdgecError:
            raise
        except Exception as e:
            _raise_invalid_node(ctx, node, file, e)
            raise InternalError(f"{file}: edgec's lowering of node '{name}' op '{node.op_type}' crashed: "
                                f"{type(e).__name__}: {_one_line(e)}") from e
    if result is not NotImplemented:
        report.by_edgec[node.op_type] += 1
    else:
        result = _frontend_fallback(ctx, node, inputs, name, file)
        report.by_frontend[node.op_type] += 1
    _bind_outputs(ctx, node, result, name, file)
    if wide is not None:
        half.round_outputs(ctx, node)


# ops whose value is not a function of their inputs alone, or that carry subgraphs
_NO_FOLD = NONDETERMINISTIC | {"Dropout", "If", "Loop", "Scan", "SequenceMap"}
_FOLD_LIMIT = 1 << 20  # elements: fold only small (shape-like) computations


def _fold(ctx: LowerContext, node: ir.Node) -> list[np.ndarray] | None:
    """Evaluate a node whose inputs are all compile-time constants with onnx's reference
    implementation, so shape computations (Shape -> Gather -> Concat -> Reshape) reach the
    consumers' lowerings as constants. None if the node cannot or should not be folded."""
    if not is_onnx_domain(node.domain) or node.op_type in _NO_FOLD or not node.inputs:
        return None
    present = [v for v in node.inputs if v is not None and v.name]
    if not present or any(v.name not in ctx.constants for v in present):
        return None
    if sum(ctx.constants[v.name].size for v in present) > _FOLD_LIMIT:
        return None
    version = _version(ctx, node) or ctx.opset
    outs = evaluate_node(node, [ctx.constants[v.name] if v is not None and v.name else None for v in node.inputs],
                         version)
    if outs is None:
        return None
    res = []
    for o in outs:
        if o.size > _FOLD_LIMIT:
            return None
        res.append(o)
    return res




def _version(ctx: LowerContext, node: ir.Node) -> int | None:
    return node.version if node.version is not None else (ctx.opset if is_onnx_domain(node.domain) else None)


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())[:240]


def _frontend_fallback(ctx: LowerContext, node: ir.Node, inputs, name: str, file: str):
    version = _version(ctx, node)
    convert_map = fe._get_convert_map()
    if not is_onnx_domain(node.domain) or node.op_type not in convert_map:
        raise UnsupportedOpError(name, node.op_type, node.domain, version, file)
    proto = ir.serde.serialize_node(node)
    try:
        attrs = fe.ONNXGraphImporter._parse_attr(None, proto.attribute)
        attrs["tvm_custom"] = {"name": name, "num_outputs": len(node.outputs)}
        op_inputs = fe.onnx_input()
        for x in inputs:
            op_inputs.append(x)
        converter = convert_map[node.op_type].get_converter(ctx.opset)
        out = converter(ctx.bb, op_inputs, attrs, [dict(ctx.values), {}])
        if isinstance(out, relax.Expr):
            out = ctx.bb.normalize(out)
        return out
    except UnsupportedOpError:
        raise
    except Exception as e:
        raise UnsupportedOpError(name, node.op_type, node.domain, version, file,
                                 detail=f"TVM ONNX frontend: {type(e).__name__}: {_one_line(e)}") from e


def _bind_outputs(ctx: LowerContext, node: ir.Node, result, name: str, file: str) -> None:
    outs = node.outputs
    if isinstance(result, (list, tuple)):
        items = list(result)
    elif isinstance(result, relax.Tuple):
        items = list(result.fields)
    elif isinstance(getattr(result, "ty", None), relax.TupleType):
        items = [ctx.bb.emit(relax.TupleGetItem(result, i)) for i in range(len(result.ty.fields))]
    else:
        items = [result]
    if len(items) < len([o for o in outs if o.name]):
        raise UnsupportedOpError(name, node.op_type, node.domain, _version(ctx, node), file,
                                 detail=f"lowering produced {len(items)} of {len(outs)} outputs")
    for v, expr in zip(outs, items):
        if not v.name:
            continue
        if isinstance(expr, relax.Expr) and not isinstance(expr, (relax.Var, tvm.ir.expr.Constant)):
            expr = ctx.bb.emit(expr)
        ctx.values[v.name] = expr
