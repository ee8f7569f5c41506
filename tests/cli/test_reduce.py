"""`edgec reduce` and `--plugin`: a deliberately broken plugin pass is shrunk to a minimal model and
named; a crashing plugin pass is exit 1 naming it; a model that compiles right is exit 2."""

from __future__ import annotations

import re

import onnx
import pytest

import edgec.reduce as reduce_mod
from edgec.differential import Outcome, check_model
from edgec.infra.registry import default_registry
from edgec.pipelines import default_pipeline
from edgec.targets.registry import get_target
from tests.conftest import EXAMPLES, model_from_text

PLUGIN = '''
import onnx_ir as ir

from edgec.infra.pass_base import Pass, PassResult, register_pass


@register_pass
class FlipSign(Pass):
    """Deliberately broken: negate the weight of the first Conv (once)."""
    name = "flip-sign"

    def run(self, model, ctx):
        for node in model.graph:
            w = node.inputs[1] if node.op_type == "Conv" else None
            if w is not None and w.const_value is not None:
                if node.metadata_props.get("flipped"):
                    return PassResult(model, False)
                w.const_value = ir.tensor(-w.const_value.numpy(), name=w.name)
                node.metadata_props["flipped"] = "1"
                return PassResult(model, True)
        return PassResult(model, False)


@register_pass
class CrashOnRelu(Pass):
    """Deliberately broken: crash on any Relu."""
    name = "crash-on-relu"

    def run(self, model, ctx):
        if any(n.op_type == "Relu" for n in model.graph):
            raise ValueError("deliberate crash")
        return PassResult(model, False)
'''

CNN = EXAMPLES / "small_cnn.onnx"  # 17 nodes: Conv, BatchNormalization, Relu, MaxPool, Add, Gemm, ...
O2 = default_pipeline(get_target("x86-64"), 2)
FLIP = O2.replace("fold-constants,", "fold-constants,flip-sign,", 1)
CRASH = "infer-shapes,crash-on-relu"


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    path = tmp_path_factory.mktemp("plugin") / "broken_passes.py"
    path.write_text(PLUGIN)
    yield path
    default_registry.cache_clear()  # later tests get a registry without the test passes


def test_flip_sign_changes_results_exit_1(run_cli, plugin, tmp_path):
    r = run_cli("compile", CNN, "-t", "x86-64", "--plugin", plugin, "--passes", FLIP, "--verify", "-o", tmp_path / "a")
    assert r.code == 1, r
    assert "pass 'flip-sign' changed the outputs" in r.err and len(r.err.strip().splitlines()) == 1


def test_optimize_runs_plugin_pass(run_cli, plugin, tmp_path):
    out = tmp_path / "o.onnx"
    r = run_cli("optimize", CNN, "--plugin", plugin, "--passes", "flip-sign", "-o", out)
    assert r.code == 0, r
    w_name = next(n for n in onnx.load(CNN).graph.node if n.op_type == "Conv").input[1]
    before = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(CNN).graph.initializer}[w_name]
    after = {t.name: onnx.numpy_helper.to_array(t) for t in onnx.load(out).graph.initializer}[w_name]
    assert (after == -before).all() and before.any()


def test_reduce_names_flip_sign_with_a_minimal_model(run_cli, plugin, tmp_path):
    out = tmp_path / "min.onnx"
    r = run_cli("reduce", CNN, "-o", out, "-t", "x86-64", "--plugin", plugin, "--passes", FLIP)
    assert r.code == 0, r
    last = r.out.strip().splitlines()[-1]
    assert re.fullmatch(rf"minimal model: \d nodes? \(from 17\) -> {re.escape(str(out))}; first failing pass: 'flip-sign'", last), last
    m = onnx.load(out)
    assert 1 <= len(m.graph.node) <= 3
    assert any(n.op_type == "Conv" for n in m.graph.node)
    got = check_model(m, "x86-64", passes=FLIP)
    assert (got.kind, got.stage) == ("mismatch", "flip-sign"), got
    assert check_model(m, "x86-64", passes=O2).kind == "match"  # the pass is the bug, not the model
    assert re.search(r"reduce: \d+ checks in [\d.]+ s", r.err)


def test_crashing_plugin_pass_exit_1_and_reduce_names_it(run_cli, plugin, tmp_path):
    r = run_cli("compile", CNN, "-t", "x86-64", "--plugin", plugin, "--passes", CRASH, "-o", tmp_path / "a")
    assert r.code == 1, r
    assert r.err.strip().count("\n") == 0 and "pass 'crash-on-relu' crashed: ValueError: deliberate crash" in r.err
    out = tmp_path / "min.onnx"
    r = run_cli("reduce", CNN, "-o", out, "-t", "x86-64", "--plugin", plugin, "--passes", CRASH)
    assert r.code == 0, r
    assert r.out.strip().endswith("first failing pass: 'crash-on-relu'"), r.out
    m = onnx.load(out)
    assert [n.op_type for n in m.graph.node] == ["Relu"]
    got = check_model(m, "x86-64", passes=CRASH)
    assert (got.kind, got.stage) == ("internal", "crash-on-relu"), got


def test_reduce_correct_model_exit_2(run_cli, tmp_path):
    path = tmp_path / "relu.onnx"
    onnx.save(model_from_text('<ir_version: 8, opset_import: ["" : 17]> g (float[1,4] x) => (float[1,4] y) { y = Relu(x) }'), path)
    r = run_cli("reduce", path, "-o", tmp_path / "min.onnx", "-t", "x86-64")
    assert r.code == 2, r
    assert "the model compiles and matches onnxruntime; nothing to reduce" in r.err
    assert not (tmp_path / "min.onnx").exists()


