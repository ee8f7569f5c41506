"""Graph and size bombs: sizes that only constant folding, unrolling or the user's --input-shape
reveal are checked against the same limits as declared sizes, before anything is allocated.
Every bomb gets exit 2 within its limit and under 2 GiB; a big but legitimate graph finishes
(a Loop too long to unroll compiles as a run-time loop)."""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
from onnx import helper, numpy_helper

from tests.hostile import models as M
from tests.hostile.harness import CaseDir, CaseFailure, Group, Spec, compile_argv

sizes = Group("sizes")
CASES = sizes.cases


def _refused(model: str, *extra: str, words: tuple[str, ...] = (), timeout: float = 60) -> Spec:
    return Spec(compile_argv(model, *extra), code=2, words=words or (os.path.basename(model),), timeout=timeout)


def _float_shape(name: str, a, b) -> list:
    """int64 `name` = Cast(a * b) with float constants: onnx's data propagation does not see it."""
    return [M.const(f"{name}_a", a, np.float32), M.const(f"{name}_b", b, np.float32),
            helper.make_node("Mul", [f"{name}_a", f"{name}_b"], [f"{name}_f"], name=f"{name}_mul"),
            helper.make_node("Cast", [f"{name}_f"], [name], name=f"{name}_cast", to=M.INT64)]


@sizes
def huge_declared_input(d: CaseDir) -> Spec:
    m = M.model([helper.make_node("Relu", ["x"], ["y"], name="r")], [M.vi("x", [100000, 100000, 1000])],
                [M.vi("y", [100000, 100000, 1000])])
    return _refused(d.save("huge_input.onnx", m))


@sizes
def expand_bomb_folded(d: CaseDir) -> Spec:
    """Expand of a constant to [1e5, 1e5] (40 GB): fold-constants would materialize it."""
    nodes = [M.const("one", [1.0], np.float32), *_float_shape("shape", [1000.0, 1000.0], [100.0, 100.0]),
             helper.make_node("Expand", ["one", "shape"], ["big"], name="expand"),
             helper.make_node("ReduceSum", ["big"], ["s"], name="sum", keepdims=0),
             helper.make_node("Add", ["x", "s"], ["y"], name="add")]
    m = M.model(nodes, [M.vi("x", [1])], [M.vi("y", [1])])
    return _refused(d.save("expand.onnx", m))


@sizes
def expand_bomb_runtime(d: CaseDir) -> Spec:
    """Expand of the runtime input to [1e5, 1e5]: the compiled model would need 40 GB per call."""
    nodes = [*_float_shape("shape", [1000.0, 1000.0], [100.0, 100.0]),
             helper.make_node("Expand", ["x", "shape"], ["y"], name="expand")]
    m = M.model(nodes, [M.vi("x", [1])], [M.vi("y", ["a", "b"])])
    return _refused(d.save("expand_rt.onnx", m))


@sizes
def expand_int64_overflow(d: CaseDir) -> Spec:
    """Expand to [2**32, 2**32]: 2**64 elements, which wraps to 0 in int64 arithmetic."""
    nodes = [M.const("one", [1.0], np.float32), M.const("a", [1 << 16, 1 << 16]), M.const("b", [1 << 16, 1 << 16]),
             helper.make_node("Mul", ["a", "b"], ["shape"], name="mul"),
             helper.make_node("Expand", ["one", "shape"], ["big"], name="expand"),
             helper.make_node("ReduceMax", ["big"], ["s"], name="max", keepdims=0),
             helper.make_node("Add", ["x", "s"], ["y"], name="add")]
    m = M.model(nodes, [M.vi("x", [1])], [M.vi("y", [1])])
    return _refused(d.save("overflow.onnx", m))


@sizes
def tile_bomb(d: CaseDir) -> Spec:
    nodes = [M.const("row", np.ones(1000), np.float32), *_float_shape("reps", [1e4], [1e3]),
             helper.make_node("Tile", ["row", "reps"], ["big"], name="tile"),
             helper.make_node("ReduceSum", ["big"], ["s"], name="sum", keepdims=0),
             helper.make_node("Add", ["x", "s"], ["y"], name="add")]
    m = M.model(nodes, [M.vi("x", [1])], [M.vi("y", [1])])
    return _refused(d.save("tile.onnx", m))


@sizes
def constant_of_shape_bomb(d: CaseDir) -> Spec:
    nodes = [M.const("a", [100000, 1000]), M.const("b", [1, 100]),
             helper.make_node("Mul", ["a", "b"], ["shape"], name="mul"),
             helper.make_node("ConstantOfShape", ["shape"], ["big"], name="cos",
                              value=numpy_helper.from_array(np.ones(1, np.float32), "v")),
             helper.make_node("ReduceSum", ["big"], ["s"], name="sum", keepdims=0),
             helper.make_node("Add", ["x", "s"], ["y"], name="add")]
    m = M.model(nodes, [M.vi("x", [1])], [M.vi("y", [1])])
    return _refused(d.save("cos.onnx", m))


