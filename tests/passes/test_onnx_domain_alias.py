"""A model importing the default domain as "ai.onnx" (instead of "") gets the same fusions."""

from __future__ import annotations

import onnx
import onnx_ir as ir
import pytest

from edgec.errors import ModelValidationError
from edgec.infra.context import PassContext
from edgec.ir.domains import (
    canonicalize_onnx_domain,
    is_onnx_domain,
    normalize_domain,
    normalized_opsets,
    onnx_opset,
)
from edgec.ir.loader import load_model, to_proto
from edgec.passes.cleanup.eliminate_dead_code import EliminateDeadCode
from edgec.passes.cleanup.infer_shapes import InferShapes
from edgec.passes.fusion.recognize_layernorm import RecognizeLayerNorm
from edgec.passes.fusion.recognize_silu import RecognizeSilu
from edgec.rewrite.testing import check_pass, op_list, parse
from tests.conftest import model_from_text
from tests.e2e.compile_check import compile_and_compare
from tests.passes.test_norm_params import ln_text

AI_ONNX_LN = ln_text().replace('opset_import: ["" : 18]', 'opset_import: ["ai.onnx" : 18]')

SILU = """<ir_version: 8, opset_import: ["ai.onnx" : 18]>
g (float[2,8] x) => (float[2,8] y) {
  s = Sigmoid (x)
  y = Mul (s, x)
}"""


def test_helpers():
    assert normalize_domain("ai.onnx") == normalize_domain("") == ""
    assert normalize_domain("ai.onnx.ml") == "ai.onnx.ml" and not is_onnx_domain("com.microsoft")
    assert onnx_opset({"ai.onnx": 17}) == onnx_opset({"": 17}) == 17
    assert onnx_opset({"edgec": 1}) is None
    assert normalized_opsets({"ai.onnx": 17, "com.microsoft": 1}) == {"": 17, "com.microsoft": 1}


def test_opset_lookup_same_for_both_spellings_on_models_and_functions():
    """The one opset lookup (onnx_opset) reads a model or function directly, either spelling."""
    for spelling in ("", "ai.onnx"):
        m = ir.serde.deserialize_model(onnx.parser.parse_model(SILU.replace('"ai.onnx"', f'"{spelling}"')))
        assert onnx_opset(m) == onnx_opset(m.opset_imports) == 18
    assert onnx_opset(ir.Model(ir.Graph([], [], nodes=[], opset_imports={"x": 1}), ir_version=8), 1) == 1


def test_rules_run_on_an_ai_onnx_import():
    assert "ai.onnx" in AI_ONNX_LN
    m = check_pass(AI_ONNX_LN, RecognizeLayerNorm(), ["LayerNormalization"], rtol=1e-5, atol=1e-5)
    assert dict(m.opset_imports) == {"ai.onnx": 18}
    m = check_pass(SILU, RecognizeSilu(), ["edgec.Silu"], rtol=1e-6, atol=1e-6)
    assert m.opset_imports["edgec"] == 1


def test_nodes_spelled_ai_onnx_match():
    m = parse(SILU)
    for n in m.graph:
        n.domain = "ai.onnx"
    assert RecognizeSilu()(m, PassContext()).modified
    assert op_list(m) == ["edgec.Silu"]


def test_dead_code_elimination_keeps_the_default_domain_import():
    # onnx_ir's unused-opset removal dropped "ai.onnx" (its nodes are spelled ""), and shape
    # inference then failed with "No opset import for domain ''"
    m = parse(AI_ONNX_LN)
    EliminateDeadCode()(m, PassContext())
    assert dict(m.opset_imports) == {"": 18}
    InferShapes()(m, PassContext())
    onnx.checker.check_model(to_proto(m), full_check=True)


def test_loader_canonicalizes_and_rejects_two_versions():
    m = load_model(model_from_text(AI_ONNX_LN))
    assert dict(m.opset_imports) == {"": 18}
    both = model_from_text(AI_ONNX_LN.replace('["ai.onnx" : 18]', '["ai.onnx" : 18, "" : 17]'))
    with pytest.raises(ModelValidationError):
        load_model(both)


def test_canonicalize_reaches_functions_and_subgraphs():
    m = ir.serde.deserialize_model(onnx.parser.parse_model("""<ir_version: 10, opset_import: ["ai.onnx" : 18, "local" : 1]>
    g (float[4] x, bool c) => (float[4] y) {
      y = If (c) <then_branch = g1 () => (float[4] t) { t = local.F (x) },
                  else_branch = g2 () => (float[4] e) { e = Neg (x) }>
    }
    <domain: "local", opset_import: ["ai.onnx" : 18]>
    F (a) => (b) { b = Relu (a) }"""))
    for g in (m.graph, *m.graph.subgraphs(), *(f.graph for f in m.functions.values())):
        for n in g:
            if n.domain == "":
                n.domain = "ai.onnx"
    assert canonicalize_onnx_domain(m)
    assert dict(m.opset_imports) == {"": 18, "local": 1}
    assert dict(m.functions[("local", "F", "")].opset_imports) == {"": 18}
    domains = {n.domain for g in (m.graph, *m.graph.subgraphs(), m.functions[("local", "F", "")].graph) for n in g}
    assert domains == {"", "local"}
    assert not canonicalize_onnx_domain(m)


def test_compile_O2_fuses_an_ai_onnx_model(tmp_path):
    ops = compile_and_compare(model_from_text(AI_ONNX_LN), tmp_path, opt_level=2, atol=1e-4, rtol=1e-4)
    assert ops == {"LayerNormalization": 1}
