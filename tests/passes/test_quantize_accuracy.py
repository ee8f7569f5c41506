"""Issue 13's accuracy bar on a real (if small) task: a CNN trained on scikit-learn's digits loses
at most 1 point of held-out accuracy in static int8 and 0.5 in int16 activations, in onnxruntime
and compiled by edgec."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from edgec.quantize import QuantizeOptions, quantize_model
from edgec.reference import run_ort
from tests.models.digits_cnn import digits_split, onnx_model


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    d = tmp_path_factory.mktemp("digits")
    xtr, _, xte, yte = digits_split()
    calib = d / "calib"
    calib.mkdir()
    for i in range(128):
        np.save(calib / f"{i:03d}.npy", xtr[i:i + 1])
    onnx.save(onnx_model(), d / "digits.onnx")
    return d, xte, yte


def _accuracy(model, x, y) -> float:
    return float(np.mean(run_ort(model, {"x": x})["logits"].argmax(1) == y))


@pytest.mark.parametrize("mode,max_drop", [("int8", 0.01), ("int16", 0.005)])
def test_quantized_digits_cnn_keeps_its_accuracy(digits, mode, max_drop):
    d, xte, yte = digits
    out = d / f"digits.{mode}.onnx"
    quantize_model(d / "digits.onnx", out, QuantizeOptions(mode=mode, calibration_data=str(d / "calib"), samples=128))
    base, quant = _accuracy(str(d / "digits.onnx"), xte, yte), _accuracy(str(out), xte, yte)
    assert base > 0.95, f"the float model did not train: {base}"
    assert base - quant <= max_drop, f"{mode}: accuracy {base:.4f} -> {quant:.4f}"


def test_edgec_compiled_int8_digits_cnn_predicts_as_onnxruntime(digits):
    from edgec.api import CompileOptions, compile_model, run_artifact

    d, xte, yte = digits
    q = d / "digits.int8.onnx"
    quantize_model(d / "digits.onnx", q, QuantizeOptions(mode="int8", calibration_data=str(d / "calib"), samples=128))
    art = compile_model(q, d / "art", CompileOptions(target="x86-64", input_shapes={"x": list(xte.shape)}))
    got = run_artifact(art, {"x": xte})["logits"]
    ref = run_ort(str(q), {"x": xte})["logits"]
    assert got.shape == ref.shape and np.all(np.isfinite(got))
    agree = float(np.mean(got.argmax(1) == ref.argmax(1)))
    assert agree >= 0.995, agree
    assert abs(float(np.mean(got.argmax(1) == yte)) - float(np.mean(ref.argmax(1) == yte))) <= 0.005
