"""State shared by op lowerings while translating edgec IR to a Relax function."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir
from tvm import relax


@dataclass
class LowerContext:
    bb: relax.BlockBuilder
    opset: int
    file: str = "model"
    values: dict[str, relax.Expr] = field(default_factory=dict)
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    # runtime checks: (bool scalar computed in the dataflow block, message); lower_model threads
    # the first graph output through one asserting kernel per check (targets/tvm/guards.py)
    guards: list[tuple[relax.Expr, str]] = field(default_factory=list)
    opset_imports: dict[str, int] = field(default_factory=dict)  # the model's, domain -> version
    # shape values over symbolic dims (object arrays of ints / TIR expressions; targets/tvm/symbolic.py)
    symbolic: dict[str, np.ndarray] = field(default_factory=dict)
    # float16 values computed in float32: the unrounded float32 value by name (targets/tvm/half.py)
    wide: dict[str, relax.Expr] = field(default_factory=dict)
    cpu: bool = True  # the target is a CPU (llvm): lowerings that emit their own unbound TIR kernels need it
    dot: str | None = None  # the target's integer dot-product instructions ("vnni", "sdot"; schedules/int8_dot.py)
    native_half: bool = False  # float16 arithmetic computed in float16, not float32 (targets/tvm/half.py)
    # edgec.KVCacheWrite outputs (whole cache buffers, targets/tvm/ops/kv_cache.py): name -> valid rows
    kv_lengths: dict[str, object] = field(default_factory=dict)

    def const_array(self, v: ir.Value | None) -> np.ndarray | None:
        """The numpy value of `v` if it is a compile-time constant, else None."""
        if v is None:
            return None
        return self.constants.get(v.name)

    def emit(self, expr: relax.Expr) -> relax.Expr:
        return self.bb.normalize(expr)

    def guard(self, ok: relax.Expr, message: str) -> None:
        """Fail the run with `message` (which starts with edgec.errors.GUARD_PREFIX) unless the
        bool scalar `ok` holds."""
        self.guards.append((ok, message))

    def const_inputs(self, node: ir.Node, *indices: int) -> list[np.ndarray | None] | None:
        """Constant values of the node's inputs at `indices` (None for absent optional inputs);
        None if any present input among them is not a compile-time constant."""
        out = []
        for i in indices:
            v = node.inputs[i] if i < len(node.inputs) else None
            if v is None or not v.name:
                out.append(None)
                continue
            a = self.const_array(v)
            if a is None:
                return None
            out.append(a)
        return out

    def constant(self, node: ir.Node, arr: np.ndarray, index: int = 0) -> relax.Expr:
        """Record `arr` as the compile-time value of output `index` and return it as a Relax constant."""
        arr = np.asarray(arr)
        if index < len(node.outputs) and node.outputs[index].name:
            self.constants[node.outputs[index].name] = arr
        return const(arr)


def const(value, dtype: str | None = None) -> relax.Expr:
    """A Relax constant keeping numpy's dtype (relax.const alone turns int64 into int32 and
    float64 into float32)."""
    if dtype == "bfloat16":
        import ml_dtypes

        dtype = ml_dtypes.bfloat16
    arr = np.asarray(value, dtype=dtype)
    if arr.size == 0:  # zero-size constants do not survive export_library: build them instead
        return relax.op.zeros(arr.shape, str(arr.dtype))
    return relax.const(arr, str(arr.dtype))


def shape_of(x: relax.Expr) -> list[int] | None:
    """The static shape of a tensor-typed expression, or None."""
    return shape_of_type(getattr(x, "ty", None))


def shape_of_type(ty) -> list[int] | None:
    """The static shape of a tensor type, or None."""
    s = getattr(ty, "shape", None)
    if s is None:
        return None
    try:
        return [int(d) for d in s]
    except TypeError:
        return None


def dtype_of(x: relax.Expr) -> str:
    return str(x.ty.dtype)


def has_input(node: ir.Node, i: int) -> bool:
    return i < len(node.inputs) and node.inputs[i] is not None and bool(node.inputs[i].name)


def attr(node: ir.Node, name: str, default=None):
    a = node.attributes.get(name)
    if a is None:
        return default
    v = a.value
    if isinstance(v, (list, tuple)):
        return list(v)
    if isinstance(v, ir.TensorProtocol):
        return v.numpy()
    return v