@sizes
def range_bomb(d: CaseDir) -> Spec:
    nodes = [M.const("start", 0.0, np.float32), M.const("delta", 1.0, np.float32),
             M.const("la", 1e5, np.float32), M.const("lb", 1e5, np.float32),
             helper.make_node("Mul", ["la", "lb"], ["limit"], name="mul"),
             helper.make_node("Range", ["start", "limit", "delta"], ["big"], name="range"),
             helper.make_node("ReduceSum", ["big"], ["s"], name="sum", keepdims=0),
             helper.make_node("Add", ["x", "s"], ["y"], name="add")]
    m = M.model(nodes, [M.vi("x", [1])], [M.vi("y", [1])])
    return _refused(d.save("range.onnx", m))


@sizes
def reshape_of_expand_bomb(d: CaseDir) -> Spec:
    nodes = [M.const("one", [1.0], np.float32), *_float_shape("shape", [1e3, 1e3, 1e3], [10.0, 10.0, 10.0]),
             M.const("flat", [-1]),
             helper.make_node("Expand", ["one", "shape"], ["big"], name="expand"),
             helper.make_node("Reshape", ["big", "flat"], ["long"], name="reshape"),
             helper.make_node("ReduceSum", ["long"], ["s"], name="sum", keepdims=0),
             helper.make_node("Add", ["x", "s"], ["y"], name="add")]
    m = M.model(nodes, [M.vi("x", [1])], [M.vi("y", [1])])
    return _refused(d.save("reshape.onnx", m))


@sizes
def pad_bomb(d: CaseDir) -> Spec:
    nodes = [*_float_shape("pads", [0.0, 0.0, 0.0, 1e5], [1.0, 1.0, 1.0, 1e5]),
             helper.make_node("Pad", ["x", "pads"], ["y"], name="pad")]
    m = M.model(nodes, [M.vi("x", [1, 1])], [M.vi("y", ["a", "b"])])
    return _refused(d.save("pad.onnx", m))


@sizes
def resize_bomb(d: CaseDir) -> Spec:
    nodes = [M.const("sa", [1.0, 1.0, 100.0, 100.0], np.float32), M.const("sb", [1.0, 1.0, 100.0, 100.0], np.float32),
             helper.make_node("Mul", ["sa", "sb"], ["scales"], name="mul"),
             helper.make_node("Resize", ["x", "", "scales"], ["y"], name="resize", mode="nearest")]
    m = M.model(nodes, [M.vi("x", [1, 1, 8, 8])], [M.vi("y", [1, 1, "h", "w"])])
    return _refused(d.save("resize.onnx", m))


def _runtime_loops(model: str, loops: int) -> Spec:
    """Valid: too many trips to unroll, so the Loop is compiled as run-time control flow (not
    copied), within the time and memory limits. Not run: it would take hours."""
    def check(cd: CaseDir, o) -> None:
        cd.check_artifact("out")
        meta = json.loads((cd.path("out") / "metadata.json").read_text())
        got = meta["lowering"]["edgec"].get("Loop", 0)
        if got != loops:
            raise CaseFailure(f"expected {loops} Loop(s) lowered as run-time loops, metadata says {got}")
    return Spec(compile_argv(model), code=0, check=check)


@sizes
def loop_trip_count_1e9(d: CaseDir) -> Spec:
    m = M.loop_model([M.const("M", 10**9)])
    return _runtime_loops(d.save("loop1e9.onnx", m), 1)


@sizes
def loop_trip_count_from_arithmetic(d: CaseDir) -> Spec:
    m = M.loop_model([M.const("ma", 100000), M.const("mb", 100000),
                      helper.make_node("Mul", ["ma", "mb"], ["M"], name="mul")])
    return _runtime_loops(d.save("loop_mul.onnx", m), 1)


@sizes
def nested_loops(d: CaseDir) -> Spec:
    """Three nested Loops of 1000 iterations each: unrolled, 10**9 nodes; compiled as three
    run-time loops instead."""
    body = None
    for level in range(3):
        suffix = f"_{level}"
        vi_in, vi_out = M.vi("v_in" + suffix, [2]), M.vi("v_out" + suffix, [2])
        head = [M.vi("i" + suffix, [], M.INT64), M.vi("c_in" + suffix, [], M.BOOL), vi_in]
        tail = [M.vi("c_out" + suffix, [], M.BOOL), vi_out]
        keep = helper.make_node("Identity", ["c_in" + suffix], ["c_out" + suffix], name="keep" + suffix)
        if body is None:
            nodes = [keep, helper.make_node("Add", ["v_in" + suffix, "one"], ["v_out" + suffix], name="inc")]
        else:
            nodes = [keep, M.const("m" + suffix, 1000), M.const("go" + suffix, True, np.bool_),
                     helper.make_node("Loop", ["m" + suffix, "go" + suffix, "v_in" + suffix], ["v_out" + suffix],
                                      name="loop" + suffix, body=body)]
        body = helper.make_graph(nodes, "body" + suffix, head, tail)
    nodes = [M.const("one", np.ones(2), np.float32), M.const("M", 1000), M.const("go", True, np.bool_),
             helper.make_node("Loop", ["M", "go", "x"], ["y"], name="outer", body=body)]
    m = M.model(nodes, [M.vi("x", [2])], [M.vi("y", [2])])
    return _runtime_loops(d.save("nested_loops.onnx", m), 3)


