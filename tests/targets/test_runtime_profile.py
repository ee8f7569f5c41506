"""LoadedModel.profile: per call site of the VM, the callee and its minimum time; the VM's
instrument hook is removed afterwards (a Python no-op left installed cost ~3 us per call), and the
model keeps computing what onnxruntime computes."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
import onnxruntime as ort
from onnx import helper

from edgec.compare import assert_outputs_match
from edgec.targets.registry import get_target
from edgec.targets.tvm.build import build_library
from edgec.targets.tvm.lower import lower_model
from edgec.targets.tvm.runtime import LoadedModel
from tests.targets.test_schedules import _conv, _model


def test_profile_lists_the_kernels_and_leaves_the_model_as_it_was(tmp_path):
    conv, inits, y = _conv("x", 16, 32, 3)
    model = _model([conv, helper.make_node("Relu", [y], ["out"])], [("x", [1, 16, 14, 14])], "out", inits)
    mod, _ = lower_model(ir.serde.deserialize_model(model))
    res = build_library(mod, get_target("host"), tmp_path / "m.so")
    m = LoadedModel(res.library, ["x"], ["out"], threads=2)
    feeds = {"x": np.random.default_rng(0).standard_normal((1, 16, 14, 14)).astype(np.float32)}
    installed = []
    real = m.vm.set_instrument
    m.vm.set_instrument = lambda f: (installed.append(f), real(f))[1]  # the real VM still gets each hook
    first, second = m.profile(feeds, 3), m.profile(feeds, 3)
    assert len(installed) == 4 and installed[-1] is None  # no hook left behind, not even a no-op
    assert [n for n, _ in first] == [n for n, _ in second]  # the same call sites each time
    kernels = [(n, s) for n, s in first if not n.startswith("vm.")]
    assert any("conv2d" in n for n, _ in kernels) and all(s > 0 for _, s in kernels)
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    assert_outputs_match(m.run(feeds), {"out": ref[0]}, atol=1e-4, rtol=1e-4)
