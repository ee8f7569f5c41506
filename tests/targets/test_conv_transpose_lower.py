"""ConvTranspose lowered by edgec as a phase Conv + pixel shuffle (targets/tvm/ops/conv_transpose.py):
matches onnxruntime across kernels, strides, pads, output_padding, bias and float16, and leaves
what it does not take (groups, dilations, auto_pad, a computed weight) to TVM's importer."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from edgec.targets.tvm.ops.conv_transpose import phase_weights
from tests.targets.lowering_util import check


def ct_model(cin, cout, k, s, pads=(0, 0, 0, 0), out_pad=(0, 0), bias=True, hw=(5, 7), dtype=np.float32,
             group=1, dilation=1, auto_pad=None, weight_input=False):
    rng = np.random.default_rng(k * 10 + s)
    tp = TP.FLOAT16 if dtype == np.float16 else TP.FLOAT
    w = rng.uniform(-1, 1, (cin, cout // group, k[0], k[1])).astype(dtype)
    attrs = dict(kernel_shape=list(k), strides=list(s), group=group, dilations=[dilation, dilation])
    if auto_pad:
        attrs["auto_pad"] = auto_pad
    else:
        attrs.update(pads=list(pads), output_padding=list(out_pad))
    ins = ["x", "w"] + (["b"] if bias else [])
    inits = [] if weight_input else [nh.from_array(w, "w")]
    if bias:
        inits.append(nh.from_array(rng.uniform(-1, 1, cout).astype(dtype), "b"))
    g_inputs = [h.make_tensor_value_info("x", tp, [1, cin, *hw])]
    if weight_input:
        g_inputs.append(h.make_tensor_value_info("w", tp, list(w.shape)))
    if auto_pad:  # SAME_*: output = input * stride
        out = [hw[0] * s[0], hw[1] * s[1]]
    else:
        out = [(hw[i] - 1) * s[i] + (k[i] - 1) * dilation + 1 - pads[i] - pads[i + 2] + out_pad[i] for i in (0, 1)]
    g = h.make_graph([h.make_node("ConvTranspose", ins, ["y"], **attrs)], "ct", g_inputs,
                     [h.make_tensor_value_info("y", tp, [1, cout, *out])], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    return m, w


def _x(m, cin, hw, dtype=np.float32):
    return {"x": np.random.default_rng(3).uniform(-1, 1, (1, cin, *hw)).astype(dtype)}


@pytest.mark.parametrize("cin, cout, k, s, pads, out_pad, bias", [
    (24, 24, (2, 2), (2, 2), (0, 0, 0, 0), (0, 0), True),   # the PP-OCR detectors' upsampling
    (24, 1, (2, 2), (2, 2), (0, 0, 0, 0), (0, 0), True),
    (8, 4, (4, 4), (2, 2), (1, 1, 1, 1), (0, 0), True),     # vit_s_focus: k = 2s, pad 1
    (3, 5, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), False),    # k not a multiple of s, output_padding
    (4, 6, (3, 2), (1, 3), (0, 1, 2, 0), (0, 2), True),     # uneven strides and pads
    (2, 3, (5, 5), (3, 3), (2, 0, 0, 3), (0, 0), True),
    (4, 4, (3, 3), (1, 1), (1, 1, 1, 1), (0, 0), True),     # stride 1: a flipped Conv
])
def test_conv_transpose_matches_onnxruntime(tmp_path, cin, cout, k, s, pads, out_pad, bias):
    m, _ = ct_model(cin, cout, k, s, pads, out_pad, bias)
    check(m, _x(m, cin, (5, 7)), tmp_path, owned=("ConvTranspose",), atol=1e-4)


def test_float16_accumulates_in_float32(tmp_path):
    m, _ = ct_model(16, 8, (4, 4), (2, 2), (1, 1, 1, 1), dtype=np.float16)
    check(m, _x(m, 16, (5, 7), np.float16), tmp_path, owned=("ConvTranspose",), atol=2e-3, rtol=2e-3)


@pytest.mark.parametrize("kw", [{"group": 2}, {"dilation": 2}, {"auto_pad": "SAME_UPPER"}, {"weight_input": True}])
def test_what_it_does_not_take_goes_to_the_importer_and_still_matches(tmp_path, kw):
    m, w = ct_model(4, 4, (3, 3), (2, 2), **kw)
    inputs = _x(m, 4, (5, 7))
    if kw.get("weight_input"):
        inputs["w"] = w
    report = check(m, inputs, tmp_path, atol=1e-4)
    assert "ConvTranspose" not in report.by_edgec and report.by_frontend["ConvTranspose"] == 1


def test_phase_weights_reproduce_the_definition():
    """numpy: the phase Conv + shuffle equals ConvTranspose written as a scatter of x * w."""
    rng = np.random.default_rng(0)
    cin, cout, k, s, hh = 2, 3, 5, 2, 4
    w = rng.standard_normal((cin, cout, k, k))
    x = rng.standard_normal((cin, hh, hh))
    full = np.zeros((cout, (hh - 1) * s + k, (hh - 1) * s + k))
    for iy in range(hh):
        for ix in range(hh):
            full[:, iy * s:iy * s + k, ix * s:ix * s + k] += np.einsum("c,cokl->okl", x[:, iy, ix], w)
    wc = phase_weights(w, (s, s))
    j = wc.shape[-1]
    xp = np.pad(x, ((0, 0), (j - 1, j - 1), (j - 1, j - 1)))
    q = hh + j - 1
    y = np.zeros((wc.shape[0], q, q))
    for a in range(q):
        for b in range(q):
            y[:, a, b] = np.einsum("cij,ocij->o", xp[:, a:a + j, b:b + j], wc)
    shuffled = y.reshape(cout, s, s, q, q).transpose(0, 3, 1, 4, 2).reshape(cout, q * s, q * s)
    np.testing.assert_allclose(shuffled[:, :full.shape[1], :full.shape[2]], full, atol=1e-12)
    assert np.abs(shuffled[:, full.shape[1]:, :]).max(initial=0) < 1e-12  # the padded taps add nothing
