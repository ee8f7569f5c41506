"""convert-float16: a float32 model -> mixed precision (float16 or bfloat16), interface unchanged.

Every standard ONNX node computing on float32 tensors is switched to `dtype` when the op's schema
at the model's opset accepts it for those tensors; its constant float32 inputs (weights, biases)
are stored in `dtype` (float16: clipped to +-65504 first, never Inf). Casts are inserted where a
float32 tensor meets a converted node and where a converted tensor meets a node that stays
float32, each shared by all such readers; graph inputs and outputs keep float32 (Casts at the
edges), so callers see the same interface. The model is marked (`edgec.mixed_precision` = dtype
in its metadata): the TVM backend computes float16 natively only on a marked model and a target
with float16 arithmetic (targets/tvm/half.py; an imported float16 model is computed as
onnxruntime does, in float32).

Stays float32:
- op types in `keep` (comma list; default `KEEP`: Softmax, LogSoftmax, the normalizations and the
  summing reductions, whose float16 accumulations lose most); nodes named in `exclude`;
- ops whose schema does not accept `dtype` at the model's opset (bfloat16 before opset 22: Conv,
  ConvTranspose, pools, BatchNormalization, Resize, ...: run float32 between Casts);
- ops whose float result type comes from an attribute rather than an input (Cast, Constant,
  ConstantOfShape, Random*, EyeLike): their readers get a Cast;
- non-standard domains (edgec's fused ops, com.microsoft), nodes with subgraphs (If/Loop/Scan)
  and nodes whose results a subgraph reads;
- a node none of whose float inputs is already in `dtype` or a constant of more than one element
  (a weight): a float32 tensor is not rounded only to be computed on once (with bfloat16, a Relu or
  residual Add between two float32 Convs stays float32 instead of being cast there and back).
Not fired at all on a model that already holds a float16 or bfloat16 tensor (converted before, or
exported that way: its float32 parts are float32 on purpose) or that has no float32 compute.

Runtimes: onnxruntime's CPU provider runs float16 models (in float32 internally, rounded at the
chain ends). It has no bfloat16 kernel for MatMul, Gemm, Add, Mul, Relu, Softmax, ... (1.31): a
bfloat16 model is valid ONNX that edgec compiles but onnxruntime cannot run; compare it against
the float32 model with a bfloat16 tolerance (8 mantissa bits: ~4e-3 relative per rounding).

Targets (`edgec compile --quantize`): fp16 goes to every target; arithmetic is float16 only on
fullfp16 / CUDA targets (targets/tvm/half.py), float32 chains rounded to float16 elsewhere. bf16
is for CPU targets only (edgec.quantize.check_target; GPUs: exit 2, untested): TVM legalizes
bfloat16 into float32 arithmetic on every CPU (16-bit storage, widened by shifts, rounded to
nearest even by integer ops, float32 accumulation) and emits no bfloat16 instruction even where
the CPU has them (no vdpbf16ps / vcvtneps2bf16 on an avx512_bf16 host): so no target is refused
or warned about for lacking them; bf16 halves weight memory but is not faster than float32 there.
Before this pass, compile runs recognize-attention and recognize-layernorm (edgec.quantize.BEFORE):
edgec.Attention, with its Softmax, stays float32 and fused.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir

from edgec.infra.pass_base import Pass, PassResult, register_pass
from edgec.ir.constants import const_array
from edgec.ir.domains import is_onnx_domain, onnx_opset
from edgec.passes.control._common import Namer

MARK = "edgec.mixed_precision"
DTYPES = {"float16": ir.DataType.FLOAT16, "bfloat16": ir.DataType.BFLOAT16}
KEEP = ("Softmax,LogSoftmax,LayerNormalization,GroupNormalization,InstanceNormalization,RMSNormalization,"
        "ReduceMean,ReduceSum,ReduceSumSquare,ReduceL1,ReduceL2,ReduceLogSum,ReduceLogSumExp,ReduceProd")
FP16_MAX = 65504.0
_NARROW = {ir.DataType.FLOAT16, ir.DataType.BFLOAT16}


def _formal(formals, i: int):
    return formals[i] if i < len(formals) else formals[-1]  # a variadic last parameter repeats


def _plan(node: ir.Node, dtype: ir.DataType, opset: int, graph: ir.Graph, narrowed: set):
    """(the schema type parameters of `node` bound to float32 that switch to `dtype`, the schema);
    None if the node stays float32. Values in `narrowed` were float32 before this pass switched them."""
    if not is_onnx_domain(node.domain) or any(a.type in (ir.AttributeType.GRAPH, ir.AttributeType.GRAPHS)
                                                  for a in node.attributes.values()):
        return None
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, "")
    except onnx.defs.SchemaError:
        return None
    allowed = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}
    bound_in: dict[str, set] = {}
    bound_out: dict[str, set] = {}
    for values, formals, bound in ((node.inputs, schema.inputs, bound_in), (node.outputs, schema.outputs, bound_out)):
        for i, v in enumerate(values):
            if v is None or not v.name or not formals:
                continue
            t = ir.DataType.FLOAT if v in narrowed else v.dtype
            if t is None:
                if bound is bound_in:
                    return None
                continue  # an output of unknown type takes its parameter's type from the inputs
            bound.setdefault(_formal(formals, i).type_str, set()).add(t)
    params = {p for b in (bound_in, bound_out) for p, ts in b.items() if ir.DataType.FLOAT in ts and p in allowed}
    want = f"tensor({'float16' if dtype == ir.DataType.FLOAT16 else 'bfloat16'})"
    for p in params:
        if want not in allowed[p] or p not in bound_in or bound_in[p] | bound_out.get(p, set()) != {ir.DataType.FLOAT}:
            return None
    if not params:
        return None
    for v in node.outputs:  # a subgraph reading a result would see its type change under it
        if v is not None and any(user.graph is not graph for user, _ in v.uses()):
            return None
    return params, schema


def narrow_array(a: np.ndarray, dtype: ir.DataType) -> np.ndarray:
    """`a` (float32) in `dtype`; float16: finite values clipped to the float16 range first."""
    if dtype == ir.DataType.FLOAT16:
        return np.where(np.isfinite(a), np.clip(a, -FP16_MAX, FP16_MAX), a).astype(np.float16)
    return a.astype(dtype.numpy())


@register_pass
class ConvertFloat16(Pass):
    """float32 compute -> float16 / bfloat16 (weights too); Softmax, norms, sums stay float32; I/O stays float32."""

    name = "convert-float16"
    changes_numerics = True
    options = {"dtype": "float16", "keep": KEEP, "exclude": ""}

    def run(self, model: ir.Model, ctx) -> PassResult:
        from edgec.errors import PipelineError

        o = self.opts
        if o["dtype"] not in DTYPES:
            raise PipelineError(f"convert-float16: dtype must be float16 or bfloat16, got '{o['dtype']}'")
        if _holds_narrow(model):
            return PassResult(model, False)
        dtype = DTYPES[o["dtype"]]
        keep = {s.strip() for s in o["keep"].split(",") if s.strip()}
        exclude = {s for s in o["exclude"].split(",") if s}
        conv = _Converter(model, dtype)
        opset = onnx_opset(model, 1)
        for node in list(model.graph):
            plan = None
            if node.op_type not in keep and node.name not in exclude:
                plan = _plan(node, dtype, opset, model.graph, conv.narrowed)
            if plan is not None and not any(conv.starts_from(v) for v in node.inputs):
                plan = None
            if plan is None:
                conv.widen_inputs(node)
            else:
                conv.narrow_node(node, *plan)
        if not conv.narrowed:
            return PassResult(model, False)
        conv.finish()
        model.metadata_props[MARK] = o["dtype"]
        return PassResult(model, True)


def _holds_narrow(model: ir.Model) -> bool:
    g = model.graph
    values = [*g.inputs, *g.initializers.values(), *(v for n in g for v in n.outputs if v is not None)]
    return any(v.dtype in _NARROW for v in values)


class _Converter:
    def __init__(self, model: ir.Model, dtype: ir.DataType):
        self.graph, self.dtype, self.namer = model.graph, dtype, Namer(model)
        self.suffix = "fp16" if dtype == ir.DataType.FLOAT16 else "bf16"
        self.narrowed: set[ir.Value] = set()   # results of converted nodes (now in dtype)
        self.narrow_of: dict[ir.Value, ir.Value] = {}  # float32 value -> its dtype version
        self.wide_of: dict[ir.Value, ir.Value] = {}    # narrowed value -> its float32 Cast
        self.replaced: set[ir.Value] = set()   # float32 initializers given a narrow copy

    def starts_from(self, v: ir.Value | None) -> bool:
        """Whether a node reading `v` may compute in the narrow type: `v` is already narrow or a weight."""
        if v is None:
            return False
        if v in self.narrowed:
            return True
        a = const_array(v) if v.dtype == ir.DataType.FLOAT else None
        return a is not None and a.size > 1

    def narrow_node(self, node: ir.Node, params: set[str], schema) -> None:
        for i, v in enumerate(node.inputs):
            if v is not None and v.name and _formal(schema.inputs, i).type_str in params \
                    and v.dtype == ir.DataType.FLOAT:
                node.replace_input_with(i, self._narrow(v, node))
        for i, v in enumerate(node.outputs):
            if v is not None and _formal(schema.outputs, i).type_str in params:
                v.type = ir.TensorType(self.dtype)
                self.narrowed.add(v)

    def widen_inputs(self, node: ir.Node) -> None:
        for i, v in enumerate(node.inputs):
            if v is not None and v in self.narrowed:
                node.replace_input_with(i, self._wide(v, node))

    def _cast(self, v: ir.Value, to: ir.DataType, before: ir.Node | None, base: str) -> ir.Value:
        n = ir.node("Cast", [v], {"to": int(to)}, name=self.namer.fresh(f"{base}_cast"))
        out = n.outputs[0]
        out.name, out.type, out.shape = self.namer.fresh(base), ir.TensorType(to), v.shape
        if before is None:
            self.graph.append(n)
        else:
            self.graph.insert_before(before, [n])
        return out

    def _narrow(self, v: ir.Value, reader: ir.Node) -> ir.Value:
        if v not in self.narrow_of:
            a = const_array(v)
            if a is not None and a.dtype == np.float32:
                name = self.namer.fresh(f"{v.name}_{self.suffix}")
                t = ir.tensor(narrow_array(a, self.dtype), name=name)
                nv = ir.Value(name=name, shape=ir.Shape(list(a.shape)), type=ir.TensorType(self.dtype), const_value=t)
                self.graph.register_initializer(nv)
                self.replaced.add(v)
            else:
                nv = self._cast(v, self.dtype, reader, f"{v.name}_{self.suffix}")
            self.narrow_of[v] = nv
        return self.narrow_of[v]

    def _wide(self, v: ir.Value, reader: ir.Node | None) -> ir.Value:
        if v not in self.wide_of:
            self.wide_of[v] = self._cast(v, ir.DataType.FLOAT, reader, f"{v.name}_fp32")
        return self.wide_of[v]

    def finish(self) -> None:
        """Graph outputs read float32 (under their own names); float32 initializers nothing reads
        any more are dropped."""
        outs = self.graph.outputs
        for i, v in enumerate(list(outs)):
            if v in self.narrowed:
                name = v.name
                w = self._wide(v, None)
                v.name = self.namer.fresh(f"{name}_{self.suffix}")
                w.name = name
                outs[i] = w
        for v in self.replaced:
            if not v.uses() and not v.is_graph_output() and not v.is_graph_input() and v.name in self.graph.initializers:
                del self.graph.initializers[v.name]

