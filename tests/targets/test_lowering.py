"""edgec's op-by-op lowering to Relax, checked numerically against onnxruntime (atol 1e-4 fp32).

Each case names the ops edgec itself must lower (not TVM's ONNX frontend fallback)."""

from __future__ import annotations

import numpy as np
import pytest

from edgec.compare import Tolerance, compare_outputs
from edgec.ir import graph_inputs, load_model
from edgec.reference import run_ort, seeded_inputs
from edgec.targets import get_target
from edgec.targets.tvm.build import build_library
from edgec.targets.tvm.lower import lower_model
from edgec.targets.tvm.runtime import LoadedModel
from tests.conftest import model_from_text

ATOL = 1e-4

HEADER = '<ir_version: 8, opset_import: ["" : 17]>'

CASES = {
    "conv_group_stride_pad": ("""
        agraph (float[1, 4, 9, 11] x) => (float[1, 6, 5, 6] y)
        <float[6, 2, 3, 3] w = {%s}, float[6] b = {0.1, 0.2, 0.3, -0.1, -0.2, 0.0}>
        { y = Conv <group: int = 2, strides: ints = [2, 2], pads: ints = [1, 1, 1, 1]> (x, w, b) }
        """ % ", ".join(str(round(float(v), 3)) for v in np.linspace(-1, 1, 108)), {"Conv"}),
    "conv_asymmetric_pads_dilation": ("""
        agraph (float[1, 3, 10, 10] x) => (float[1, 2, 9, 7] y)
        <float[2, 3, 2, 2] w = {%s}>
        { y = Conv <pads: ints = [1, 0, 0, 0], dilations: ints = [2, 3]> (x, w) }
        """ % ", ".join(str(round(float(v), 3)) for v in np.linspace(-1, 1, 24)), {"Conv"}),
    "pools": ("""
        agraph (float[1, 3, 9, 9] x) => (float[1, 3, 5, 5] a, float[1, 3, 4, 4] m, float[1, 3, 1, 1] g)
        { a = AveragePool <kernel_shape: ints = [3, 3], strides: ints = [2, 2], pads: ints = [1, 1, 1, 1]> (x)
          m = MaxPool <kernel_shape: ints = [2, 2], strides: ints = [2, 2]> (x)
          g = GlobalAveragePool (x) }""", {"AveragePool", "MaxPool", "GlobalAveragePool"}),
    "gemm_trans_alpha_beta": ("""
        agraph (float[5, 3] a, float[4, 5] b, float[4] c) => (float[3, 4] y)
        { y = Gemm <transA: int = 1, transB: int = 1, alpha: float = 0.5, beta: float = 2.0> (a, b, c) }""",
                              {"Gemm"}),
    "batchnorm_softmax_layernorm": ("""
        agraph (float[2, 3, 4] x) => (float[2, 3, 4] b, float[2, 3, 4] s, float[2, 3, 4] l)
        <float[3] sc = {1.0, 0.5, 2.0}, float[3] bi = {0.0, 0.1, -0.1}, float[3] mu = {0.1, 0.0, 0.2},
         float[3] va = {1.0, 2.0, 0.5}, float[4] g = {1.0, 2.0, 0.5, 1.5}, float[4] be = {0.0, 0.1, 0.2, 0.3}>
        { b = BatchNormalization <epsilon: float = 0.001> (x, sc, bi, mu, va)
          s = Softmax <axis: int = 1> (x)
          l = LayerNormalization <axis: int = -1> (x, g, be) }""",
                                    {"BatchNormalization", "Softmax", "LayerNormalization"}),
    "elementwise_activations": ("""
        agraph (float[2, 3] x, float[3] z) => (float[2, 3] y)
        { a = Add(x, z)
          b = Relu(a)
          c = LeakyRelu <alpha: float = 0.2> (a)
          d = Sigmoid(c)
          e = HardSwish(a)
          f = Clip(a, mn, mx)
          g = Mul(b, d)
          h = Sub(g, e)
          i = Div(h, z2)
          j = Tanh(i)
          k = Erf(j)
          l = Sum(k, f, x)
          y = Max(l, x) }""".replace("{ a = Add", "<float mn = {-0.5}, float mx = {0.5}, float[3] z2 = {2.0, 4.0, -1.0}>\n        { a = Add"),
                                {"Add", "Relu", "LeakyRelu", "Sigmoid", "HardSwish", "Clip", "Mul", "Sub", "Div",
                                 "Tanh", "Erf", "Sum", "Max"}),
    "shape_ops": ("""
        agraph (float[2, 3, 4] x) => (float[4, 1, 6] y, float[2, 12] f, float[2, 2, 3] s, float[3, 2, 1, 4] u,
                                      float[2, 3, 2] p, float[2, 3, 2] q)
        <int64[3] shp = {4, 1, 6}, int64[1] i1 = {1}, int64[2] st = {1, 0}, int64[2] en = {100, 2},
         int64[2] ax = {2, 1}, int64[1] un = {2}, int64[2] sp = {2, 2}, int64[1] gi = {2}>
        { r = Reshape(x, shp)
          y = Transpose <perm: ints = [2, 1, 0]> (Reshape(x, shp))
          f = Flatten <axis: int = 1> (x)
          s = Slice(x, st, en, ax)
          t = Transpose <perm: ints = [1, 0, 2]> (x)
          u = Unsqueeze(t, un)
          p, q = Split <axis: int = 2> (x, sp)
        }""".replace("y = Transpose <perm: ints = [2, 1, 0]> (Reshape(x, shp))", "y = Identity(r)"),
                  {"Reshape", "Flatten", "Slice", "Transpose", "Unsqueeze", "Split"}),
    "reduce_gather_concat_cast": ("""
        agraph (float[2, 3, 4] x, int64[2, 2] i) => (float[2, 1, 4] m, float[2, 3] s, float[2, 2, 3, 4] g,
                                                     float[2, 6, 4] c, int32[2, 3, 4] k)
        <int64[1] a1 = {1}, int64[1] a2 = {-1}, int64[2, 2] idx = {1, 0, 0, 1}>
        { m = ReduceMean <keepdims: int = 1, axes: ints = [1]> (x)
          s = ReduceSum <keepdims: int = 0> (x, a2)
          g = Gather <axis: int = 0> (x, idx)
          c = Concat <axis: int = 1> (x, x)
          k = Cast <to: int = 6> (x) }""", {"ReduceMean", "ReduceSum", "Gather", "Concat", "Cast"}),
}


