import numpy as np
import onnx
import onnx_ir as ir
import pytest

from edgec.errors import InternalError, VerificationError
from edgec.infra.context import PassContext
from edgec.infra.instruments import DumpIR, Statistics
from edgec.infra.manager import PassManager
from edgec.infra.pass_base import Pass, PassResult, register_pass
from edgec.infra.pipeline import parse_pipeline
from edgec.infra.verify import VerifyAgainstOnnxRuntime
from edgec.rewrite.testing import op_types


def make_model() -> ir.Model:
    proto = onnx.parser.parse_model("""<ir_version: 8, opset_import: ["" : 17]>
    g (float[2,3] x, float[2,3] w) => (float[2,3] y) {
      i = Identity(x)
      a = Add(i, w)
      b = Identity(a)
      y = Relu(b)
    }""")
    return ir.serde.deserialize_model(proto)


@register_pass
class RemoveOneIdentity(Pass):
    """Removes at most one Identity per run (so a fixpoint needs several iterations)."""

    name = "remove-one-identity"

    def run(self, model, ctx):
        for node in model.graph:
            if node.op_type == "Identity":
                node.outputs[0].replace_all_uses_with(node.inputs[0])
                model.graph.remove(node, safe=True)
                return PassResult(model, True)
        return PassResult(model, False)


@register_pass
class AddToSub(Pass):
    """Deliberately broken: turns every Add into Sub."""

    name = "add-to-sub"

    def run(self, model, ctx):
        changed = False
        for node in model.graph:
            if node.op_type == "Add":
                node.op_type = "Sub"
                changed = True
        return PassResult(model, changed)


@register_pass
class CopiesModel(Pass):
    """Violates the in-place contract by returning a copy."""

    name = "copies-model"

    def run(self, model, ctx):
        return PassResult(ir.serde.deserialize_model(ir.serde.serialize_model(model)), True)


def test_fixpoint_iterates_until_nothing_changes():
    model = make_model()
    stats = Statistics()
    result = PassManager([RemoveOneIdentity()]).run(model, PassContext(instruments=[stats]))
    assert result.modified
    assert op_types(model) == ["Add", "Relu"]
    assert [(r.iteration, r.modified) for r in stats.records] == [(0, True), (1, True), (2, False)]


def test_without_fixpoint_runs_once():
    model = make_model()
    result = PassManager([RemoveOneIdentity()], fixpoint=False).run(model)
    assert result.modified and op_types(model) == ["Add", "Identity", "Relu"]


def test_max_iterations_bounds_the_fixpoint():
    model = make_model()
    PassManager([RemoveOneIdentity()]).run(model, PassContext(max_iterations=1))
    assert op_types(model) == ["Add", "Identity", "Relu"]


def test_disabled_pass_is_skipped():
    model = make_model()
    stats = Statistics()
    ctx = PassContext(disabled=frozenset({"remove-identity-ops"}), instruments=[stats])
    result = PassManager(parse_pipeline("remove-identity-ops,eliminate-dead-code")).run(model, ctx)
    assert not result.modified
    assert op_types(model) == ["Identity", "Add", "Identity", "Relu"]
    assert [r.name for r in stats.records] == ["eliminate-dead-code"]


def test_in_place_contract_violation_raises():
    with pytest.raises(InternalError, match="copies-model.*in-place") as e:
        PassManager([CopiesModel()]).run(make_model())
    assert e.value.exit_code == 1  # a broken pass is edgec's bug, not the model's


def test_statistics_records_op_delta():
    model = make_model()
    stats = Statistics()
    PassManager(parse_pipeline("remove-identity-ops")).run(model, PassContext(instruments=[stats]))
    first = stats.records[0]
    assert first.name == "remove-identity-ops" and first.modified
    assert (first.nodes_before, first.nodes_after) == (4, 2)
    assert first.op_delta == {"Identity": -2}
    assert first.to_json()["pass"] == "remove-identity-ops"
    assert stats.records[-1].modified is False


def test_dump_ir_writes_one_file_per_pass(tmp_path):
    model = make_model()
    dump = DumpIR(directory=tmp_path / "dump")
    PassManager(parse_pipeline("remove-identity-ops,eliminate-dead-code"), fixpoint=False).run(
        model, PassContext(instruments=[dump]))
    files = sorted(p.name for p in (tmp_path / "dump").iterdir())
    assert files == ["001-remove-identity-ops.txt", "002-eliminate-dead-code.txt"]
    text = (tmp_path / "dump" / files[0]).read_text()
    assert "Add" in text and "Identity" not in text


