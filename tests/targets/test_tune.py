"""`edgec tune` / `edgec compile --records`: a tiny conv model, a handful of trials. Records are
written, reused by a second compile (counted in metadata, outputs still match onnxruntime),
resumed without redoing finished work, rejected with one line when bad; RPC loopback. No
wall-clock asserts."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgec.api import CompileOptions, TuneOptions, compile_model, run_artifact, tune_model

pytestmark = pytest.mark.slow
RNG = np.random.default_rng(0)
TRIALS = 6


def _tune_deps():
    for mod in ("cloudpickle", "psutil", "xgboost"):
        pytest.importorskip(mod, reason=f"MetaSchedule needs {mod} (pip install 'edgec[tune]')")


def _w(name, shape):
    return numpy_helper.from_array((RNG.standard_normal(shape) * 0.3).astype(np.float32), name)


def tiny_model(path, channels=16, hw=14):
    """conv3x3+bias+relu -> conv1x1 + residual add: two conv kernels and the layout transforms."""
    c = channels
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["y1"], kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("Relu", ["y1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2"], ["y2"], kernel_shape=[1, 1]),
             helper.make_node("Add", ["y2", "r1"], ["y"])]
    g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, hw, hw])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, hw, hw])],
                          [_w("w1", (c, c, 3, 3)), _w("b1", (c,)), _w("w2", (c, c, 1, 1))])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, path)
    return path


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """(model path, records path, summary) after one tuning run of TRIALS trials."""
    _tune_deps()
    d = tmp_path_factory.mktemp("tune")
    model = tiny_model(d / "tiny.onnx")
    records = d / "tuning.json"
    summary = tune_model(model, CompileOptions(), TuneOptions(records=str(records), trials=TRIALS, seed=1, threads=2))
    return model, records, summary


def _doc(path):
    return json.loads(path.read_text())


def test_records_written(tuned):
    _, records, summary = tuned
    doc = _doc(records)
    assert doc["format"] == "edgec-tuning-records" and doc["version"] == 1
    tasks = doc["tasks"]
    assert len(tasks) == summary["tasks"] >= 3
    assert summary["trials_run"] == sum(t["trials"] for t in tasks.values()) == TRIALS
    for key, t in tasks.items():
        assert ":" in key and t["target"]
        assert t["rule"]["latency_us"] > 0, t["rule"]          # every task's rule schedule was timed
        assert t["best"] in ("rule", "tuned")
        tuned_us = t["tuned"][0]["latency_us"] if t["tuned"] else None
        if t["best"] == "tuned":                                # per task: best of {rules, tuned}
            assert tuned_us < t["rule"]["latency_us"]
        elif tuned_us is not None:
            assert t["rule"]["latency_us"] <= tuned_us
    assert any(t["tuned"] for t in tasks.values()), "no candidate was measured successfully"


def test_compile_reuses_records(tuned, tmp_path, run_cli):
    model, records, summary = tuned
    r = run_cli("compile", model, "-o", tmp_path / "a", "--records", records, "--threads", "2")
    assert r.code == 0, r.err
    assert f"{summary['tasks']} of {summary['tasks']} kernels from records" in r.out
    from edgec.artifact import load_artifact

    art = load_artifact(tmp_path / "a")
    rec = art.metadata["lowering"]["records"]
    doc = _doc(records)
    n_tuned = sum(1 for t in doc["tasks"].values() if t["best"] == "tuned")
    assert rec["applied"] == summary["tasks"] and rec["tuned"] == n_tuned and rec["failed"] == 0
    assert rec["rule"] == summary["tasks"] - n_tuned
    assert art.metadata["lowering"]["schedules"] == {}          # nothing fell through to the rules
    assert art.metadata["runtime"]["threads"] == 2
    x = RNG.standard_normal((1, 16, 14, 14)).astype(np.float32)
    ref = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = run_artifact(art, {"x": x})["y"]
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)


def test_compile_without_matching_records(tuned, tmp_path):
    """Records of another kernel shape are ignored: the rules schedule everything."""
    _, records, _ = tuned
    other = tiny_model(tmp_path / "other.onnx", channels=32, hw=10)
    art = compile_model(other, tmp_path / "b", CompileOptions(records=str(records)))
    assert art.metadata["lowering"]["records"]["applied"] == 0
    assert sum(art.metadata["lowering"]["schedules"].values()) >= 3


def test_resume_skips_finished_tasks(tuned, tmp_path, run_cli):
    model, records, summary = tuned
    copy = tmp_path / "resume.json"
    shutil.copy(records, copy)
    r = run_cli("tune", model, "--records", copy, "--trials", TRIALS, "--seed", 1, "--threads", 2, "--json")
    assert r.code == 0, r.err
    again = json.loads(r.out.strip().splitlines()[-1])
    assert again["trials_run"] == 0 and again["skipped"] == summary["tasks"]
    assert _doc(copy)["tasks"] == _doc(records)["tasks"]
    lines = [ln for ln in r.err.splitlines() if " task " in ln]  # not a TTY: plain lines, one per task
    assert len(lines) == summary["tasks"] and "\r" not in r.err and all("done earlier" in ln or "rules" in ln
                                                                       for ln in lines)


def test_resume_continues_with_more_trials(tuned, tmp_path):
    model, records, _ = tuned
    copy = tmp_path / "more.json"
    shutil.copy(records, copy)
    before = {k: t["trials"] for k, t in _doc(copy)["tasks"].items()}
    more = tune_model(model, CompileOptions(), TuneOptions(records=str(copy), trials=TRIALS + 2, seed=1, threads=2))
    after = _doc(copy)["tasks"]
    for t in more["per_task"]:
        assert after[t["key"]]["trials"] == max(before[t["key"]], t["budget"])   # only the missing trials ran
    assert more["trials_run"] == sum(after[k]["trials"] - before[k] for k in before) >= 2


@pytest.mark.parametrize("content", ["garbage{", '{"format": "something-else"}', '{"format": "edgec-tuning-records", "version": 1, "tasks": []}'])
def test_bad_records_file_is_one_line_exit_2(tmp_path, run_cli, content):
    model = tiny_model(tmp_path / "m.onnx")
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    for argv in (("compile", model, "-o", tmp_path / "o", "--records", bad),
                 ("tune", model, "--records", bad, "--trials", 2)):
        r = run_cli(*argv)
        assert r.code == 2, r
        assert r.err.startswith("edgec: error: ") and len(r.err.strip().splitlines()) == 1 and "bad.json" in r.err


def test_missing_records_and_bad_budget(tmp_path, run_cli):
    model = tiny_model(tmp_path / "m.onnx")
    r = run_cli("compile", model, "-o", tmp_path / "o", "--records", tmp_path / "nope.json")
    assert r.code == 2 and "not found" in r.err and len(r.err.strip().splitlines()) == 1
    r = run_cli("tune", model, "--records", tmp_path / "t.json", "--time-budget", "5q")
    assert r.code == 2 and "--time-budget" in r.err


def test_no_tasks_is_one_line_exit_2(tmp_path, run_cli):
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "noop",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, tmp_path / "noop.onnx")
    r = run_cli("tune", tmp_path / "noop.onnx", "--records", tmp_path / "t.json", "--trials", 2)
    assert r.code == 2 and "no tuning tasks" in r.err and len(r.err.strip().splitlines()) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_tracker_is_one_line_exit_2(tmp_path, run_cli):
    model = tiny_model(tmp_path / "m.onnx")
    r = run_cli("tune", model, "--records", tmp_path / "t.json", "--trials", 2,
                "--rpc-tracker", f"127.0.0.1:{_free_port()}", "--rpc-key", "k")
    assert r.code == 2 and "RPC tracker" in r.err and len(r.err.strip().splitlines()) == 1


def test_rpc_loopback(tmp_path, run_cli):
    """A TVM RPC tracker and server on 127.0.0.1; candidates are timed through them."""
    _tune_deps()
    pytest.importorskip("tornado", reason="TVM's RPC tracker needs tornado (pip install 'edgec[tune]')")
    from edgec.targets.tvm.tune.measure import rpc_server_count

    tport, sport = _free_port(), _free_port()
    procs = [subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_tracker", "--host", "127.0.0.1",
                               "--port", str(tport), "--port-end", str(tport + 1), "--silent"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        time.sleep(1)
        procs.append(subprocess.Popen([sys.executable, "-m", "tvm.exec.rpc_server", "--tracker", f"127.0.0.1:{tport}",
                                       "--key", "edgec-loopback", "--host", "127.0.0.1", "--port", str(sport),
                                       "--port-end", str(sport + 20), "--silent"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for _ in range(120):  # registration: a few seconds on an idle machine, more on a loaded one
            if rpc_server_count(f"127.0.0.1:{tport}", "edgec-loopback") >= 1:
                break
            time.sleep(0.5)
        else:
            pytest.fail("the RPC server did not register with the tracker")
        model = tiny_model(tmp_path / "m.onnx")
        records = tmp_path / "rpc.json"
        r = run_cli("tune", model, "--records", records, "--trials", 2, "--seed", 3,
                    "--rpc-tracker", f"127.0.0.1:{tport}", "--rpc-key", "edgec-loopback", "--json")
        assert r.code == 0, r.err
        assert "via RPC" in r.err
        tasks = _doc(records)["tasks"]
        assert sum(t["trials"] for t in tasks.values()) == 2
        assert all(t["rule"]["latency_us"] > 0 for t in tasks.values())   # rules timed on the server too
        assert any(t["tuned"] for t in tasks.values())
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


# --- knob search (`--space knobs`): the rule schedules' own tile sizes / parallel grain -------------

KNOB_TRIALS = 6


@pytest.fixture(scope="module")
def knob_tuned(tmp_path_factory):
    _tune_deps()
    d = tmp_path_factory.mktemp("knobs")
    model = tiny_model(d / "tiny.onnx")
    records = d / "knobs.json"
    summary = tune_model(model, CompileOptions(),
                         TuneOptions(records=str(records), trials=KNOB_TRIALS, threads=2, space="knobs"))
    return model, records, summary


def test_knob_search_writes_records(knob_tuned):
    _, records, summary = knob_tuned
    tasks = _doc(records)["tasks"]
    assert summary["trials_run"] == sum(t.get("knob_trials", 0) for t in tasks.values()) == KNOB_TRIALS
    conv = [t for t in tasks.values() if t["rule"]["name"] == "conv2d-nchwc"]
    assert len(conv) == 2 and all(t["knob_trials"] > 0 and t["knobs"] for t in conv)
    for t in tasks.values():
        assert t["rule"]["latency_us"] > 0 and not t["tuned"] and t["trials"] == 0   # no MetaSchedule trial
        for k in t.get("knobs", []):
            assert k["values"]["rule"] == t["rule"]["name"] and k["latency_us"] > 0
        best_knobs = t["knobs"][0]["latency_us"] if t.get("knobs") else None
        if t.get("knob_trials"):
            assert t["knobs_verdict"] in ("accepted", "rejected", "none") and t["knobs_confirmed"]
        if t["best"] == "knobs":  # accepted after the interleaved re-timing: its median is 3% below the rule's
            assert t["knobs_verdict"] == "accepted" and best_knobs <= 0.97 * t["rule"]["latency_us"]
        else:
            assert t["best"] == "rule" and t.get("knobs_verdict") != "accepted"
        if t.get("knobs"):
            c = t["confirm"]
            assert c["rounds"] == 5 and len(c["rule_us"]) == 5 and all(len(k["us"]) == 5 for k in c["candidates"])


def test_compile_replays_knob_records(knob_tuned, tmp_path, run_cli):
    """A compile with the records takes every kernel from them; with every measured (non-default)
    knob setting forced as the winner, the kernels use it and still match onnxruntime."""
    model, records, summary = knob_tuned
    doc = _doc(records)
    forced = 0
    for t in doc["tasks"].values():
        if t.get("knobs"):
            t["best"] = "knobs"
            forced += 1
    assert forced >= 2
    # the layout transforms: channel lanes innermost ("write") applies to the input's NCHW ->
    # NCHW16c transform only; on the output's NCHW16c -> NCHW one it is a stale record (fails)
    moves = [t for t in doc["tasks"].values() if t["rule"]["name"] == "parallel-vectorize"]
    assert len(moves) == 2
    for t in moves:
        t["knobs"] = [{"latency_us": 0.001, "values": {"rule": "parallel-vectorize", "lanes": "write"}}]
        t["best"] = "knobs"
    copy = tmp_path / "forced.json"
    copy.write_text(json.dumps(doc))
    for recs, n_knobs, failed in ((records, sum(t["best"] == "knobs" for t in _doc(records)["tasks"].values()), 0),
                                  (copy, forced + 1, 1)):
        out = tmp_path / f"a_{recs.stem}"
        r = run_cli("compile", model, "-o", out, "--records", recs, "--threads", "2")
        assert r.code == 0, r.err
        from edgec.artifact import load_artifact

        art = load_artifact(out)
        rec = art.metadata["lowering"]["records"]
        assert rec["knobs"] == n_knobs and rec["failed"] == failed
        assert rec["applied"] == summary["tasks"] - failed
        assert sum(art.metadata["lowering"]["schedules"].values()) == failed
        x = RNG.standard_normal((1, 16, 14, 14)).astype(np.float32)
        ref = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        np.testing.assert_allclose(run_artifact(art, {"x": x})["y"], ref, atol=1e-4, rtol=1e-4)


def test_knob_search_resumes(knob_tuned, tmp_path):
    model, records, _ = knob_tuned
    copy = tmp_path / "resume.json"
    shutil.copy(records, copy)
    again = tune_model(model, CompileOptions(),
                       TuneOptions(records=str(copy), trials=KNOB_TRIALS, threads=2, space="knobs"))
    assert again["trials_run"] == 0 and _doc(copy)["tasks"] == _doc(records)["tasks"]


def test_stale_knob_record_falls_back_to_rules(knob_tuned, tmp_path):
    """Knobs name their rule: a record whose rule does not match its kernel (here conv knobs on a
    layout transform) is counted as failed and the rules schedule that kernel; outputs still match."""
    model, records, summary = knob_tuned
    doc = _doc(records)
    other = [t for t in doc["tasks"].values() if t["rule"]["name"] != "conv2d-nchwc"]
    assert other
    other[0]["knobs"] = [{"latency_us": 0.001, "values": {"rule": "conv2d-nchwc", "ot": 2, "wt": 7}}]
    other[0]["best"] = "knobs"
    copy = tmp_path / "stale.json"
    copy.write_text(json.dumps(doc))
    art = compile_model(model, tmp_path / "s", CompileOptions(records=str(copy)))
    rec = art.metadata["lowering"]["records"]
    assert rec["failed"] == 1 and rec["applied"] == summary["tasks"] - 1
    assert sum(art.metadata["lowering"]["schedules"].values()) == 1
    x = RNG.standard_normal((1, 16, 14, 14)).astype(np.float32)
    ref = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(run_artifact(art, {"x": x})["y"], ref, atol=1e-4, rtol=1e-4)


def test_knob_budget_is_capped_by_each_space():
    """Trials go by FLOPs x call sites, no task past its knob space; the rest goes to the others."""
    from types import SimpleNamespace

    from edgec.targets.tvm.tune.driver import allot_capped

    tasks = [SimpleNamespace(cost=c) for c in (1000.0, 10.0, 1.0, 0.0)]
    assert allot_capped(tasks, [5, 8, 3, 2], 400) == [5, 8, 3, 2]        # budget covers every space
    small = allot_capped(tasks, [5, 8, 3, 2], 9)
    assert small[0] == 5 and sum(small) == 9 and all(a <= c for a, c in zip(small, [5, 8, 3, 2]))
    assert small[1] >= small[2] >= small[3]
    assert allot_capped(tasks, [0, 0, 0, 0], 10) == [0, 0, 0, 0]


# --- confirmation of knob winners: interleaved rounds, a significance rule ---------------------------


def test_significantly_faster_rule():
    from edgec.targets.tvm.tune.knobs import significantly_faster

    rule = [100.0, 101.0, 99.0, 100.0, 102.0]
    assert significantly_faster(rule, [90.0, 91.0, 89.0, 92.0, 90.0])               # every round, 10%
    assert not significantly_faster(rule, [98.0, 99.0, 97.0, 98.0, 99.0])           # every round, but < 3%
    # a much lower median but only 3 of 5 rounds won: one lucky phase, not a better schedule
    assert not significantly_faster(rule, [60.0, 60.0, 60.0, 110.0, 120.0])
    assert significantly_faster(rule, [95.0, 96.0, 96.0, 97.0, 103.0])              # 4 of 5, median 4% lower
    assert not significantly_faster(rule, [90.0, None, None, None, 90.0])           # too few timings
    assert significantly_faster([100.0, None, 100.0, 100.0, 100.0], [90.0, 50.0, 90.0, 90.0, 90.0])


def _first_conv_task(model):
    from edgec.ir import load_model
    from edgec.targets.registry import get_target
    from edgec.targets.tvm.build import tvm_target
    from edgec.targets.tvm.lower import lower_model
    from edgec.targets.tvm.schedules import context_for
    from edgec.targets.tvm.tune.tasks import extract_tasks

    spec = get_target("host")
    mod, _ = lower_model(load_model(model))
    target = tvm_target(spec)
    ctx = context_for(spec, target, 2)
    tasks, _ = extract_tasks(mod, spec, target, ctx)
    return next(t for t in tasks if "conv2d" in t.name), ctx, target


@pytest.mark.parametrize("knob_us,verdict", [(110.0, "rejected"), (90.0, "accepted")])
def test_confirmation_decides_with_interleaved_rounds(tmp_path, knob_us, verdict):
    """A knob setting that looked 2x faster in its one search timing is re-timed against the rule
    in 5 rotated rounds (the timings are simulated here; the schedules are built for real): slower
    in the rounds -> rejected, best stays the rule; 10% faster -> accepted with its median."""
    from edgec.targets.tvm.tune.knobs import confirm, space_of
    from edgec.targets.tvm.tune.records import Records

    model = tiny_model(tmp_path / "tiny.onnx")
    task, ctx, target = _first_conv_task(model)
    knob = space_of(task, ctx)[1]
    records = Records(tmp_path / "r.json")
    e = records.entry(task.key, name=task.name, weight=1)
    e["rule"] = {"name": "conv2d-nchwc", "latency_us": 100.0}
    records.add_knobs(task.key, 50.0, knob)       # the search's single (lucky) timing
    assert e["best"] == "rule"                    # not confirmed yet: never used
    calls = []

    def fake_measure(mods, *_):
        r = len(calls)
        calls.append(len(mods))
        return [((100.0 if (p + r) % len(mods) == 0 else knob_us), None) for p in range(len(mods))]

    confirm(task, records, ctx, target, None, None, measure=fake_measure)
    assert calls == [2] * 5
    assert e["knobs_verdict"] == verdict and e["confirm"]["rule_us"] == [100.0] * 5
    assert e["best"] == ("knobs" if verdict == "accepted" else "rule")
    assert e["rule"]["latency_us"] == 100.0
    if verdict == "accepted":
        assert e["knobs"][0] == {"latency_us": knob_us, "values": knob}
    records.save()
    art = compile_model(model, tmp_path / "a", CompileOptions(records=str(tmp_path / "r.json")))
    assert art.metadata["lowering"]["records"]["knobs"] == (1 if verdict == "accepted" else 0)