def _compile_and_compare(proto, tmp_path, seed=0):
    model = load_model(proto)
    mod, report = lower_model(model)
    lib = build_library(mod, get_target("x86-64"), tmp_path / "m.so").library
    infos = graph_inputs(model)
    inputs = seeded_inputs(infos, seed)
    m = LoadedModel(lib, [t.name for t in infos], [v.name for v in model.graph.outputs])
    actual = m.run(inputs)
    expected = run_ort(proto, inputs)
    return report, compare_outputs(actual, expected, Tolerance(ATOL))


@pytest.mark.parametrize("case", sorted(CASES))
def test_edgec_lowering_matches_onnxruntime(case, tmp_path):
    text, owned = CASES[case]
    proto = model_from_text(HEADER + text)
    report, diffs = _compile_and_compare(proto, tmp_path)
    assert owned <= set(report.by_edgec), f"lowered by the frontend instead: {report.to_json()}"
    for d in diffs:
        assert d.ok, d


def test_unlowered_op_falls_back_to_tvm_frontend(tmp_path):
    proto = model_from_text(HEADER + """
        agraph (float[2, 3] x, float[3, 4] w) => (float[2, 4] y) { y = Einsum <equation: string = "ij,jk->ik"> (x, w) }""")
    report, diffs = _compile_and_compare(proto, tmp_path)
    assert report.by_frontend == {"Einsum": 1} and not report.by_edgec
    assert all(d.ok for d in diffs)


def test_same_upper_conv_is_lowered_by_edgec(tmp_path):
    proto = model_from_text(HEADER + """
        agraph (float[1, 2, 5, 5] x) => (float[1, 2, 3, 3] y) <float[2, 2, 3, 3] w = {%s}>
        { y = Conv <auto_pad: string = "SAME_UPPER", strides: ints = [2, 2]> (x, w) }""" % ", ".join(["0.25"] * 36))
    report, diffs = _compile_and_compare(proto, tmp_path)
    assert report.by_frontend == {} and report.by_edgec == {"Conv": 1}
    assert all(d.ok for d in diffs)


def test_declining_lowering_falls_back(tmp_path):
    # a dilated AveragePool is not handled by edgec's lowering: it must decline, not mis-compile.
    proto = model_from_text(HEADER.replace("17", "19") + """
        agraph (float[1, 2, 6, 6] x) => (float[1, 2, 4, 4] y)
        { y = AveragePool <kernel_shape: ints = [2, 2], dilations: ints = [2, 2]> (x) }""")
    report, diffs = _compile_and_compare(proto, tmp_path)
    assert report.by_frontend == {"AveragePool": 1}
    assert all(d.ok for d in diffs)


def test_dynamic_input_is_symbolic_or_needs_input_shape(tmp_path):
    """A named dim is one symbolic var of main's signature; without symbolic lowering (armv7's
    call plan) it needs --input-shape."""
    from edgec.errors import ModelValidationError

    proto = model_from_text(HEADER + "agraph (float[N, 3] x, float[N, 3] z) => (float[N, 3] y) { y = Add(x, z) }")
    mod, _ = lower_model(load_model(proto))
    dims = [str(p.ty.shape.values[0]) for p in mod["main"].params]
    assert dims == ["N", "N"], dims
    with pytest.raises(ModelValidationError, match="--input-shape x=N,3"):
        lower_model(load_model(proto), symbolic=False)
