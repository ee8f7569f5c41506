"""schedules/serial_when_small.py: kernels with symbolic extents run their parallel loop serially
when a call's work is below RUNTIME_SERIAL_WORK, decided per call. One symbolic build, checked against
onnxruntime at a size on each side of the threshold (both branches run); the guard is on the
elementwise kernel and must not be on a reshape (which Relax turns into a view) or on a kernel
with static extents (decided at compile time)."""

from __future__ import annotations

import numpy as np
import pytest
import tvm

from edgec.compare import Tolerance, compare_outputs
from edgec.ir import graph_inputs
from edgec.ir.loader import to_proto
from edgec.reference import run_ort, seeded_inputs
from edgec.rewrite.testing import parse
from edgec.targets import get_target
from edgec.targets.tvm.build import build_library, optimize_relax, schedule, tvm_target
from edgec.targets.tvm.lower import lower_model
from edgec.targets.tvm.runtime import LoadedModel
from edgec.targets.tvm.schedules.serial_when_small import RUNTIME_SERIAL_WORK

MODEL = """<ir_version: 8, opset_import: ["" : 17]>
    g (float[rows,256] x, float[4,256] c) => (float[rows,16,16] y, float[4,256] z)
      <int64[3] shape = {0, 16, 16}> {
      t = Tanh (x)
      u = Mul (t, x)
      y = Reshape (u, shape)
      z = Sigmoid (c)
    }"""


def _scheduled():
    spec = get_target("x86-64")
    target = tvm_target(spec)
    mod, _ = lower_model(parse(MODEL))
    mod = schedule(optimize_relax(mod, target, spec), spec, target, {})
    return {gv.name_hint: f.script() for gv, f in mod.functions.items() if isinstance(f, tvm.tirx.PrimFunc)}


def test_guard_only_on_symbolic_elementwise_kernels():
    scripts = _scheduled()
    guarded = {name for name, s in scripts.items() if f"< T.int64({RUNTIME_SERIAL_WORK})" in s and "T.parallel" in s}
    elementwise = [n for n in scripts if "tanh" in n]
    assert elementwise and set(elementwise) <= guarded, (guarded, list(scripts))
    assert not any("reshape" in n for n in guarded), guarded
    assert not any("sigmoid" in n for n in guarded), guarded


@pytest.mark.parametrize("rows", [1, 4 * RUNTIME_SERIAL_WORK // 256])
def test_both_branches_match_onnxruntime(rows, tmp_path, built={}):
    model = parse(MODEL)
    if "m" not in built:
        mod, _ = lower_model(model)
        lib = build_library(mod, get_target("x86-64"), tmp_path / "m.so").library
        built["m"] = LoadedModel(lib, ["x", "c"], ["y", "z"], threads=2)
    inputs = seeded_inputs(graph_inputs(model), seed=rows, dims={"rows": rows})
    diffs = compare_outputs(built["m"].run(inputs), run_ort(to_proto(model), inputs), Tolerance(1e-5))
    assert len(diffs) == 2 and all(d.ok for d in diffs), diffs
    assert inputs["x"].shape == (rows, 256) and np.isfinite(diffs[0].max_abs)
