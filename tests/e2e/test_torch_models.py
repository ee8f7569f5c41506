"""PyTorch-exported LSTM/GRU/RNN/If models (tests/models/, made by make_torch_models.py): compile for
x86-64, run, compare with onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from tests.e2e.compile_check import run_and_check

MODELS = Path(__file__).resolve().parent.parent / "models"

CASES = [
    ("torch_lstm", (), {"LSTM"}),
    ("torch_gru", (), {"GRU"}),
    ("torch_gru", ("-O", "0"), {"GRU"}),
    ("torch_rnn", ("-O", "1"), {"RNN"}),
    ("torch_if", ("--input-shape", "x=1,6,4"), {"If"}),       # x.shape[1] > 4: then branch
    ("torch_if", ("--input-shape", "x=1,3,4", "-O", "0"), {"If"}),  # else branch
]


@pytest.mark.slow
@pytest.mark.parametrize("name,args,control_ops", CASES, ids=[f"{c[0]}{''.join(c[1])}" for c in CASES])
def test_compile_run_compare(name, args, control_ops, tmp_path, run_cli):
    model = MODELS / f"{name}.onnx"
    assert control_ops <= {n.op_type for n in onnx.load(model).graph.node}
    art = tmp_path / name
    r = run_cli("compile", model, "--target", "x86-64", "-o", art, *args)
    assert r.code == 0, r
    meta = json.loads((art / "metadata.json").read_text())
    lowered = set(meta["lowering"]["edgec"]) | set(meta["lowering"]["tvm-onnx-frontend"])
    assert not lowered & {"If", "Loop", "Scan"}, lowered
    # LSTM / GRU / RNN: edgec's recurrence kernel (targets/tvm/ops/rnn.py), never TVM's importer
    assert not set(meta["lowering"]["tvm-onnx-frontend"]) & {"LSTM", "GRU", "RNN"}, meta["lowering"]
    assert control_ops - {"If"} <= set(meta["lowering"]["edgec"]) | {"Loop", "Scan"}, meta["lowering"]
    run_and_check(run_cli, art, model, tmp_path, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["LOOP", "SCAN"])
def test_unrolled_loop_and_scan_compile_and_match(which, tmp_path, run_cli):
    from edgec.rewrite.testing import parse_proto
    from tests.passes import test_unroll_loop

    model = tmp_path / f"{which.lower()}.onnx"
    onnx.save(parse_proto(getattr(test_unroll_loop, which)), model)
    art = tmp_path / "art"
    assert run_cli("compile", model, "--target", "x86-64", "-o", art).code == 0
    run_and_check(run_cli, art, model, tmp_path, atol=1e-4)
