"""float16 chains computed in float32 and rounded once (targets/tvm/half.py), as onnxruntime's CPU
provider runs them: the slovorez zoo model's Conv -> Squeeze -> Add -> Relu -> ... -> Softmax chain
was 1.5e-3 off onnxruntime when every op's result was rounded to float16."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from tests.targets.lowering_util import rand

C, W, CLASSES = 32, 24, 16
ATOL = 5e-4  # one float16 ulp in [0.5, 1): the two float32 results may round to neighbours


def _weights(*shape, seed, gain):
    fan_in = int(np.prod(shape[1:]))
    return rand(*shape, seed=seed) * gain / np.sqrt(fan_in / 3)


def _chain(squeeze: bool, dtype=np.float16) -> onnx.ModelProto:
    """Two 1x5 Convs (+ bias, Relu) and a 1x1 Conv to CLASSES logits, Softmax over channels, all
    float16 (or `dtype`). With `squeeze`, as slovorez (tf2onnx's conv1d): each Conv is Unsqueeze/Squeeze'd
    around and its bias is a separate Add; without, Conv takes the bias and Relu follows (the
    default pipeline fuses them into edgec.FusedConv)."""
    nodes, inits = [], [numpy_helper.from_array(np.array([2], np.int64), "ax")]
    h = "x"
    specs = [(C, 5, 2.0), (C, 5, 2.0), (CLASSES, 1, 8.0)]
    for i, (cout, k, gain) in enumerate(specs):
        cin = C
        b = (rand(cout, seed=2 * i + 2) * 0.5).reshape((1, cout, 1) if squeeze else (cout,))
        inits += [numpy_helper.from_array(_weights(cout, cin, 1, k, seed=2 * i + 1, gain=gain).astype(dtype), f"w{i}"),
                  numpy_helper.from_array(b.astype(dtype), f"b{i}")]
        pads = [0, k // 2, 0, k // 2]
        last = i == len(specs) - 1
        if squeeze:
            nodes += [helper.make_node("Conv", [h, f"w{i}"], [f"c{i}"], pads=pads),
                      helper.make_node("Squeeze", [f"c{i}", "ax"], [f"s{i}"]),
                      helper.make_node("Add", [f"s{i}", f"b{i}"], [f"a{i}"])]
            if not last:
                nodes += [helper.make_node("Relu", [f"a{i}"], [f"r{i}"]),
                          helper.make_node("Unsqueeze", [f"r{i}", "ax"], [f"u{i}"])]
            h = f"a{i}" if last else f"u{i}"
        else:
            nodes.append(helper.make_node("Conv", [h, f"w{i}", f"b{i}"], [f"a{i}"], pads=pads))
            if not last:
                nodes.append(helper.make_node("Relu", [f"a{i}"], [f"r{i}"]))
            h = f"a{i}" if last else f"r{i}"
    nodes.append(helper.make_node("Softmax", [h], ["y"], axis=1))
    y_shape = [2, CLASSES, W] if squeeze else [2, CLASSES, 1, W]
    t = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", t, [2, C, 1, W])],
                          [helper.make_tensor_value_info("y", t, y_shape)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


@pytest.mark.parametrize("squeeze,nhwc", [(True, False), (False, False), (True, True)],
                         ids=["slovorez-conv1d", "fused-conv", "slovorez-conv1d-nhwc"])
def test_float16_chain_matches_onnxruntime(squeeze, nhwc, tmp_path):
    """Rounded after every op, the softmax was 3.4e-3 (slovorez-conv1d) / 1.5e-3 (fused-conv) off
    onnxruntime; computed in float32 and rounded once, it matches to the last bit here."""
    from edgec.api import CompileOptions, compile_model, run_artifact
    from edgec.reference import run_ort

    proto = _chain(squeeze)
    onnx.save(proto, tmp_path / "m.onnx")
    passes = None
    if nhwc:  # ARM's pipeline (to-nhwc: edgec.ConvNHWC, whose weight the lowering re-lays out), built for the host
        from edgec.pipelines import default_pipeline
        from edgec.targets.registry import get_target

        passes = default_pipeline(get_target("armv8"), 2)
    art = compile_model(tmp_path / "m.onnx", tmp_path / "art", CompileOptions(target="x86-64", passes=passes))
    assert art.metadata["lowering"]["edgec"].get("ConvNHWC" if nhwc else "Squeeze" if squeeze else "FusedConv"), \
        art.metadata["lowering"]
    feeds = {"x": rand(2, C, 1, W, seed=7, dtype=np.float16)}
    actual, expected = run_artifact(art, feeds)["y"], run_ort(proto, feeds)["y"]
    assert actual.shape == expected.shape and actual.dtype == expected.dtype == np.float16
    np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64), atol=ATOL, rtol=0,
                               equal_nan=False)


def test_float32_chain_has_no_casts():
    """Only float16 is widened: a float32 model is lowered exactly as before (no astype)."""
    from edgec.ir import load_model
    from edgec.targets.tvm.lower import lower_model

    mod, _ = lower_model(load_model(_chain(True, np.float32)))
    assert "astype" not in mod.script()
    mod16, _ = lower_model(load_model(_chain(True)))
    assert "astype" in mod16.script()
