"""edgec builds on onnx-ir's public API only: no module imports (or reaches into) onnx-ir's
private modules (`onnx_ir._cloner`, `ir._core`, ...), which change without notice between
releases. Use the public equivalents (`ir.Graph.clone`, `ir.convenience`, `ir.passes`)."""

import re
from pathlib import Path

import onnx_ir as ir
import pytest

from edgec.infra.pass_base import Pass, PassResult

ROOT = Path(__file__).resolve().parents[2]
PRIVATE = re.compile(r"^\s*(?:from|import)\s+onnx_ir(?:\.\w+)*\._\w+|\b(?:onnx_ir|ir)\._[a-z]\w*", re.M)


def _private_uses(text: str) -> list[str]:
    return [m.group(0).strip() for m in PRIVATE.finditer(text)]


def test_pattern_catches_private_imports():
    assert _private_uses("from onnx_ir._cloner import Cloner\n")
    assert _private_uses("import onnx_ir._core as c\n")
    assert _private_uses("x = ir._convenience.get_const_tensor(v)\n")
    assert not _private_uses("import onnx_ir as ir\nfrom onnx_ir import passes\ng = graph.clone()\n")


def test_no_private_onnx_ir_imports():
    offenders = []
    for top in ("edgec", "passes", "targets", "examples", "benchmarks", "tests"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if path == Path(__file__).resolve():
                continue
            uses = _private_uses(path.read_text(errors="replace"))
            offenders += [f"{path.relative_to(ROOT)}: {u}" for u in uses]
    assert not offenders, "onnx-ir private API used:\n" + "\n".join(offenders)


def test_edgec_pass_is_an_onnx_ir_pass_with_its_contract_and_invariants():
    """A plugin's Pass runs through onnx-ir's protocol: requires/ensures hooks and the in-place check."""
    calls = []

    class Checked(Pass):
        """Checks its invariants."""

        name = "checked"

        def requires(self, model):
            calls.append("requires")

        def ensures(self, model):
            calls.append("ensures")
            if len(model.graph) != 0:
                raise ValueError("expected an empty graph")

        def run(self, model, ctx):
            calls.append("run")
            return PassResult(model, False)

    class Swaps(Pass):
        """Claims to be in place but returns another model."""

        name = "swaps"

        def run(self, model, ctx):
            return PassResult(ir.Model(ir.Graph([], [], nodes=[]), ir_version=8), True)

    model = ir.Model(ir.Graph([], [], nodes=[], opset_imports={"": 18}), ir_version=8)
    assert isinstance(Checked(), ir.passes.PassBase) and PassResult is ir.passes.PassResult
    assert Checked()(model).model is model and calls == ["requires", "run", "ensures"]
    model.graph.append(ir.Node("", "Constant", [], [ir.AttrInt64s("value_ints", [1])]))

    with pytest.raises(ir.passes.PostconditionError):
        Checked()(model)
    with pytest.raises(ir.passes.PassError, match="in-place"):
        Swaps()(model)
