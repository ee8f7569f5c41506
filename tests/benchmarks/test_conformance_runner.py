"""The conformance runner on a small --filter subset: table format and consistent counts."""

from __future__ import annotations

import json
import re

from tests.benchmark_scripts import load_benchmark


def _runner():
    return load_benchmark("conformance.py", "edgec_conformance")


def test_subset_table_and_counts(tmp_path, capsys):
    conf = _runner()
    out_json = tmp_path / "c.json"
    # test_abs passes everywhere; test_cast_FLOAT_to_FLOAT8E4M3FN is unsupported by edgec and
    # refused (IR version) by onnxruntime; the ReduceL2 cases need axes bound as constants
    rc = conf.main(["--filter", r"^test_(abs|cast_FLOAT_to_FLOAT8E4M3FN|reduce_l2_keep_dims_example)$",
                    "--jobs", "2", "--timeout", "300", "--json", str(out_json)])
    assert rc == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert "edgec" in lines[0] and "onnxruntime" in lines[0]
    assert lines[1].split() == ["op", "|", "pass", "mism", "unsup", "error", "|", "pass", "mism", "unsup", "error"]
    rows = {}
    for line in lines:
        m = re.match(r"^(\w+)\s+\|((?:\s+\d+){4})\s+\|((?:\s+\d+){4})\s*$", line)
        if m:
            rows[m.group(1)] = ([int(v) for v in m.group(2).split()], [int(v) for v in m.group(3).split()])
    assert set(rows) == {"Abs", "Cast", "ReduceL2", "TOTAL"}
    for i in range(2):  # per engine: the op rows add up to TOTAL, and TOTAL to the number of cases
        summed = [sum(rows[op][i][k] for op in rows if op != "TOTAL") for k in range(4)]
        assert summed == rows["TOTAL"][i]
        assert sum(rows["TOTAL"][i]) == 3
    assert rows["Abs"] == ([1, 0, 0, 0], [1, 0, 0, 0])
    assert rows["Cast"][0] == [0, 0, 1, 0] and rows["Cast"][1][0] == 0
    assert rows["ReduceL2"][0] == [1, 0, 0, 0]
    assert re.search(r"^total edgec: cases=3 pass=2 mismatch=0 unsupported=1 error=0$", text, re.M)
    doc = json.loads(out_json.read_text())
    assert doc["cases"] == 3 and doc["totals"]["edgec"]["pass"] == 2
    assert {r["name"] for r in doc["records"]} == {"test_abs", "test_cast_FLOAT_to_FLOAT8E4M3FN",
                                                    "test_reduce_l2_keep_dims_example"}
    for r in doc["records"]:
        assert r["edgec"]["outcome"] in conf.OUTCOMES and r["onnxruntime"]["outcome"] in conf.OUTCOMES


def test_worker_crash_and_timeout_are_counted_not_fatal(monkeypatch):
    conf = _runner()

    def crash(case, workdir):
        import os

        os._exit(3)

    def hang(case, workdir):
        import time

        time.sleep(60)

    cases = [{"name": "a", "op": "X"}, {"name": "b", "op": "X"}]
    monkeypatch.setattr(conf, "run_edgec", crash)
    monkeypatch.setattr(conf, "run_onnxruntime", hang)
    recs = conf.run_all(cases, jobs=2, timeout=2.0)
    for r in recs:
        assert r["edgec"]["outcome"] == "error" and "crashed" in r["edgec"]["detail"]
        assert r["onnxruntime"]["outcome"] == "error" and "timeout" in r["onnxruntime"]["detail"]
