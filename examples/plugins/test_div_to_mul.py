"""div-to-mul: exact by default (powers of two), rounding only when asked; declines elsewhere."""

from div_to_mul import DivToMul  # the plugin file beside this test

from edgec.rewrite.testing import check_pass


def model(divisor: str, dtype: str = "float") -> str:
    return f"""<ir_version: 8, opset_import: ["" : 18]>
    g ({dtype}[2,4] x) => ({dtype}[2,4] y) {{
      c = Constant <value = {divisor}> ()
      y = Div (x, c)
    }}"""


def test_power_of_two_divisors_become_exact_multiplications():
    m = check_pass(model("float[4] {2.0, 0.25, -8.0, 1024.0}"), DivToMul(), ["Mul"], rtol=0, atol=0)
    assert m.graph.initializers["c_reciprocal"].const_value.numpy().tolist() == [0.5, 4.0, -0.125, 1 / 1024]


def test_other_divisors_only_with_allow_rounding():
    check_pass(model("float {255.0}"), DivToMul(), ["Div"], modified=False)
    check_pass(model("float {255.0}"), DivToMul(allow_rounding=True), ["Mul"], rtol=1e-6, atol=1e-7)


def test_declines_zero_huge_integer_and_computed_divisors():
    check_pass(model("float[4] {2.0, 0.0, 4.0, 8.0}"), DivToMul(allow_rounding=True), ["Div"], modified=False)
    check_pass(model("float {1e-40}"), DivToMul(allow_rounding=True), ["Div"], modified=False)  # 1/c overflows
    check_pass(model("int64 {2}", dtype="int64"), DivToMul(), ["Div"], modified=False)  # integer division
    computed = """<ir_version: 8, opset_import: ["" : 18]>
    g (float[2,4] x, float[4] c) => (float[2,4] y) { y = Div (x, c) }"""
    check_pass(computed, DivToMul(allow_rounding=True), ["Div"], modified=False)


def test_the_option_parses_from_pipeline_text():
    from edgec.infra.pipeline import parse_pipeline
    from edgec.infra.registry import PassRegistry

    reg = PassRegistry()
    reg.add(DivToMul)
    assert parse_pipeline("div-to-mul{allow_rounding=true}", reg).passes[0].opts == {"allow_rounding": True}
