"""Lowerings of edgec-domain ops emitted by the fusion and layout passes, compiled with TVM for
x86 and compared with onnxruntime running the ops' model-local functions (atol 1e-4 fp32)."""

from __future__ import annotations

import numpy as np
import pytest

from edgec.compare import Tolerance, compare_outputs
from edgec.infra.context import PassContext
from edgec.ir import graph_inputs
from edgec.ir.loader import to_proto
from edgec.reference import run_ort, seeded_inputs
from edgec.rewrite.testing import op_list, parse
from edgec.targets import get_target
from edgec.targets.tvm.build import build_library
from edgec.targets.tvm.lower import lower_model
from edgec.targets.tvm.runtime import LoadedModel

ATOL = 1e-4


def compile_and_compare(model, tmp_path, seed=0):
    proto = to_proto(model)
    mod, report = lower_model(model)
    lib = build_library(mod, get_target("x86-64"), tmp_path / "m.so").library
    infos = graph_inputs(model)
    inputs = seeded_inputs(infos, seed)
    m = LoadedModel(lib, [t.name for t in infos], [v.name for v in model.graph.outputs])
    return report, compare_outputs(m.run(inputs), run_ort(proto, inputs), Tolerance(ATOL))


ATTENTION = """<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,2,4,8] q, float[1,4,2,8] k, float[1,2,4,8] v, float[1,1,1,4] mask) => (float[1,2,4,8] y)
      <float s = {2.828427}> {
      kt = Transpose <perm = [0, 2, 3, 1]> (k)
      qk = MatMul (q, kt)
      sc = Div (qk, s)
      a = Add (sc, mask)
      p = Softmax <axis = -1> (a)
      y = MatMul (p, v)
    }"""


@pytest.mark.parametrize("masked", [True, False])
def test_attention_lowering(masked, tmp_path):
    from edgec.passes.fusion.recognize_attention import RecognizeAttention

    text = ATTENTION if masked else ATTENTION.replace("a = Add (sc, mask)", "").replace("Softmax <axis = -1> (a)",
                                                                                         "Softmax <axis = -1> (sc)")
    model = parse(text)
    assert RecognizeAttention()(model, PassContext()).modified
    assert "edgec.Attention" in op_list(model)
    report, diffs = compile_and_compare(model, tmp_path)
    assert report.by_edgec["Attention"] == 1, report.to_json()
    for d in diffs:
        assert d.ok, d
    assert np.isfinite(diffs[0].max_abs)


POOLS = """<ir_version: 8, opset_import: ["" : 17]>
    g (float[1,3,9,9] x) => (float[1,4,5,5] a, float[1,4,4,4] m) <float[4,3,3,3] w = {%s}> {
      c = Conv <pads = [1, 1, 1, 1]> (x, w)
      a = AveragePool <kernel_shape = [3, 3], strides = [2, 2], pads = [1, 1, 1, 1], count_include_pad = 1> (c)
      m = MaxPool <kernel_shape = [2, 2], strides = [2, 2]> (c)
    }""" % ", ".join(f"{v:.4f}" for v in np.linspace(-1, 1, 108))


def _nhwc(model, io_layout="nchw"):
    from edgec.passes.layout.to_nhwc import ToNHWC

    assert ToNHWC(io_layout=io_layout)(model, PassContext()).modified
    return model


def test_nhwc_conv_and_pool_lowering(tmp_path):
    model = _nhwc(parse(POOLS))
    assert op_list(model) == ["Transpose", "edgec.ConvNHWC", "edgec.AveragePoolNHWC", "Transpose",
                              "edgec.MaxPoolNHWC", "Transpose"]
    report, diffs = compile_and_compare(model, tmp_path)
    assert {"ConvNHWC", "AveragePoolNHWC", "MaxPoolNHWC"} <= set(report.by_edgec), report.to_json()
    for d in diffs:
        assert d.ok, d


@pytest.mark.parametrize("name", ["resnet", "mobilenetv2"])
def test_arm_o2_models_compile_and_match(name, tmp_path):
    """The -O2 pipeline of an NHWC (ARM) target, lowered and built for x86 so it can run here."""
    from edgec.infra.manager import PassManager
    from edgec.infra.pipeline import parse_pipeline
    from edgec.ir.loader import load_model
    from edgec.pipelines import default_pipeline
    from tests.passes.models import MODELS

    model = load_model(MODELS[name]())
    model = PassManager(parse_pipeline(default_pipeline(get_target("armv8"), 2))).run(model, PassContext()).model
    assert "edgec.ConvNHWC" in op_list(model)
    report, diffs = compile_and_compare(model, tmp_path)
    assert report.by_edgec["ConvNHWC"] == op_list(model).count("edgec.ConvNHWC"), report.to_json()
    for d in diffs:
        assert d.ok, d