def test_verify_names_the_broken_pass():
    model = make_model()
    verify = VerifyAgainstOnnxRuntime(atol=1e-5, rtol=1e-5)
    passes = parse_pipeline("remove-identity-ops").passes + [AddToSub()]
    with pytest.raises(VerificationError, match="pass 'add-to-sub' changed the outputs: 'y'"):
        PassManager(passes).run(model, PassContext(instruments=[verify]))
    assert verify.checked == ["remove-identity-ops"]


def test_verify_accepts_correct_passes():
    model = make_model()
    verify = VerifyAgainstOnnxRuntime(atol=1e-6, rtol=1e-6)
    PassManager(parse_pipeline("remove-identity-ops,eliminate-dead-code")).run(
        model, PassContext(instruments=[verify]))
    assert "remove-identity-ops" in verify.checked
    assert set(verify.expected) == {"y"} and np.all(np.isfinite(verify.expected["y"]))


@register_pass
class ReluToLog(Pass):
    """Deliberately broken: Relu(b) -> Log(b), NaN where b < 0."""

    name = "relu-to-log"

    def run(self, model, ctx):
        changed = False
        for node in model.graph:
            if node.op_type == "Relu":
                node.op_type = "Log"
                changed = True
        return PassResult(model, changed)


@register_pass
class RenameToUnknownOp(Pass):
    """Deliberately produces a model onnxruntime cannot run (an op of an unknown domain)."""

    name = "rename-to-unknown-op"

    def run(self, model, ctx):
        for node in model.graph:
            if node.op_type == "Relu":
                node.domain = "com.example"
                model.opset_imports["com.example"] = 1
                return PassResult(model, True)
        return PassResult(model, False)


def test_verify_catches_a_pass_that_introduces_nan():
    verify = VerifyAgainstOnnxRuntime()
    with pytest.raises(VerificationError, match=r"pass 'relu-to-log' changed the outputs: 'y': \d+ of 6 values: NaN") as e:
        PassManager([ReluToLog()]).run(make_model(), PassContext(instruments=[verify]))
    assert e.value.exit_code == 1


def test_verify_fails_on_a_pass_onnxruntime_cannot_run_unless_allowed():
    with pytest.raises(VerificationError, match="cannot run the model after pass 'rename-to-unknown-op'"):
        PassManager([RenameToUnknownOp()], fixpoint=False).run(
            make_model(), PassContext(instruments=[VerifyAgainstOnnxRuntime()]))
    verify = VerifyAgainstOnnxRuntime(allow_unrunnable=True)
    PassManager([RenameToUnknownOp()], fixpoint=False).run(make_model(), PassContext(instruments=[verify]))
    assert verify.checked == [] and len(verify.skipped) == 1 and verify.skipped[0].startswith("rename-to-unknown-op:")


@register_pass
class BreakOutputs(Pass):
    """Deliberately broken in a way chosen by option `how`: drop an output, add an output, change
    an output's shape, or make it Inf."""

    name = "break-outputs"
    options = {"how": "drop"}

    def run(self, model, ctx):
        g, how = model.graph, self.opts["how"]
        y = g.outputs[0]
        if how == "drop":  # a second output 'z' is dropped
            g.outputs.pop()
        elif how == "add":
            g.outputs.append(g.node(1).outputs[0])  # Add's result becomes an extra output
        elif how in ("shape", "inf"):  # y := Reshape(y, [6]) or y / 0, under the name 'y'
            y.name = "y_pre"
            if how == "shape":
                arg = ir.Value(name="flat_shape", const_value=ir.tensor(np.array([6], np.int64)))
            else:
                arg = ir.Value(name="zero", const_value=ir.tensor(np.array(0.0, np.float32)))
            g.register_initializer(arg)
            node = ir.Node("", "Reshape" if how == "shape" else "Div", [y, arg], num_outputs=1)
            g.append(node)
            node.outputs[0].name = "y"
            g.outputs[0] = node.outputs[0]
        return PassResult(model, True)


@pytest.mark.parametrize("how,why", [
    ("drop", r"'a': missing from the outputs"),
    ("add", r"'a': extra output the reference does not have"),
    ("shape", r"'y': shape \[6\], reference \[2, 3\]"),
    ("inf", r"'y': .*\d+ of 6 values: Inf where the reference is finite"),
])
def test_verify_fails_on_missing_extra_reshaped_or_infinite_outputs(how, why):
    model = make_model()
    if how == "drop":
        model.graph.outputs.append(model.graph.node(1).outputs[0])  # outputs y and a; the pass drops a
    verify = VerifyAgainstOnnxRuntime()
    with pytest.raises(VerificationError, match=why):
        PassManager([BreakOutputs(how=how)], fixpoint=False).run(model, PassContext(instruments=[verify]))
