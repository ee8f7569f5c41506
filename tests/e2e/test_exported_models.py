"""Models exported by tf2onnx (TensorFlow/Keras) and paddle2onnx (PaddlePaddle), made by
tests/models/make_tf_models.py and make_paddle_models.py: fix the dynamic batch dimension, compile
for x86-64 (and armv8 under qemu), run and compare with onnxruntime on seeded inputs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgec.api import run_artifact
from edgec.artifact import load_artifact
from edgec.reference import run_ort, seeded_inputs

MODELS = Path(__file__).resolve().parent.parent / "models"

# name, --input-shape, ops the exporter must have emitted (so the test covers what it claims)
CASES = {
    "tf_cnn": ("image=1,32,32,3", {"Transpose", "Conv", "Clip", "MaxPool", "GlobalAveragePool", "Softmax"}),
    "tf_rnn": ("sequence=1,6,5", {"LSTM", "Loop"}),
    "tf_resize_pad": ("image=1,12,12,4", {"Resize", "Pad", "Tile", "Conv"}),
    "tf_same_pad": ("image=1,37,29,3", {"Conv", "MaxPool", "AveragePool"}),  # auto_pad SAME_UPPER, odd sizes
    "paddle_mobilenet_v2": ("image=1,3,64,64", {"Conv", "BatchNormalization", "Clip", "GlobalAveragePool"}),
    "paddle_lstm": ("sequence=1,7,6", {"LSTM"}),
    "paddle_transformer": ("tokens=1,10,32", {"Softmax", "Erf", "ReduceMean"}),
}
ATOL, RTOL = 1e-4, 1e-4  # fp32; measured errors are all below 1e-6 (docs/conformance.md)


def _compile_and_compare(name: str, target: str, tmp_path: Path, run_cli, *extra: str) -> dict:
    shape, required = CASES[name]
    model = MODELS / f"{name}.onnx"
    proto = onnx.load(model)
    assert required <= {n.op_type for n in proto.graph.node}
    batch = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param and not batch.dim_value, "exported models keep a dynamic batch dimension"
    art = tmp_path / name
    r = run_cli("compile", model, "--target", target, "--input-shape", shape, "-o", art, *extra)
    assert r.code == 0, r
    loaded = load_artifact(art)
    inputs = seeded_inputs(loaded.inputs, seed=3)
    expected = run_ort(str(model), inputs)
    actual = run_artifact(loaded, inputs)
    assert set(actual) == set(expected) == {o.name for o in proto.graph.output}
    for k, e in expected.items():
        assert actual[k].shape == e.shape, k
        np.testing.assert_allclose(actual[k], e, atol=ATOL, rtol=RTOL, err_msg=f"{name}:{k}")
        assert np.abs(e).max() > 1e-3, "a near-zero output would make the comparison vacuous"
    return json.loads((art / "metadata.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_exported_model_x86(name, tmp_path, run_cli):
    meta = _compile_and_compare(name, "x86-64", tmp_path, run_cli)
    # LSTM / GRU run as edgec's recurrence kernel (targets/tvm/ops/rnn.py); Loop / If / Scan unrolled or folded
    assert not set(meta["lowering"]["edgec"]) & {"Loop", "If", "Scan"}, meta["lowering"]
    assert meta["lowering"]["tvm-onnx-frontend"] == {}, "every op lowered by edgec itself"


def test_tf_while_loop_is_unrolled_through_its_simulated_condition(tmp_path, run_cli):
    """tf2onnx exports the Keras GRU as a Loop whose condition is `i < 6 and time + 1 < 6`."""
    out = tmp_path / "opt.onnx"
    r = run_cli("optimize", MODELS / "tf_rnn.onnx", "--input-shape", "sequence=1,6,5", "-o", out)
    assert r.code == 0, r
    ops = [n.op_type for n in onnx.load(out).graph.node]
    # the LSTM is left to the x86 backend's recurrence kernel; the Loop's 6 GRU steps are unrolled
    # (one Tanh each, the candidate): all 6 trips ran
    assert "Loop" not in ops and ops.count("LSTM") == 1
    assert ops.count("Tanh") == 6


@pytest.mark.parametrize("name", ["tf_cnn", "tf_resize_pad", "tf_same_pad"])
def test_tf_nhwc_models_keep_no_transpose_on_nhwc_targets(name, tmp_path, run_cli):
    """tf2onnx wraps each NCHW Conv (and the bilinear Resize) in Transposes; on ARM (NHWC) they cancel.
    tf_same_pad needs its auto_pad resolved first (to-nhwc declines auto_pad SAME_*)."""
    out = tmp_path / "opt.onnx"
    r = run_cli("optimize", MODELS / f"{name}.onnx", "-t", "armv8", "--input-shape", CASES[name][0], "-o", out)
    assert r.code == 0, r
    ops = {n.op_type for n in onnx.load(out).graph.node}
    assert "Transpose" not in ops and not ops & {"Conv", "MaxPool", "AveragePool"}, ops


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tf_cnn", "tf_resize_pad", "tf_same_pad", "tf_rnn", "paddle_mobilenet_v2"])
def test_exported_model_armv8_under_qemu(name, tmp_path, run_cli):
    missing = [t for t in ("aarch64-linux-gnu-g++", "qemu-aarch64") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt packages in .ci/apt-packages.txt)")
    _compile_and_compare(name, "armv8", tmp_path, run_cli)
