"""com.microsoft contrib ops, checked against onnxruntime's own implementations (atol 1e-4)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgec.compare import Tolerance, compare_outputs
from edgec.ir import graph_inputs, load_model
from edgec.reference import run_ort, seeded_inputs
from edgec.targets import get_target
from edgec.targets.tvm.build import build_library
from edgec.targets.tvm.lower import lower_model
from edgec.targets.tvm.runtime import LoadedModel

RNG = np.random.default_rng(5)


def _model(nodes, inputs, outputs, inits=()):
    g = helper.make_graph(nodes, "ms", inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    m.ir_version = 8
    return m


def _f(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _w(name, shape):
    return numpy_helper.from_array(RNG.standard_normal(shape).astype(np.float32) * 0.5, name)


CASES = {
    "FusedConv": _model([helper.make_node("FusedConv", ["x", "w", "b", "z"], ["y"], domain="com.microsoft",
                                          activation="Relu", pads=[1, 1, 1, 1])],
                        [_f("x", [1, 3, 8, 8]), _f("z", [1, 4, 8, 8])], [_f("y", [1, 4, 8, 8])],
                        [_w("w", (4, 3, 3, 3)), _w("b", (4,))]),
    "FusedConv-LeakyRelu": _model([helper.make_node("FusedConv", ["x", "w", "b"], ["y"], domain="com.microsoft",
                                                    activation="LeakyRelu", activation_params=[0.1])],
                                  [_f("x", [1, 3, 8, 8])], [_f("y", [1, 4, 6, 6])], [_w("w", (4, 3, 3, 3)), _w("b", (4,))]),
    "Gelu": _model([helper.make_node("Gelu", ["x"], ["y"], domain="com.microsoft")], [_f("x", [2, 16])], [_f("y", [2, 16])]),
    "BiasGelu": _model([helper.make_node("BiasGelu", ["x", "b"], ["y"], domain="com.microsoft")],
                       [_f("x", [2, 16])], [_f("y", [2, 16])], [_w("b", (16,))]),
    "FastGelu": _model([helper.make_node("FastGelu", ["x", "b"], ["y"], domain="com.microsoft")],
                       [_f("x", [2, 16])], [_f("y", [2, 16])], [_w("b", (16,))]),
    "QuickGelu": _model([helper.make_node("QuickGelu", ["x"], ["y"], domain="com.microsoft", alpha=1.5)],
                        [_f("x", [2, 16])], [_f("y", [2, 16])]),
    "SkipLayerNormalization": _model(
        [helper.make_node("SkipLayerNormalization", ["x", "s", "g", "be", "bi"], ["y"], domain="com.microsoft",
                          epsilon=1e-5)],
        [_f("x", [1, 4, 16]), _f("s", [1, 4, 16])], [_f("y", [1, 4, 16])], [_w("g", (16,)), _w("be", (16,)), _w("bi", (16,))]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_microsoft_op_matches_onnxruntime(case, tmp_path):
    proto = CASES[case]
    model = load_model(proto)
    mod, report = lower_model(model)
    assert set(report.by_edgec) == {proto.graph.node[0].op_type}
    lib = build_library(mod, get_target("x86-64"), tmp_path / "m.so").library
    infos = graph_inputs(model)
    inputs = seeded_inputs(infos, 1)
    actual = LoadedModel(lib, [t.name for t in infos], ["y"]).run(inputs)
    for d in compare_outputs(actual, run_ort(proto, inputs), Tolerance(1e-4)):
        assert d.ok, d


def test_unknown_microsoft_op_is_unsupported(tmp_path):
    from edgec.errors import UnsupportedOpError

    proto = _model([helper.make_node("DynamicQuantizeLSTM", ["x"], ["y"], domain="com.microsoft")],
                   [_f("x", [2, 16])], [_f("y", [2, 16])])
    with pytest.raises(UnsupportedOpError, match="op 'DynamicQuantizeLSTM' domain 'com.microsoft'"):
        lower_model(load_model(proto))
