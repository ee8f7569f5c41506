"""No node falls back silently (issue 12): compile prints where nodes went and how many kernels
run generic (unscheduled) code; metadata.json holds the same counts."""

from __future__ import annotations

import json

from edgec.cli_checks import lowering_summary
from tests.conftest import EXAMPLES


def test_summary_names_importer_ops_and_generic_kernels():
    text = lowering_summary({"edgec": {"Conv": 3, "Relu": 2}, "tvm-onnx-frontend": {"Einsum": 2, "Det": 1},
                             "schedules": {"conv2d-nchwc": 3, "none": 2}, "records": {"applied": 1}})
    assert text == ("lowering: 5 node(s) by edgec, 3 by TVM's ONNX importer (Det 1, Einsum 2); "
                    "6 kernel(s), 4 with an edgec schedule, 2 unscheduled (generic code, slow)")
    text = lowering_summary({"edgec": {"MatMul": 1}, "schedules": {"matmul": 1, "parallel-symbolic": 2}})
    assert text.endswith("3 kernel(s), 3 with an edgec schedule (2 of them only parallel: symbolic extents, not tiled)")


def test_compile_prints_the_summary_matching_metadata(tmp_path, run_cli):
    r = run_cli("compile", EXAMPLES / "small_cnn.onnx", "-t", "x86-64", "-o", tmp_path / "a")
    assert r.code == 0, r
    lowering = json.loads((tmp_path / "a" / "metadata.json").read_text())["lowering"]
    assert lowering_summary(lowering) in r.out
    assert "0 by TVM's ONNX importer" in r.out
