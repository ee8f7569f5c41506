"""External-data tricks: a tensor's data file must be a regular file inside the model's directory
and its offset/length must be numbers that fit the file and the tensor. Everything else is exit 2
naming the model, read nothing outside the directory and never blocks on a special file."""

from __future__ import annotations

import os
import stat

import numpy as np
from onnx import helper, numpy_helper

from tests.hostile import models as M
from tests.hostile.harness import CaseDir, Group, Spec, compile_argv

external = Group("external")
CASES = external.cases

DATA = np.arange(6, dtype=np.float32).tobytes()  # 24 bytes: a float32 [2, 3]


def _refused(d: CaseDir, location: str, offset: str | None = "0", length: str | None = "24",
             timeout: float = 60) -> Spec:
    model = d.save("models/model.onnx", M.external_add_model(location, offset, length))
    return Spec(compile_argv(model), code=2, words=("model.onnx",), timeout=timeout)


@external
def escape_dotdot(d: CaseDir) -> Spec:
    d.write("secret.bin", DATA)
    return _refused(d, "../secret.bin")


@external
def escape_deep_dotdot(d: CaseDir) -> Spec:
    d.write("secret.bin", DATA)
    d.path("models/sub").mkdir(parents=True)
    return _refused(d, "sub/../../secret.bin")


@external
def absolute_path(d: CaseDir) -> Spec:
    d.write("secret.bin", DATA)
    return _refused(d, str(d.path("secret.bin")))


@external
def symlink_outside(d: CaseDir) -> Spec:
    d.write("secret.bin", DATA)
    d.symlink("models/weights.bin", "../secret.bin")
    return _refused(d, "weights.bin")


@external
def fifo(d: CaseDir) -> Spec:
    d.fifo("models/weights.bin")
    return _refused(d, "weights.bin", timeout=20)


@external
def dev_zero_symlink(d: CaseDir) -> Spec:
    d.symlink("models/weights.bin", "/dev/zero")
    return _refused(d, "weights.bin", length=str(1 << 40), timeout=30)


@external
def device_node_inside(d: CaseDir) -> Spec:
    """A character device (/dev/zero's numbers) made inside the model directory; where mknod is
    not allowed, a symlink to /dev/urandom."""
    p = d.path("models/weights.bin")
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mknod(p, stat.S_IFCHR | 0o644, os.makedev(1, 5))
    except OSError:
        os.symlink("/dev/urandom", p)
    return _refused(d, "weights.bin", timeout=30)


@external
def missing_file(d: CaseDir) -> Spec:
    return _refused(d, "nope.bin")


@external
def location_is_directory(d: CaseDir) -> Spec:
    d.write("models/blobs/a.bin", DATA)
    return _refused(d, "blobs", length=None)


@external
def location_empty(d: CaseDir) -> Spec:
    return _refused(d, "")


@external
def location_nul_byte(d: CaseDir) -> Spec:
    d.write("models/w.bin", DATA)
    return _refused(d, "w.bin\x00.txt")


@external
def length_beyond_file(d: CaseDir) -> Spec:
    d.write("models/w.bin", DATA)
    return _refused(d, "w.bin", length="4096")


@external
def offset_beyond_file(d: CaseDir) -> Spec:
    d.write("models/w.bin", DATA)
    return _refused(d, "w.bin", offset="1000000")


@external
def length_not_a_number(d: CaseDir) -> Spec:
    d.write("models/w.bin", DATA)
    return _refused(d, "w.bin", length="abc")


@external
def offset_not_a_number(d: CaseDir) -> Spec:
    d.write("models/w.bin", DATA)
    return _refused(d, "w.bin", offset="0x10")


@external
def offset_negative(d: CaseDir) -> Spec:
    d.write("models/w.bin", DATA * 2)
    return _refused(d, "w.bin", offset="-24")


@external
def offset_beyond_int64(d: CaseDir) -> Spec:
    d.write("models/w.bin", DATA)
    return _refused(d, "w.bin", offset=str(1 << 80))


@external
def length_disagrees_with_dims(d: CaseDir) -> Spec:
    d.write("models/w.bin", DATA)
    return _refused(d, "w.bin", length="12")


@external
def escape_in_constant_node(d: CaseDir) -> Spec:
    """The escaping tensor is a Constant node's attribute, not an initializer."""
    d.write("secret.bin", DATA)
    t = numpy_helper.from_array(np.zeros((2, 3), np.float32), "c")
    t.ClearField("raw_data")
    t.data_location = t.EXTERNAL
    for k, v in (("location", "../secret.bin"), ("offset", "0"), ("length", "24")):
        e = t.external_data.add()
        e.key, e.value = k, v
    m = M.model([helper.make_node("Constant", [], ["c"], name="k", value=t),
                 helper.make_node("Add", ["x", "c"], ["y"], name="add")], [M.vi("x", [2, 3])], [M.vi("y", [2, 3])])
    model = d.save("models/model.onnx", m)
    return Spec(compile_argv(model), code=2, words=("model.onnx",))


@external
def escape_in_subgraph(d: CaseDir) -> Spec:
    """The escaping initializer sits in an If branch."""
    d.write("secret.bin", DATA)
    inner = M.external_add_model("../secret.bin").graph
    then = helper.make_graph(list(inner.node), "then", [], [M.vi("y_then", [2, 3])], list(inner.initializer))
    then.node[0].output[0] = "y_then"
    other = helper.make_graph([helper.make_node("Neg", ["x"], ["y_else"], name="neg")], "else", [],
                              [M.vi("y_else", [2, 3])])
    m = M.model([M.const("cond", True, np.bool_),
                 helper.make_node("If", ["cond"], ["y"], name="if", then_branch=then, else_branch=other)],
                [M.vi("x", [2, 3])], [M.vi("y", [2, 3])])
    model = d.save("models/model.onnx", m)
    return Spec(compile_argv(model), code=2, words=("model.onnx",))


@external
def valid_external_data(d: CaseDir) -> Spec:
    """The well-behaved case: data beside the model, right offset and length: compiles, correct."""
    d.write("models/w.bin", b"\0" * 8 + DATA)
    model = d.save("models/model.onnx", M.external_add_model("w.bin", offset="8", length="24"))
    return Spec(compile_argv(model), code=0, check=lambda cd, o: cd.check_run("out", model))
