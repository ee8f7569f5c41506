"""CLI: --print-pipeline per target and level, --io-layout, --trace-rewrites, --report."""

from __future__ import annotations

import json

import onnx
import pytest

from edgec.pipelines import default_pipeline
from edgec.targets.registry import get_target
from tests.passes.models import MODELS


@pytest.fixture
def resnet_file(tmp_path):
    path = tmp_path / "resnet.onnx"
    onnx.save(MODELS["resnet"](), path)
    return path


def test_print_pipeline_depends_on_target_layout_and_level(run_cli, resnet_file):
    arm = run_cli("compile", resnet_file, "-t", "armv8", "-O", "2", "--print-pipeline")
    x86 = run_cli("compile", resnet_file, "-t", "x86-64", "-O", "2", "--print-pipeline")
    arm0 = run_cli("compile", resnet_file, "-t", "armv8", "-O", "0", "--print-pipeline")
    assert arm.code == x86.code == arm0.code == 0
    assert "to-nhwc" in arm.out.split(",") and "to-nhwc" not in x86.out
    assert "to-nhwc" not in arm0.out and "fold-batchnorm" in x86.out
    assert arm.out.strip() == default_pipeline(get_target("armv8"), 2)
    nhwc = run_cli("compile", resnet_file, "-t", "cortex-a76", "--io-layout", "nhwc", "--print-pipeline")
    assert "to-nhwc{io_layout=nhwc}" in nhwc.out
    bad = run_cli("compile", resnet_file, "-t", "x86-64", "--io-layout", "nhwc", "--print-pipeline")
    assert bad.code == 2 and "needs the to-nhwc pass" in bad.err


def test_optimize_trace_rewrites_lists_fired_rules(run_cli, resnet_file, tmp_path):
    r = run_cli("optimize", resnet_file, "-o", tmp_path / "o.onnx", "-t", "armv8", "--trace-rewrites")
    assert r.code == 0, r
    assert "fold-batchnorm/ConvBatchNorm: 6 hit(s)" in r.err
    assert "to-nhwc/ConvToNHWC: 6 hit(s)" in r.err and "at: BatchNormalization_7, " in r.err
    assert "decline(s)" in r.err and "rewrite trace:" not in r.out


def test_optimize_io_layout_nhwc_is_recorded(run_cli, resnet_file, tmp_path):
    out = tmp_path / "o.onnx"
    r = run_cli("optimize", resnet_file, "-o", out, "-t", "armv8", "--io-layout", "nhwc")
    assert r.code == 0, r
    m = onnx.load(out)
    props = {p.key: p.value for p in m.metadata_props}
    assert json.loads(props["edgec.io_layout"]) == {"x": "NHWC"}
    assert [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim] == [1, 32, 32, 3]
    assert not any(n.op_type == "Transpose" for n in m.graph.node)


@pytest.mark.slow
def test_compile_report_and_trace(run_cli, resnet_file, tmp_path):
    report = tmp_path / "report.html"
    r = run_cli("compile", resnet_file, "-o", tmp_path / "art", "-t", "host", "--report", report, "--trace-rewrites")
    assert r.code == 0, r
    assert "fuse-activation/ConvRelu" in r.err
    page = report.read_text()
    meta = json.loads((tmp_path / "art" / "metadata.json").read_text())
    for spec in meta["pipeline"]["text"].split(","):
        assert f"<code>{spec}</code>" in page, spec
    assert "<svg" in page and "<script" not in page
    assert "ConvBatchNorm</b> ×6" in page and "BatchNormalization_7" in page
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert meta["pipeline"]["ops_before"]["BatchNormalization"] == 6


def test_ops_lists_what_edgec_lowers_itself(run_cli):
    r = run_cli("ops", "--json")
    assert r.code == 0, r
    ops = json.loads(r.out)
    assert {"Conv", "MatMul", "Shrink", "com.microsoft::MatMulNBits"} <= set(ops) and ops == sorted(ops)
    assert "Softsign" not in ops  # left to TVM's ONNX importer (docs/adding-an-op-lowering.md)
