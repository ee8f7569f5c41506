"""The `onnxsim` pass (onnx-simplifier, off by default): folds BatchNormalization into Conv and a
shape subgraph, matching onnxruntime; leaves a model with nothing to simplify unchanged; a failure
inside onnxsim is one line naming the pass; listing the passes does not import onnxsim."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgec.errors import InternalError
from edgec.infra.context import PassContext
from edgec.infra.manager import PassManager
from edgec.infra.pipeline import parse_pipeline
from edgec.pipelines import default_pipeline
from edgec.rewrite.testing import assert_model_outputs_match, op_types, parse_proto


def run(proto: onnx.ModelProto) -> tuple[ir.Model, bool]:
    """The onnxsim pass on proto: (the new model, modified). A functional pass: a new model object."""
    model = ir.serde.deserialize_model(proto)
    result = PassManager(parse_pipeline("onnxsim")).run(model, PassContext())
    assert result.model is not model or not result.modified
    return result.model, result.modified


def _conv_bn_reshape(ir_version: int = 8) -> onnx.ModelProto:
    """Conv -> BatchNormalization -> Relu, then Reshape to [1, -1] through Shape/Gather/Concat of
    the (static) activation: onnxsim folds the BN into the Conv and the shape chain to a constant."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    scale, bias = rng.uniform(0.5, 1.5, 4).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    mean, var = rng.standard_normal(4).astype(np.float32), rng.uniform(0.5, 2, 4).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in
             ((w, "w"), (scale, "scale"), (bias, "bias"), (mean, "mean"), (var, "var"),
              (np.array([0], np.int64), "zero"), (np.array([-1], np.int64), "minus1"))]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["b"], epsilon=1e-5),
             helper.make_node("Relu", ["b"], ["r"]),
             helper.make_node("Shape", ["r"], ["s"]),
             helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
             helper.make_node("Concat", ["n", "minus1"], ["target"], axis=0),
             helper.make_node("Reshape", ["r", "target"], ["y"])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 256])], inits)
    proto = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=ir_version)
    onnx.checker.check_model(proto)
    return proto


def test_onnxsim_folds_batchnorm_and_shape_chain_matching_onnxruntime():
    proto = _conv_bn_reshape()
    model, modified = run(proto)
    assert modified
    assert "BatchNormalization" not in op_types(model) and "Shape" not in op_types(model), op_types(model)
    assert len(op_types(model)) < len(proto.graph.node)
    assert_model_outputs_match(proto, model, atol=1e-4, rtol=1e-4, seed=3)


def test_onnxsim_leaves_a_model_with_nothing_to_simplify():
    proto = parse_proto("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[2, 3] x, float[2, 3] z) => (float[2, 3] y) {
      s = Add(x, z)
      y = Relu(s)
    }""")
    model, modified = run(proto)
    assert not modified and op_types(model) == ["Add", "Relu"]
    assert_model_outputs_match(proto, model, atol=0, rtol=0)


def test_onnxsim_failure_is_one_line_naming_the_pass():
    """onnxsim folds constants with onnxruntime, which refuses IR version 14 (the default of onnx 1.23, edgec's onnx);
    onnxsim then fails on its own marker attribute. The pass turns that into one InternalError
    line naming it (exit 1 from the CLI)."""
    model = ir.serde.deserialize_model(_conv_bn_reshape(ir_version=14))
    with pytest.raises(InternalError) as e:
        PassManager(parse_pipeline("onnxsim")).run(model, PassContext())
    line = e.value.one_line()
    assert "\n" not in line and line.startswith("pass 'onnxsim': onnx-simplifier"), line


def test_onnxsim_is_off_by_default_and_not_imported_to_list_passes():
    assert all("onnxsim" not in default_pipeline(None, level).split(",") for level in (0, 1, 2, 3))
    code = ("import sys; from edgec.infra.registry import default_registry; reg = default_registry(); "
            "assert 'onnxsim' in reg.names(), reg.names(); print('onnxsim' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stdout + r.stderr
