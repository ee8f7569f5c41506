"""Malformed model files: every one is refused with exit 2 and one line naming the file, without
hanging, reading without bound, or touching the previous artifact at -o; odd but valid paths
(spaces, newlines, unicode) compile and give the right result."""

from __future__ import annotations

import os
import random

import onnx
from onnx import helper

from tests.hostile import models as M
from tests.hostile.harness import SMALL_CNN, CaseDir, Group, Spec, compile_argv

files = Group("files")
CASES = files.cases


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _ld(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _vint(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _refused(d: CaseDir, model: str, *words: str, timeout: float = 60) -> Spec:
    return Spec(compile_argv(model), code=2, words=(os.path.basename(model), *words), timeout=timeout)


@files
def empty(d: CaseDir) -> Spec:
    return _refused(d, d.write("empty.onnx", b""))


@files
def truncated(d: CaseDir) -> Spec:
    data = SMALL_CNN.read_bytes()
    return _refused(d, d.write("truncated.onnx", data[: len(data) // 2]))


@files
def text_file(d: CaseDir) -> Spec:
    return _refused(d, d.write("notes.onnx", "ir_version: 8\nthis is not a model\n" * 50))


@files
def random_bytes(d: CaseDir) -> Spec:
    return _refused(d, d.write("random.onnx", random.Random(11).randbytes(8192)))


@files
def other_message_tensor(d: CaseDir) -> Spec:
    """A serialized TensorProto: parses as a ModelProto with junk fields and no graph."""
    import numpy as np
    from onnx import numpy_helper

    return _refused(d, d.save("tensor.onnx", numpy_helper.from_array(np.arange(1000, dtype=np.int64), "t")))


@files
def other_message_graph(d: CaseDir) -> Spec:
    """A bare GraphProto (no ModelProto around it)."""
    return _refused(d, d.save("graph.onnx", M.add_model().graph))


@files
def huge_varint_length(d: CaseDir) -> Spec:
    """The graph field claims 2**62 bytes; the file has 64."""
    data = _vint(1, 8) + _ld(8, _vint(2, 17)) + _varint(7 << 3 | 2) + _varint(1 << 62) + b"\x0a" * 64
    return _refused(d, d.write("huge_len.onnx", data))


@files
def deep_nesting(d: CaseDir) -> Spec:
    """5000 If nodes nested through their then_branch subgraphs (protobuf bytes written by hand)."""
    g = b""
    for _ in range(5000):
        attr = _ld(1, b"then_branch") + _vint(20, onnx.AttributeProto.GRAPH) + _ld(6, g)
        node = _ld(1, b"c") + _ld(2, b"y") + _ld(4, b"If") + _ld(5, attr)
        g = _ld(1, node)
    data = _vint(1, 8) + _ld(8, _vint(2, 17)) + _ld(7, g)
    return _refused(d, d.write("deep.onnx", data))


@files
def fifo_as_model(d: CaseDir) -> Spec:
    return _refused(d, d.fifo("model.onnx"), timeout=20)


@files
def dev_zero_symlink(d: CaseDir) -> Spec:
    return _refused(d, d.symlink("model.onnx", "/dev/zero"), timeout=30)


@files
def directory_as_model(d: CaseDir) -> Spec:
    d.path("model.onnx").mkdir()
    d.write("model.onnx/inside.txt", "user file\n")
    return _refused(d, "model.onnx")


@files
def symlink_loop(d: CaseDir) -> Spec:
    d.symlink("loop_a.onnx", "loop_b.onnx")
    d.symlink("loop_b.onnx", "loop_a.onnx")
    return _refused(d, "loop_a.onnx")


@files
def unreadable(d: CaseDir) -> Spec:
    """chmod 000 as a normal user; as root (chmod does not bind) a model whose read() fails with
    EIO: a link to /proc/self/mem (offset 0 is never mapped)."""
    if os.geteuid() != 0:
        rel = d.small_cnn("locked.onnx")
        os.chmod(d.path(rel), 0)
        return _refused(d, rel)
    return _refused(d, d.symlink("locked.onnx", "/proc/self/mem"))


@files
def invalid_utf8_names(d: CaseDir) -> Spec:
    m = M.add_model(x="XXXXXXXX", y="YYYYYYYY")
    data = m.SerializeToString().replace(b"XXXXXXXX", b"\xff\xfe\xc0\x80bad\xed").replace(b"YYYYYYYY", b"\x80" * 8)
    return _refused(d, d.write("badutf8.onnx", data))


@files
def duplicate_names(d: CaseDir) -> Spec:
    """Two nodes write the same tensor (not SSA)."""
    m = M.model([helper.make_node("Relu", ["x"], ["t"], name="a"), helper.make_node("Neg", ["x"], ["t"], name="b"),
                 helper.make_node("Add", ["t", "t"], ["y"], name="c")], [M.vi("x", [2])], [M.vi("y", [2])])
    return _refused(d, d.save("dup.onnx", m))


@files
def cycle(d: CaseDir) -> Spec:
    m = M.model([helper.make_node("Add", ["x", "b"], ["a"], name="n1"), helper.make_node("Relu", ["a"], ["b"], name="n2"),
                 helper.make_node("Identity", ["b"], ["y"], name="n3")], [M.vi("x", [2])], [M.vi("y", [2])])
    return _refused(d, d.save("cycle.onnx", m))


@files
def missing_node_input(d: CaseDir) -> Spec:
    m = M.model([helper.make_node("Add", ["x", "ghost"], ["y"], name="n1")], [M.vi("x", [2])], [M.vi("y", [2])])
    return _refused(d, d.save("ghost.onnx", m))


@files
def unknown_opset_version(d: CaseDir) -> Spec:
    m = M.model([helper.make_node("Relu", ["x"], ["y"], name="r")], [M.vi("x", [2])], [M.vi("y", [2])], opset=999)
    return _refused(d, d.save("opset999.onnx", m))


@files
def unknown_domain_version(d: CaseDir) -> Spec:
    m = M.model([helper.make_node("Binarizer", ["x"], ["y"], name="b", domain="ai.onnx.ml")], [M.vi("x", [2])],
                [M.vi("y", [2])], extra_opsets=[helper.make_opsetid("ai.onnx.ml", 999)])
    return _refused(d, d.save("ml999.onnx", m))


@files
def ir_version_zero(d: CaseDir) -> Spec:
    m = M.add_model()
    m.ir_version = 0
    return _refused(d, d.save("ir0.onnx", m))


@files
def ir_version_huge(d: CaseDir) -> Spec:
    m = M.add_model()
    m.ir_version = 1 << 62
    return _refused(d, d.save("irhuge.onnx", m))


@files
def no_graph(d: CaseDir) -> Spec:
    m = onnx.ModelProto(ir_version=8, opset_import=[helper.make_opsetid("", 17)])
    return _refused(d, d.save("nograph.onnx", m))


@files
def missing_file(d: CaseDir) -> Spec:
    return _refused(d, "no_such_model.onnx")


@files
def path_with_spaces(d: CaseDir) -> Spec:
    model = d.save("my models/a model (v2).onnx", M.add_model())
    out = "my artifacts/out dir"
    d.path("my artifacts").mkdir()
    return Spec(compile_argv(model, out=out), code=0, check=lambda cd, o: cd.check_run(out, model))


@files
def path_with_newline(d: CaseDir) -> Spec:
    """The model's file name (its stem names the model in model.h) holds a newline and a quote."""
    model = d.save('line1\nline2 "q".onnx', M.add_model())
    return Spec(compile_argv(model), code=0, check=lambda cd, o: (cd.check_header("out"), cd.check_artifact("out")))


@files
def path_unicode(d: CaseDir) -> Spec:
    model = d.save("modèle_模型_\u202eevil.onnx", M.add_model())
    return Spec(compile_argv(model), code=0, check=lambda cd, o: (cd.check_header("out"), cd.check_run("out", model)))
