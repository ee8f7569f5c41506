"""Helpers for the per-family lowering tests: compile a model with edgec for x86-64, run it, and
compare with onnxruntime or onnx's reference evaluator."""

from __future__ import annotations

import numpy as np
import onnx

from edgec.ir import graph_inputs, load_model
from edgec.targets import get_target
from tests.conftest import model_from_text

ATOL = 1e-4


def model(opset: int, text: str, ir_version: int = 8) -> onnx.ModelProto:
    return model_from_text(f'<ir_version: {ir_version}, opset_import: ["" : {opset}]>\n' + text, ir_version)


def edgec_run(proto: onnx.ModelProto, inputs: dict[str, np.ndarray], tmp_path):
    from edgec.targets.tvm.build import build_library
    from edgec.targets.tvm.lower import lower_model
    from edgec.targets.tvm.runtime import LoadedModel

    m = load_model(proto)
    mod, report = lower_model(m)
    lib = build_library(mod, get_target("x86-64"), tmp_path / "m.so").library
    lm = LoadedModel(lib, [t.name for t in graph_inputs(m)], [v.name for v in m.graph.outputs])
    return lm.run(inputs), report


def reference(proto: onnx.ModelProto, inputs: dict[str, np.ndarray], engine: str = "ort"):
    if engine == "ort":
        from edgec.reference import run_ort

        return run_ort(proto, inputs)
    from onnx.reference import ReferenceEvaluator

    names = [o.name for o in proto.graph.output]
    return dict(zip(names, ReferenceEvaluator(proto).run(None, inputs)))


def check(proto, inputs, tmp_path, owned=(), engine="ort", atol=ATOL, rtol=1e-5):
    """Compile with edgec, compare every output (shape, dtype, values) with the reference, and
    check edgec's own lowering (not TVM's frontend) handled the `owned` ops."""
    from edgec.compare import assert_outputs_match

    actual, report = edgec_run(proto, inputs, tmp_path)
    expected = reference(proto, inputs, engine)
    # missing / extra outputs, shapes, NaN / Inf patterns and values (edgec.compare), then exact
    # dtypes and exact integers
    assert_outputs_match(actual, expected, atol, rtol)
    for name, e in expected.items():
        a = actual[name]
        assert a.dtype == e.dtype, (name, a.dtype, e.dtype)
        if e.dtype.kind in "biu":
            np.testing.assert_array_equal(a, e, err_msg=name)
    missing = set(owned) - set(report.by_edgec) - set(report.folded)
    assert not missing, f"not lowered by edgec: {missing}; {report.to_json()}"
    return report


def rand(*shape, seed=0, lo=-1.0, hi=1.0, dtype=np.float32):
    return np.random.default_rng(seed).uniform(lo, hi, size=shape).astype(dtype)