@sizes
def nested_if_depth(d: CaseDir) -> Spec:
    """20 nested Ifs with constant conditions: valid; folds to one Add."""
    model = d.save("nested_if.onnx", M.nested_if(20, 2.5))
    return Spec(compile_argv(model), code=0, check=lambda cd, o: cd.check_run("out", model))


@sizes
def graph_200k_nodes(d: CaseDir) -> Spec:
    """A chain of 200,000 element-wise nodes: finishes within its limit, or is refused (exit 2)."""
    n = 200_000
    nodes = [helper.make_node("Neg" if i % 2 else "Abs", [f"t{i}" if i else "x"], [f"t{i + 1}" if i + 1 < n else "y"],
                              name=f"n{i}") for i in range(n)]
    model = d.save("chain.onnx", M.model(nodes, [M.vi("x", [4])], [M.vi("y", [4])]))
    return Spec(compile_argv(model), code=2, also_ok=(0,), words=("chain.onnx",), timeout=60,
                check=lambda cd, o: cd.check_run("out", model))


@sizes
def initializer_dims_disagree(d: CaseDir) -> Spec:
    w = numpy_helper.from_array(np.ones((2, 3), np.float32), "w")
    del w.dims[:]
    w.dims.extend([1000, 1000])
    m = M.model([helper.make_node("Add", ["x", "w"], ["y"], name="add")], [M.vi("x", [1000, 1000])],
                [M.vi("y", [1000, 1000])], [w])
    return _refused(d.save("dims.onnx", m))


@sizes
def initializer_huge_dims_no_data(d: CaseDir) -> Spec:
    w = onnx.TensorProto(name="w", data_type=M.FLOAT, dims=[1 << 20, 1 << 20])  # 4 TiB declared, no data
    m = M.model([helper.make_node("Add", ["x", "w"], ["y"], name="add")], [M.vi("x", [1])], [M.vi("y", ["a", "b"])], [w])
    return _refused(d.save("nodata.onnx", m))


@sizes
def input_shape_bypasses_limit(d: CaseDir) -> Spec:
    """A dynamic input fixed by --input-shape to 1.6e11 floats (the 1.6 TB input of issue 11)."""
    m = M.model([helper.make_node("Relu", ["x"], ["y"], name="r")], [M.vi("x", ["a", "b", "c"])], [M.vi("y", ["a", "b", "c"])])
    model = d.save("dyn.onnx", m)
    return _refused(model, "--input-shape", "x=100000,100000,1000", words=("max-tensor-bytes",))


@sizes
def input_shape_over_small_limit(d: CaseDir) -> Spec:
    """--input-shape makes a 1 MiB input; --max-tensor-bytes allows 100 kB."""
    m = M.model([helper.make_node("Relu", ["x"], ["y"], name="r")], [M.vi("x", ["a", "b", "c"])], [M.vi("y", ["a", "b", "c"])])
    model = d.save("dyn.onnx", m)
    return _refused(model, "--input-shape", "x=64,64,64", "--max-tensor-bytes", "100000", words=("max-tensor-bytes",))


@sizes
def negative_declared_dim(d: CaseDir) -> Spec:
    m = M.model([helper.make_node("Relu", ["x"], ["y"], name="r")], [M.vi("x", [-5, 3])], [M.vi("y", [-5, 3])])
    return _refused(d.save("negdim.onnx", m))


@sizes
def input_shape_negative(d: CaseDir) -> Spec:
    m = M.model([helper.make_node("Relu", ["x"], ["y"], name="r")], [M.vi("x", ["n", 3])], [M.vi("y", ["n", 3])])
    model = d.save("dyn2.onnx", m)
    return _refused(model, "--input-shape", "x=-5,3", words=("-5",))


@sizes
def model_file_3gib_sparse(d: CaseDir) -> Spec:
    """A 3 GiB (sparse) file of zeros: refused without reading it all into memory."""
    p = d.path("huge.onnx")
    with open(p, "wb") as f:
        f.truncate(3 << 30)
    return _refused("huge.onnx", timeout=30)
