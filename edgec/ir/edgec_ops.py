"""Definitions of edgec-domain ops as ONNX model-local functions (documented in docs/edgec-ops.md).

Fusion passes emit ops in the `edgec` domain. So that onnxruntime (tests, `--verify`) can run
them, every such node references a FunctionProto in the model that defines it in standard ONNX
ops. A function body cannot branch on attribute values, so variants (activation kind and its
constants, optional inputs, rank) are separate *overloads* of the same op (ONNX IR version 10);
the node's attributes remain the source of truth for backends.
"""

from __future__ import annotations

import onnx
import onnx_ir as ir

EDGEC_DOMAIN = "edgec"

ACTIVATIONS = {  # name -> number of activation_params ("" = no activation)
    "": 0,
    "Relu": 0, "Clip": 2, "LeakyRelu": 1, "Sigmoid": 0, "HardSigmoid": 2, "HardSwish": 0,
    "Silu": 0, "Tanh": 0,
}

CONV_ATTRS = ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")
GEMM_ATTRS = ("alpha", "beta", "transA", "transB")
POOL_ATTRS = {"MaxPool": ("auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads", "strides"),
              "AveragePool": ("auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides")}
_ATTR_TYPES = {"ceil_mode": "int", "count_include_pad": "int", "auto_pad": "string", "dilations": "ints", "group": "int", "kernel_shape": "ints",
               "pads": "ints", "strides": "ints", "alpha": "float", "beta": "float",
               "transA": "int", "transB": "int"}


def _f(x: float) -> str:
    return repr(float(x))


def activation_lines(act: str, params: list[float], src: str, dst: str, opset: int) -> list[str]:
    """ONNX text computing `dst = act(src)`."""
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}")
    if len(params) != ACTIVATIONS[act]:
        raise ValueError(f"activation {act} takes {ACTIVATIONS[act]} params, got {len(params)}")
    if act == "":
        return [f"{dst} = Identity ({src})"]
    if act in ("Relu", "Sigmoid", "Tanh"):
        return [f"{dst} = {act} ({src})"]
    if act == "LeakyRelu":
        return [f"{dst} = LeakyRelu <alpha = {_f(params[0])}> ({src})"]
    if act == "HardSigmoid":
        return [f"{dst} = HardSigmoid <alpha = {_f(params[0])}, beta = {_f(params[1])}> ({src})"]
    if act == "HardSwish":
        return [f"{dst}_hs = HardSigmoid <alpha = {_f(1 / 6)}, beta = 0.5> ({src})", f"{dst} = Mul ({src}, {dst}_hs)"]
    if act == "Silu":
        return [f"{dst}_sig = Sigmoid ({src})", f"{dst} = Mul ({src}, {dst}_sig)"]
    # Clip: bounds as inputs (opset >= 11), cast to the input's type where CastLike exists
    lines = [f"{dst}_lo0 = Constant <value_float = {_f(params[0])}> ()",
             f"{dst}_hi0 = Constant <value_float = {_f(params[1])}> ()"]
    if opset >= 15:
        lines += [f"{dst}_lo = CastLike ({dst}_lo0, {src})", f"{dst}_hi = CastLike ({dst}_hi0, {src})"]
    else:
        lines += [f"{dst}_lo = Identity ({dst}_lo0)", f"{dst}_hi = Identity ({dst}_hi0)"]
    return lines + [f"{dst} = Clip ({src}, {dst}_lo, {dst}_hi)"]


def activation_overload(act: str, params: list[float], suffix: str = "") -> str:
    parts = [act or "none"] + [_f(p) for p in params] + ([suffix] if suffix else [])
    return "_".join(parts)


def _function(name: str, overload: str, opset: int, attrs: list[str], inputs: list[str],
              body: list[str]) -> ir.Function:
    header = f'<domain: "{EDGEC_DOMAIN}", opset_import: ["" : {opset}], overload: "{overload}">'
    sig = f"{name} <{', '.join(attrs)}> ({', '.join(inputs)}) => (Y)" if attrs else f"{name} ({', '.join(inputs)}) => (Y)"
    text = header + "\n" + sig + " {\n" + "\n".join("  " + line for line in body) + "\n}"
    proto = onnx.parser.parse_function(text)
    return ir.serde.deserialize_function(proto)


def _refs(names: tuple[str, ...]) -> str:
    return ", ".join(f"{a}: {_ATTR_TYPES[a]} = @{a}" for a in names)