@pytest.mark.parametrize("content, expect", [
    (None, "file not found"),
    ("import no_such_module_xyz\n", "failed to import: ModuleNotFoundError"),
    ("x = 1\n", "defines no @register_pass class"),
    ('from edgec.infra.pass_base import Pass, register_pass\n\n@register_pass\nclass F(Pass):\n'
     '    """Clash."""\n    name = "fold-constants"\n', "duplicate pass name 'fold-constants'"),
])
def test_bad_plugin_exit_2_naming_the_file(run_cli, tmp_path, content, expect):
    path = tmp_path / "bad_plugin.py"
    if content is not None:
        path.write_text(content)
    for argv in (("compile", CNN, "-o", tmp_path / "a"), ("optimize", CNN, "-o", tmp_path / "o.onnx"),
                 ("reduce", CNN, "-o", tmp_path / "m.onnx")):
        r = run_cli(*argv, "--plugin", path)
        assert r.code == 2, (argv, r)
        assert str(path) in r.err and expect in r.err, (argv, r.err)


# -- the reduction logic with a fake predicate (no TVM): backend blame, budget ---------------------

CHAIN = model_from_text("""<ir_version: 8, opset_import: ["" : 17]>
g (float[1,8,16,16] x) => (float[1,8,16,16] y) {
  a = Relu(x)
  s = Shape(a)
  b = Reshape(a, s)
  c = Sigmoid(b)
  d = Tanh(c)
  e = Abs(d)
  f = Neg(e)
  y = Exp(f)
}""")


def _fake_check(blame_after: str | None, calls: list):
    """mismatch:backend when the model has a Tanh and the pipeline includes `blame_after`."""
    def check(model, target, opt_level, passes, disabled, atol, rtol):
        calls.append((len(model.graph.node), passes))
        has = any(n.op_type == "Tanh" for n in model.graph.node)
        needs = blame_after is None or blame_after in (passes or "").split(",")
        return Outcome("mismatch", "x", "backend") if has and needs else Outcome("match")
    return check


def test_backend_blame_and_shrinking(monkeypatch):
    calls = []
    monkeypatch.setattr(reduce_mod, "check_model", _fake_check(None, calls))
    res = reduce_mod.reduce_model(CHAIN, reduce_mod.ReduceOptions(passes="infer-shapes,fold-constants"))
    assert [n.op_type for n in res.model.graph.node] == ["Tanh"] and res.nodes_before == 8
    assert [d.dim_value for d in res.model.graph.input[0].type.tensor_type.shape.dim] == [1, 1, 1, 1]
    assert res.culprit == "backend" and res.after_pass == "" and res.checks == len(calls)
    assert res.line("m.onnx").endswith("fails in the backend (lowering/schedules/codegen)")


def test_backend_blame_after_a_pass(monkeypatch):
    monkeypatch.setattr(reduce_mod, "check_model", _fake_check("remove-identity-ops", []))
    res = reduce_mod.reduce_model(CHAIN, reduce_mod.ReduceOptions(passes="infer-shapes,remove-identity-ops,eliminate-dead-code"))
    assert res.culprit == "backend" and res.after_pass == "remove-identity-ops" and res.confirmed


def test_budget_stops_reduction(monkeypatch):
    calls = []
    monkeypatch.setattr(reduce_mod, "check_model", _fake_check(None, calls))
    res = reduce_mod.reduce_model(CHAIN, reduce_mod.ReduceOptions(passes="", max_checks=reduce_mod.BISECT_RESERVE + 2))
    assert res.checks == len(calls) <= reduce_mod.BISECT_RESERVE + 2
    assert any("--max-checks" in n for n in res.notes)
    assert any(n.op_type == "Tanh" for n in res.model.graph.node) and len(res.model.graph.node) < 8


SEGV_PLUGIN = '''
import os
import signal

from edgec.infra.pass_base import Pass, PassResult, register_pass


@register_pass
class SegfaultOnConv(Pass):
    """Deliberately broken: the process dies (SIGSEGV) on any model with a Conv."""

    name = "segv-on-conv"

    def run(self, model, ctx):
        if any(n.op_type == "Conv" for n in model.graph):
            os.kill(os.getpid(), signal.SIGSEGV)
        return PassResult(model, False)
'''


def test_reduce_survives_and_shrinks_a_native_crash(tmp_path, run_cli):
    """Checks run in a worker process (--isolate, the default): a segfault is a failure to reduce,
    not the end of edgec reduce; the bisection names the pass after which the process dies."""
    plugin = tmp_path / "segv.py"
    plugin.write_text(SEGV_PLUGIN)
    r = run_cli("compile", EXAMPLES / "small_cnn.onnx", "-t", "x86-64", "--print-pipeline")
    passes = r.out.strip().replace("fold-constants,", "fold-constants,segv-on-conv,", 1)
    out = tmp_path / "min.onnx"
    r = run_cli("reduce", EXAMPLES / "small_cnn.onnx", "-o", out, "-t", "x86-64", "--plugin", plugin,
                "--passes", passes, "-q")
    assert r.code == 0, r
    assert "the process dies once pass 'segv-on-conv' runs" in r.out, r
    m = onnx.load(out)
    assert len(m.graph.node) <= 3 and any(n.op_type == "Conv" for n in m.graph.node)
