"""ONNX If with a runtime condition lowers to Relax control flow (relax.If), not only to the
branch a constant condition takes: compiled models take either branch at run time and match
onnxruntime; nested Ifs; branches with different output shapes are refused in one line."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from edgec.reference import run_ort
from tests.conftest import require_target_tools
from tests.targets.lowering_util import check

C = 4


def _t(name, shape=None):
    return h.make_tensor_value_info(name, TP.FLOAT, shape)


def _graph(nodes, name, outs, inits=()):
    return h.make_graph(nodes, name, [], [_t(o) for o in outs], list(inits))


def if_model(nested: bool = False, mismatch: bool = False, const_cond: bool | None = None) -> onnx.ModelProto:
    """y = If(ReduceMax(x) > 0): then Relu(Conv(x, w) + c_then) (a branch initializer), else
    Sigmoid(x - s) (or, nested, a second If on ReduceMin(x) < -0.5 choosing Neg or Mul by s);
    both read the outer x, w, s. A second output z is ReduceMean(x) in then, ReduceMax(x - s) in else."""
    rng = np.random.default_rng(1)
    w = nh.from_array(rng.uniform(-0.5, 0.5, (C, C, 3, 3)).astype(np.float32), "w")
    s = nh.from_array(rng.uniform(-0.5, 0.5, (1, C, 1, 1)).astype(np.float32), "s")
    c_then = nh.from_array(np.float32(0.25).reshape(()), "c_then")
    then_nodes = [h.make_node("Conv", ["x", "w"], ["t1"], pads=[1, 1, 1, 1]),
                  h.make_node("Add", ["t1", "c_then"], ["t2"]),
                  h.make_node("Relu", ["t2"], ["t_out"]),
                  h.make_node("ReduceMean", ["x"], ["t_z"], keepdims=0)]
    t_outs = ["t_out", "t_z"]
    if mismatch:
        then_nodes.append(h.make_node("ReduceSum", ["t_out"], ["t_sum"], keepdims=0))
        t_outs = ["t_sum", "t_z"]
    then_g = _graph(then_nodes, "then", t_outs, [c_then])
    else_nodes = [h.make_node("Sub", ["x", "s"], ["e1"]), h.make_node("Sigmoid", ["e1"], ["e2"]),
                  h.make_node("ReduceMax", ["e1"], ["e_z"], keepdims=0)]
    if nested:
        it = _graph([h.make_node("Neg", ["e2"], ["i_t"])], "inner_then", ["i_t"])
        ie = _graph([h.make_node("Mul", ["e2", "s"], ["i_e"])], "inner_else", ["i_e"])
        else_nodes += [h.make_node("ReduceMin", ["x"], ["mn"], keepdims=0),
                       h.make_node("Constant", [], ["lim"], value=nh.from_array(np.float32(-0.5))),
                       h.make_node("Less", ["mn", "lim"], ["c2"]),
                       h.make_node("If", ["c2"], ["e_out"], then_branch=it, else_branch=ie, name="If_inner")]
    else:
        else_nodes.append(h.make_node("Identity", ["e2"], ["e_out"]))
    else_g = _graph(else_nodes, "else", ["e_out", "e_z"])
    if const_cond is None:
        cond = [h.make_node("ReduceMax", ["x"], ["mx"], keepdims=0),
                h.make_node("Constant", [], ["zero"], value=nh.from_array(np.float32(0.0))),
                h.make_node("Greater", ["mx", "zero"], ["cond"])]
    else:
        cond = [h.make_node("Constant", [], ["cond"], value=nh.from_array(np.array([const_cond])))]
    nodes = cond + [h.make_node("If", ["cond"], ["r", "z"], then_branch=then_g, else_branch=else_g, name="If_0"),
                    h.make_node("Mul", ["r", "s"], ["y"])]
    g = h.make_graph(nodes, "runtime_if", [_t("x", [1, C, 6, 6])], [_t("y", [1, C, 6, 6]), _t("z", [])], [w, s])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def _inputs(kind: str) -> dict[str, np.ndarray]:
    x = np.random.default_rng(0).uniform(0.1, 1.0, (1, C, 6, 6)).astype(np.float32)
    return {"x": {"then": x - 0.5, "else": -x * 0.4, "else_then": -x}[kind]}  # else_then: min < -0.5


def _compile_and_compare(run_cli, tmp_path, proto, kinds, target="x86-64"):
    path = tmp_path / "m.onnx"
    onnx.save(proto, path)
    out = tmp_path / f"out_{target}"
    r = run_cli("compile", path, "-t", target, "-o", out)
    assert r.code == 0, r
    for kind in kinds:
        x = tmp_path / f"x_{kind}.npy"
        np.save(x, _inputs(kind)["x"])
        r = run_cli("run", out, "-i", f"x={x}", "--compare-onnx", path)
        assert r.code == 0 and "OK: matches onnxruntime" in r.out, (kind, r)


def test_branches_differ():
    """The test inputs really take different branches (their outputs differ from the other branch's)."""
    m, outs = if_model(nested=True), {}
    for kind in ("then", "else", "else_then"):
        outs[kind] = run_ort(m, _inputs(kind))["y"]
    assert (outs["then"] != 0).any() and (outs["else"] > 0).all() != (outs["else_then"] > 0).all()


def test_runtime_if_takes_either_branch(run_cli, tmp_path):
    _compile_and_compare(run_cli, tmp_path, if_model(), ["then", "else"])


def test_nested_runtime_if(run_cli, tmp_path):
    _compile_and_compare(run_cli, tmp_path, if_model(nested=True), ["then", "else", "else_then"])


def test_lowering_emits_relax_if_and_branch_functions(tmp_path):
    """Lowered without the pipeline: a Relax If whose branches call private functions (so FuseOps
    fuses inside them), matching onnxruntime on both branches."""
    from tvm import relax

    from edgec.ir import load_model
    from edgec.targets.tvm.lower import lower_model

    proto = if_model(nested=True)
    mod, report = lower_model(load_model(proto))
    assert report.by_edgec["If"] == 2
    names = {gv.name_hint for gv in mod.functions}
    assert {"If_0_then_branch", "If_0_else_branch", "If_inner_then_branch", "If_inner_else_branch"} <= names
    relax.analysis.well_formed(mod)  # raises on a violation
    for kind in ("then", "else_then"):
        check(proto, _inputs(kind), tmp_path, owned=("If",))


def test_constant_condition_lowers_taken_branch_only(tmp_path):
    from edgec.ir import load_model
    from edgec.targets.tvm.lower import lower_model

    for cond in (True, False):
        proto = if_model(const_cond=cond)
        mod, _ = lower_model(load_model(proto))
        assert not any("branch" in gv.name_hint for gv in mod.functions)
        check(proto, _inputs("then"), tmp_path)


def test_branch_shape_mismatch_is_one_line_exit_2(run_cli, tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(if_model(mismatch=True), path)
    r = run_cli("compile", path, "-t", "x86-64", "-o", tmp_path / "out")
    assert r.code == 2, r
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert len(lines) == 1, r.err
    assert "node 'If_0' op 'If'" in lines[0] and "same static shape" in lines[0], lines[0]
    assert "[] float32 in then_branch but [1, 4, 6, 6] float32 in else_branch" in lines[0], lines[0]


def test_runtime_if_armv8(run_cli, tmp_path):
    require_target_tools("armv8")
    _compile_and_compare(run_cli, tmp_path, if_model(nested=True), ["then", "else_then"], target="armv8")


def test_armv7_refuses_runtime_if_in_one_short_line(run_cli, tmp_path):
    """armv7's call plan runs a fixed kernel list: a clear refusal, not the Relax IR on one line."""
    model = tmp_path / "if.onnx"
    onnx.save(if_model(), model)
    r = run_cli("compile", model, "-t", "armv7", "-o", tmp_path / "out")
    assert r.code == 2, r
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "run-time control flow (If or Loop)" in lines[0] and len(lines[0]) < 300, r.err
    assert not (tmp_path / "out").exists()
