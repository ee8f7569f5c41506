import numpy as np

from edgec.passes.fusion.fuse_matmul_add import FuseMatMulAdd
from edgec.rewrite.testing import check_pass


def _floats(n, seed):
    return ", ".join(f"{v:.6f}" for v in np.random.default_rng(seed).uniform(-1, 1, n))


def model(x_shape="2,3", bias="float[4] c", bias_first=False, w_input=False, extra_out=""):
    w_decl = "" if w_input else f"float[3,4] w = {{{_floats(12, 1)}}}, "
    w_in = ", float[3,4] w" if w_input else ""
    n = 4 if "[4]" in bias or "[1,4]" in bias else (1 if "[1]" in bias else 8)
    y_shape = x_shape[:-1] + "4"
    add = "Add (c, h)" if bias_first else "Add (h, c)"
    return f"""<ir_version: 8, opset_import: ["" : 18]>
    g (float[{x_shape}] x{w_in}) => (float[{y_shape}] y{extra_out}) <{w_decl}{bias} = {{{_floats(n, 2)}}}> {{
      h = MatMul (x, w)
      y = {add}
    }}"""


def test_matmul_add_becomes_gemm():
    check_pass(model(), FuseMatMulAdd(), ["Gemm"], rtol=1e-5, atol=1e-5)


def test_bias_first_commutative():
    check_pass(model(bias="float[1,4] c", bias_first=True), FuseMatMulAdd(), ["Gemm"], rtol=1e-5, atol=1e-5)


def test_3d_input_declines_with_reason():
    pass_ = FuseMatMulAdd()
    check_pass(model(x_shape="2,2,3"), pass_, ["MatMul", "Add"], modified=False)
    assert any("Gemm needs 2-D" in r for r in pass_.last_trace.declines["MatMulAdd"])


def test_non_constant_weight_declines():
    check_pass(model(w_input=True), FuseMatMulAdd(), ["MatMul", "Add"], modified=False)


def test_matmul_output_used_elsewhere_declines():
    check_pass(model(extra_out=", float[2,4] h"), FuseMatMulAdd(), ["MatMul", "Add"], modified=False)


def test_row_bias_declines():
    check_pass(model(bias="float[2,4] c"), FuseMatMulAdd(), ["MatMul", "Add"], modified=False)


def test_integer_matmul_declines():
    # int32 Gemm is valid ONNX but no runtime kernel exists for it (onnxruntime: NOT_IMPLEMENTED)
    text = """<ir_version: 8, opset_import: ["" : 18]>
    g (int32[3,4] x) => (int32[3,2] y) <int32[4,2] w = {1, 2, 3, 4, 5, 6, 7, 8}, int32[2] c = {1, 2}> {
      m = MatMul (x, w)
      y = Add (c, m)
    }"""
    pass_ = FuseMatMulAdd()
    check_pass(text, pass_, ["MatMul", "Add"], modified=False)
    assert any("integer" in r for r in pass_.last_trace.declines["MatMulAdd"])
