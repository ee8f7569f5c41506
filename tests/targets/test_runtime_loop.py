"""ONNX Loop with a run-time trip count or condition lowers to Relax control flow (recursive
private functions), not only to unrolled copies: one compiled model runs any trip count
(0, 1, a few, thousands: deeper than one native call per iteration could go) and stops on the
body's condition, matching onnxruntime; what it cannot take is refused in one line."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from edgec.api import CompileOptions, compile_model, run_artifact
from edgec.compare import assert_outputs_match
from edgec.reference import run_ort
from tests.conftest import require_target_tools

SHAPE = [2, 3]


def _v(name, dtype=TP.FLOAT, shape=None):
    return h.make_tensor_value_info(name, dtype, SHAPE if shape is None else shape)


def loop_model(with_cond: bool = True, with_trips: bool = True, scan: bool = False, grow: bool = False,
               inner_if: bool = False) -> onnx.ModelProto:
    """v <- v * 0.5 + x + iter (x: an outer input, 0.5: a body initializer), carried with a counter
    k <- k + 1; the body's condition is ReduceSum(v) < thr. With `inner_if`, the step adds x only
    when ReduceMax(v) > 0 (an If in the body). `scan` adds a scan output, `grow` makes v change
    shape: both unsupported with a run-time trip count."""
    nodes = [h.make_node("Mul", ["v_in", "half"], ["m"]),
             h.make_node("Cast", ["i"], ["i_f"], to=TP.FLOAT)]
    if inner_if:
        then_g = h.make_graph([h.make_node("Add", ["m", "x"], ["t"])], "then", [], [_v("t")])
        else_g = h.make_graph([h.make_node("Sub", ["m", "x"], ["e"])], "else", [], [_v("e")])
        nodes += [h.make_node("ReduceMax", ["v_in"], ["mx"], keepdims=0),
                  h.make_node("Greater", ["mx", "zero"], ["pos"]),
                  h.make_node("If", ["pos"], ["mx2"], then_branch=then_g, else_branch=else_g, name="inner")]
    else:
        nodes.append(h.make_node("Add", ["m", "x"], ["mx2"]))
    nodes += [h.make_node("Add", ["mx2", "i_f"], ["v_out"] if not grow else ["v_mid"]),
              h.make_node("ReduceSum", ["v_out" if not grow else "v_mid"], ["s"], keepdims=0),
              h.make_node("Less", ["s", "thr"], ["cond_out"]),
              h.make_node("Add", ["k_in", "one"], ["k_out"])]
    outs = [_v("cond_out", TP.BOOL, []), _v("v_out"), _v("k_out", TP.INT64, [])]
    if grow:
        nodes.append(h.make_node("Concat", ["v_mid", "v_mid"], ["v_out"], axis=0))
        outs[1] = _v("v_out", shape=[4, 3])
    if scan:
        nodes.append(h.make_node("Identity", ["s"], ["s_scan"]))
        outs.append(_v("s_scan", shape=[]))
    inits = [nh.from_array(np.float32(0.5), "half"), nh.from_array(np.int64(1), "one"),
             nh.from_array(np.float32(0), "zero")]
    body = h.make_graph(nodes, "body", [_v("i", TP.INT64, []), _v("c", TP.BOOL, []), _v("v_in"),
                                        _v("k_in", TP.INT64, [])], outs, inits)
    loop_outs = ["vf", "kf"] + (["scanned"] if scan else [])
    loop = h.make_node("Loop", ["M" if with_trips else "", "c0" if with_cond else "", "v0", "k0"], loop_outs,
                       body=body, name="Loop_0")
    inputs = [_v("M", TP.INT64, []), _v("c0", TP.BOOL, []), _v("v0"), _v("x"), _v("thr", shape=[])]
    inputs = [i for i in inputs if (with_trips or i.name != "M") and (with_cond or i.name != "c0")]
    graph_outs = [_v("vf", shape=[4, 3] if grow else None), _v("kf", TP.INT64, [])]
    if scan:
        graph_outs.append(_v("scanned", shape=["trips"]))
    g = h.make_graph([loop], "runtime_loop", inputs, graph_outs, [nh.from_array(np.int64(0), "k0")])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m


def _feeds(model: onnx.ModelProto, trips: int, thr: float, seed: int = 0, cond: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    feeds = {"M": np.array(trips, np.int64), "c0": np.array(cond),
             "v0": rng.uniform(-1, 1, SHAPE).astype(np.float32), "x": rng.uniform(-1, 1, SHAPE).astype(np.float32),
             "thr": np.array(thr, np.float32)}
    names = {i.name for i in model.graph.input}
    return {k: v for k, v in feeds.items() if k in names}


def _compile(model: onnx.ModelProto, tmp_path, target: str = "x86-64"):
    path = tmp_path / "loop.onnx"
    onnx.save(model, path)
    return compile_model(path, tmp_path / f"art_{target}", CompileOptions(target=target))


# (trip count, threshold): no iteration, one, a few, the condition stopping it early, and more
# iterations than one native call per iteration would survive (the VM recursion is bounded)
CASES = [(0, 1e9), (1, 1e9), (5, 1e9), (400, 30.0), (20000, 1e30)]


@pytest.mark.parametrize("inner_if", [False, True])
def test_runtime_trip_count_and_condition_match_onnxruntime(tmp_path, inner_if):
    model = loop_model(inner_if=inner_if)
    art = _compile(model, tmp_path)
    assert art.metadata["lowering"]["edgec"].get("Loop") == 1, art.metadata["lowering"]
    for seed, (trips, thr) in enumerate(CASES):
        feeds = _feeds(model, trips, thr, seed)
        expected = run_ort(model, feeds)
        assert_outputs_match(run_artifact(art, feeds), expected, atol=1e-4, rtol=1e-5)
        if trips == 400:  # the condition, not M, ended this one
            assert 0 < expected["kf"] < 400, expected["kf"]
    feeds = _feeds(model, 5, 1e9, cond=False)  # initial condition false: no iteration
    assert_outputs_match(run_artifact(art, feeds), run_ort(model, feeds), atol=0, rtol=0)


def test_loop_without_initial_condition_or_without_count(tmp_path):
    """Without an initial condition the Loop starts and stops on the body's condition as
    onnxruntime runs it (not the ONNX text's "condition ignored"); without M it is a while loop
    ending on the condition alone."""
    for kw, cases in (({"with_cond": False}, [(0, -1e9), (7, -1e9), (7, 1e9)]),
                      ({"with_trips": False}, [(0, 40.0)])):
        model = loop_model(**kw)
        (d := tmp_path / next(iter(kw))).mkdir()
        art = _compile(model, d)
        for trips, thr in cases:
            feeds = _feeds(model, trips, thr)
            expected = run_ort(model, feeds)
            assert_outputs_match(run_artifact(art, feeds), expected, atol=1e-4, rtol=1e-5)
        assert expected["kf"] > 0


@pytest.mark.parametrize("kw, words", [({"scan": True}, "1 scan output(s)"),
                                        ({"grow": True}, "loop-carried value 0 enters as [2, 3] float32 "
                                                         "and leaves the body as [4, 3] float32")])
def test_unsupported_runtime_loop_is_one_line_exit_2(run_cli, tmp_path, kw, words):
    path = tmp_path / "m.onnx"
    onnx.save(loop_model(**kw), path)
    r = run_cli("compile", path, "-t", "x86-64", "-o", tmp_path / "out")
    assert r.code == 2, r
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "node 'Loop_0' op 'Loop'" in lines[0] and words in lines[0], r.err
    assert not (tmp_path / "out").exists()


def test_runtime_loop_armv8(tmp_path):
    require_target_tools("armv8")
    model = loop_model(inner_if=True)
    art = _compile(model, tmp_path, "armv8")
    for trips, thr in [(0, 1e9), (3, 1e9), (2000, 1e30)]:
        feeds = _feeds(model, trips, thr)
        assert_outputs_match(run_artifact(art, feeds), run_ort(model, feeds), atol=1e-4, rtol=1e-5)