def fused_function(kind: str, act: str, params: list[float], has_z: bool, opset: int) -> ir.Function:
    """edgec.FusedConv / FusedGemm / FusedMatMul: Y = act(Op(...) [+ Z])."""
    overload = activation_overload(act, params, "Z" if has_z else "")
    if kind == "Conv":
        inputs, attrs = ["X", "W", "B"] + (["Z"] if has_z else []), list(CONV_ATTRS)
        first = f"C0 = Conv <{_refs(CONV_ATTRS)}> (X, W, B)"
    elif kind == "Gemm":
        inputs, attrs = ["A", "B", "C"], list(GEMM_ATTRS)
        first = f"C0 = Gemm <{_refs(GEMM_ATTRS)}> (A, B, C)"
    elif kind == "MatMul":
        inputs, attrs = ["A", "B"], []
        first = "C0 = MatMul (A, B)"
    else:
        raise ValueError(kind)
    body = [first] + (["C1 = Add (C0, Z)"] if has_z else ["C1 = Identity (C0)"])
    body += activation_lines(act, params, "C1", "Y", opset)
    return _function(f"Fused{kind}", overload, opset, attrs + ["activation", "activation_params"], inputs, body)


def gelu_function(approximate: str, opset: int) -> ir.Function:
    """edgec.Gelu (for opsets < 20): exact erf form or tanh approximation."""
    if approximate == "tanh":
        body = ["k = Constant <value_float = 0.7978845608028654> ()", "c = Constant <value_float = 0.044715> ()",
                "h = Constant <value_float = 0.5> ()", "one = Constant <value_float = 1.0> ()",
                "x3 = Mul (X, X)", "x3b = Mul (x3, X)", "t0 = Mul (c, x3b)", "t1 = Add (X, t0)",
                "t2 = Mul (k, t1)", "t3 = Tanh (t2)", "t4 = Add (one, t3)", "t5 = Mul (X, t4)", "Y = Mul (h, t5)"]
    else:
        body = ["r = Constant <value_float = 0.7071067811865476> ()", "h = Constant <value_float = 0.5> ()",
                "one = Constant <value_float = 1.0> ()", "t0 = Mul (X, r)", "t1 = Erf (t0)",
                "t2 = Add (one, t1)", "t3 = Mul (X, t2)", "Y = Mul (h, t3)"]
    return _function("Gelu", approximate, opset, ["approximate"], ["X"], body)


def silu_function(opset: int) -> ir.Function:
    """edgec.Silu: Y = X * Sigmoid(X)."""
    return _function("Silu", "", opset, [], ["X"], ["s = Sigmoid (X)", "Y = Mul (X, s)"])


def rms_norm_function(opset: int) -> ir.Function:
    """edgec.RMSNormalization over the last axis: Y = X / sqrt(mean(X², -1) + epsilon) * scale."""
    if opset >= 18:
        reduce = ["axes = Constant <value_ints = [-1]> ()", "ms = ReduceMean <keepdims = 1> (sq, axes)"]
    else:
        reduce = ["ms = ReduceMean <axes = [-1], keepdims = 1> (sq)"]
    body = ["sq = Mul (X, X)", *reduce, "eps = Constant <value_float: float = @epsilon> ()",
            "v = Add (ms, eps)", "r = Sqrt (v)", "n = Div (X, r)", "Y = Mul (n, scale)"]
    return _function("RMSNormalization", "", opset, ["axis", "epsilon"], ["X", "scale"], body)


