import numpy as np

from edgec.passes.fusion.fold_batchnorm import FoldBatchNorm
from edgec.rewrite.testing import check_pass


def _floats(n, seed, lo=-1.0, hi=1.0):
    r = np.random.default_rng(seed)
    return ", ".join(f"{v:.6f}" for v in r.uniform(lo, hi, n))


BN_PARAMS = f"""
    float[4] s = {{{_floats(4, 1)}}}, float[4] b = {{{_floats(4, 2)}}},
    float[4] m = {{{_floats(4, 3)}}}, float[4] v = {{{_floats(4, 4, 0.5, 2.0)}}}"""


def conv_bn(opset=18, bias=True, consumer=""):
    w = f"float[4,3,3,3] w = {{{_floats(108, 5)}}}"
    cb = f", float[4] cb = {{{_floats(4, 6)}}}" if bias else ""
    conv_in = "x, w, cb" if bias else "x, w"
    extra_out = ", float[1,4,5,5] c" if consumer else ""
    return f"""<ir_version: 8, opset_import: ["" : {opset}]>
    g (float[1,3,5,5] x) => (float[1,4,5,5] y{extra_out}) <{w}{cb}, {BN_PARAMS}> {{
      c = Conv <pads = [1,1,1,1]> ({conv_in})
      y = BatchNormalization <epsilon = 0.001> (c, s, b, m, v)
    }}"""


def test_conv_bn_folds_into_conv():
    m = check_pass(conv_bn(), FoldBatchNorm(), ["Conv"], rtol=1e-4, atol=1e-4)
    assert set(m.graph.initializers) == {n.name for n in m.graph.node(0).inputs[1:]}, "stale weights left"


def test_conv_without_bias_gets_folded_bias():
    m = check_pass(conv_bn(bias=False), FoldBatchNorm(), ["Conv"], rtol=1e-4, atol=1e-4)
    assert len(m.graph.node(0).inputs) == 3


def test_conv_output_used_elsewhere_becomes_mul_add():
    check_pass(conv_bn(consumer="c"), FoldBatchNorm(), ["Conv", "Mul", "Add"], rtol=1e-4, atol=1e-4)


def test_non_constant_weight_declines_to_mul_add():
    text = f"""<ir_version: 8, opset_import: ["" : 18]>
    g (float[1,3,5,5] x, float[4,3,3,3] w) => (float[1,4,5,5] y) <{BN_PARAMS}> {{
      c = Conv <pads = [1,1,1,1]> (x, w)
      y = BatchNormalization (c, s, b, m, v)
    }}"""
    pass_ = FoldBatchNorm()
    check_pass(text, pass_, ["Conv", "Mul", "Add"], rtol=1e-4, atol=1e-4)
    assert any("weight is not constant" in r for r in pass_.last_trace.declines["ConvBatchNorm"])


def test_non_constant_bn_params_do_not_fire():
    text = """<ir_version: 8, opset_import: ["" : 18]>
    g (float[1,4,5,5] x, float[4] s, float[4] b, float[4] m, float[4] v) => (float[1,4,5,5] y) {
      y = BatchNormalization (x, s, b, m, v)
    }"""
    check_pass(text, FoldBatchNorm(), ["BatchNormalization"], modified=False)


def test_conv_transpose_grouped_bn():
    text = f"""<ir_version: 8, opset_import: ["" : 18]>
    g (float[1,4,4,4] x) => (float[1,4,9,9] y) <float[4,2,3,3] w = {{{_floats(72, 7)}}}, {BN_PARAMS}> {{
      c = ConvTranspose <group = 2, strides = [2,2]> (x, w)
      y = BatchNormalization (c, s, b, m, v)
    }}"""
    check_pass(text, FoldBatchNorm(), ["ConvTranspose"], rtol=1e-4, atol=1e-4)


def test_gemm_bn_with_alpha_beta_and_transb():
    text = f"""<ir_version: 8, opset_import: ["" : 18]>
    g (float[2,3] x) => (float[2,4] y) <float[4,3] w = {{{_floats(12, 8)}}}, float[4] c = {{{_floats(4, 9)}}}, {BN_PARAMS}> {{
      h = Gemm <transB = 1, alpha = 0.5, beta = 2.0> (x, w, c)
      y = BatchNormalization (h, s, b, m, v)
    }}"""
    check_pass(text, FoldBatchNorm(), ["Gemm"], rtol=1e-4, atol=1e-4)


def test_standalone_bn_needs_rank():
    text = f"""<ir_version: 8, opset_import: ["" : 18]>
    g (float[2,4,3] x) => (float[2,4,3] y) <{BN_PARAMS}> {{
      y = BatchNormalization (x, s, b, m, v)
    }}"""
    check_pass(text, FoldBatchNorm(), ["Mul", "Add"], rtol=1e-4, atol=1e-4)


def test_wrong_opset_skips():
    pass_ = FoldBatchNorm()
    check_pass(conv_bn(opset=8).replace("epsilon = 0.001", "epsilon = 0.001, spatial = 1"), pass_,
               ["Conv", "BatchNormalization"], modified=False)
    assert "min_opset 9" in pass_.last_trace.skipped["ConvBatchNorm"]


def _zero_var_text(producer: bool) -> str:
    # channel 0: var + epsilon = 0. The spec gives (y - mean) / 0 * scale = +-inf; folded
    # weights/scale of inf give NaN (inf - inf). Channel 1 is ordinary.
    w = f", float[2,3,1,1] w = {{{_floats(6, 5)}}}" if producer else ""
    src = "x3" if producer else "x2"
    body = "c = Conv (x3, w)\n      y = BatchNormalization <epsilon = 0.0> (c, s, b, m, v)" if producer else \
        "y = BatchNormalization <epsilon = 0.0> (x2, s, b, m, v)"
    return f"""<ir_version: 8, opset_import: ["" : 18]>
    g (float[1,{3 if producer else 2},3,3] {src}) => (float[1,2,3,3] y) <float[2] s = {{1.0, 2.0}},
        float[2] b = {{0.5, 0.0}}, float[2] m = {{0.25, 0.0}}, float[2] v = {{0.0, 2.0}}{w}> {{
      {body}
    }}"""


def test_zero_variance_plus_epsilon_declines():
    for producer, ops in ((True, ["Conv", "BatchNormalization"]), (False, ["BatchNormalization"])):
        pass_ = FoldBatchNorm()
        check_pass(_zero_var_text(producer), pass_, ops, modified=False)
        reasons = [r for rs in pass_.last_trace.declines.values() for r in rs]
        assert any("var + epsilon <= 0" in r for r in reasons), reasons


def test_small_positive_variance_still_folds():
    check_pass(_zero_var_text(True).replace("epsilon = 0.0", "epsilon = 0.001"), FoldBatchNorm(), ["Conv"],
               rtol=1e-4, atol=1e-4)


def test_float16_input_with_float_parameters_gets_float16_constants():
    # opset 15 allows float scale/mean/var for a float16 X: Mul/Add constants must be float16
    text = f"""<ir_version: 8, opset_import: ["" : 15]>
    g (float16[2,4,3] x) => (float16[2,4,3] y) <{BN_PARAMS}> {{
      y = BatchNormalization (x, s, b, m, v)
    }}"""
    m = check_pass(text, FoldBatchNorm(), ["Mul", "Add"], rtol=4e-3, atol=4e-3)
    assert {v.const_value.numpy().dtype.name for v in m.graph.initializers.values()} == {"float16"}