def attention_function(rank: int, has_mask: bool, opset: int, kv_group: int = 1) -> ir.Function:
    """edgec.Attention: Y = Softmax(Q·Kᵀ·scale [+ mask], axis=-1)·V for rank-`rank` Q, K, V.
    `kv_group` G > 1 (rank 4, grouped-query attention): K and V have 1/G of Q's heads, query head
    h reads kv head h // G (the body repeats each kv head G times)."""
    perm = list(range(rank - 2)) + [rank - 1, rank - 2]
    body = []
    if kv_group > 1:
        body += [f"g = Constant <value_ints: ints = [{kv_group}]> ()", "ax2 = Constant <value_ints: ints = [2]> ()",
                 "m1 = Constant <value_ints: ints = [-1]> ()"]
        for x in ("K", "V"):
            body += [f"{x}s = Shape ({x})", f"{x}bh = Slice ({x}s, zero, two)", f"{x}td = Slice ({x}s, two, four)",
                     f"{x}b = Slice ({x}s, zero, one)", f"{x}u = Unsqueeze ({x}, ax2)",
                     f"{x}e = Expand ({x}u, {x}es)", f"{x}r = Reshape ({x}e, {x}rs)"]
            body[-2:-2] = [f"{x}es = Concat <axis = 0> ({x}bh, g, {x}td)", f"{x}rs = Concat <axis = 0> ({x}b, m1, {x}td)"]
        body = [f"{n} = Constant <value_ints: ints = [{i}]> ()" for n, i in
                (("zero", 0), ("one", 1), ("two", 2), ("four", 4))] + body
        k, v = "Kr", "Vr"
    else:
        k, v = "K", "V"
    body += [f"kt = Transpose <perm = {perm}> ({k})", "s0 = MatMul (Q, kt)",
            "sc = Constant <value_float: float = @scale> ()", "s1 = Mul (s0, sc)"]
    body += ["s2 = Add (s1, mask)"] if has_mask else ["s2 = Identity (s1)"]
    body += ["p = Softmax <axis = -1> (s2)", f"Y = MatMul (p, {v})"]
    overload = f"rank{rank}" + ("_mask" if has_mask else "") + (f"_g{kv_group}" if kv_group > 1 else "")
    return _function("Attention", overload, opset, ["scale"], ["Q", "K", "V"] + (["mask"] if has_mask else []), body)


_TO_NCHW = "perm = [0, 3, 1, 2]"
_TO_NHWC = "perm = [0, 2, 3, 1]"


def conv_nhwc_function(act: str, params: list[float], has_z: bool, opset: int) -> ir.Function:
    """edgec.ConvNHWC: X [N,H,W,C], W [M,kH,kW,C/group] (OHWI), B [M], optional Z [N,H',W',M]:
    Y = act(Conv(X, W, B) [+ Z]) in NHWC. The body transposes to NCHW and back."""
    overload = activation_overload(act, params, "Z" if has_z else "")
    body = [f"xn = Transpose <{_TO_NCHW}> (X)", f"wn = Transpose <{_TO_NCHW}> (W)",
            f"C0 = Conv <{_refs(CONV_ATTRS)}> (xn, wn, B)"]
    body += [f"zn = Transpose <{_TO_NCHW}> (Z)", "C1 = Add (C0, zn)"] if has_z else ["C1 = Identity (C0)"]
    body += activation_lines(act, params, "C1", "A", opset) + [f"Y = Transpose <{_TO_NHWC}> (A)"]
    inputs = ["X", "W", "B"] + (["Z"] if has_z else [])
    return _function("ConvNHWC", overload, opset, list(CONV_ATTRS) + ["activation", "activation_params"], inputs, body)


def pool_nhwc_function(kind: str, opset: int) -> ir.Function:
    """edgec.MaxPoolNHWC / edgec.AveragePoolNHWC: the ONNX pool (same attributes) on NHWC X."""
    names = POOL_ATTRS[kind]
    body = [f"xn = Transpose <{_TO_NCHW}> (X)", f"yn = {kind} <{_refs(names)}> (xn)", f"Y = Transpose <{_TO_NHWC}> (yn)"]
    return _function(f"{kind}NHWC", "", opset, list(names), ["X"], body)


def assert_equal_function(opset: int) -> ir.Function:
    """edgec.AssertEqual: Y = X; a backend raises at run time (naming `message`) when X differs
    from the compile-time constant `Expected`. The reference body does not check."""
    return _function("AssertEqual", "", opset, ["message"], ["X", "Expected"], ["Y = Identity (X)"])


def kv_cache_write_function(opset: int) -> ir.Function:
    """edgec.KVCacheWrite: Y = Concat(Cache[:, :, :PastLength], New, axis=2), the cache's valid
    rows after the new ones. Backends write New into Cache at rows [PastLength, PastLength + S)
    in place (the reference body does not; docs/edgec-ops.md)."""
    body = ["zero = Constant <value_ints: ints = [0]> ()", "axis = Constant <value_ints: ints = [2]> ()",
            "old = Slice (Cache, zero, PastLength, axis)", "Y = Concat <axis = 2> (old, New)"]
    return _function("KVCacheWrite", "", opset, [], ["Cache", "New", "PastLength"], body)
