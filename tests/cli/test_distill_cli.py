"""`edgec distill` (issue 15, item 5): the digits bar (a CNN channel-pruned by `edgec prune` wins its
accuracy back from unlabeled images), pruned zeros kept at zero, the report, and misuse as one
line, exit 2."""

from __future__ import annotations

import json
import sys

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from edgec.distill import run_ort_batched
from edgec.prune import PruneOptions, prune_model
from tests.models.digits_cnn import digits_split
from tests.models.digits_torch import onnx_model
from tests.passes.quant_models import cnn, samples, write_npy_dir


def _accuracy(model, x, y) -> float:
    batch1 = onnx.load(model).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    return float(np.mean(run_ort_batched(model, {"x": x}, batch1)["logits"].argmax(1) == y))


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """teacher.onnx (a symbolic batch, as exported models have), student.onnx (its channels
    pruned at 0.5 by edgec.prune), train/ (unlabeled images, one .npy per 64), eval/ (held-out
    images), eval_labels.npy, train_labels.npy."""
    d = tmp_path_factory.mktemp("distill")
    xtr, ytr, xte, yte = digits_split()
    (d / "train").mkdir()
    for i in range(0, len(xtr), 64):
        np.save(d / "train" / f"{i:05d}.npy", xtr[i:i + 64])
    (d / "eval").mkdir()
    np.save(d / "eval" / "test.npy", xte)
    np.save(d / "eval_labels.npy", yte)
    np.save(d / "train_labels.npy", ytr)
    onnx.save(onnx_model(), d / "teacher.onnx")
    student, rep = prune_model(d / "teacher.onnx", PruneOptions(mode="channel", ratio=0.5))
    pruned = {tuple(g["layers"]): g["pruned"] for g in rep.groups}
    assert pruned[("conv2",)] == 16 and pruned[("fc1",)] == 32, rep.groups  # conv1 and fc2 are the ends
    onnx.save(student, d / "student.onnx")
    return d, xte, yte


def test_distill_wins_back_the_accuracy_channel_pruning_lost(run_cli, digits):
    d, xte, yte = digits
    out = d / "recovered.onnx"
    base, pruned = _accuracy(d / "teacher.onnx", xte, yte), _accuracy(d / "student.onnx", xte, yte)
    assert base > 0.97, f"the teacher did not train: {base}"
    assert base - pruned >= 0.02, f"pruning at 0.5 should cost accuracy: {base:.4f} -> {pruned:.4f}"
    r = run_cli("distill", "--teacher", d / "teacher.onnx", "--student", d / "student.onnx", "--data", d / "train",
                "-o", out, "--report", "--eval-data", d / "eval", "--eval-labels", d / "eval_labels.npy", "--json")
    assert r.code == 0, r
    after = _accuracy(out, xte, yte)
    assert base - after <= 0.01, f"teacher {base:.4f}, pruned {pruned:.4f}, distilled {after:.4f}"
    res = json.loads(r.out)
    assert res["samples"] == len(digits_split()[0]) and res["loss_per_epoch"][-1] < res["loss_per_epoch"][0]
    rep = res["report"]
    assert rep["samples"] == len(xte)
    assert rep["accuracy"] == pytest.approx({"teacher": base, "before": pruned, "after": after})
    logits = rep["outputs"]["logits"]
    assert logits["after"]["top1_agreement"] > logits["before"]["top1_agreement"]
    assert logits["after"]["cosine"] > logits["before"]["cosine"] > 0.5
    # the structure is the student's: same graph, same (pruned) shapes, new weights
    s, o = onnx.load(d / "student.onnx"), onnx.load(out)
    assert [n.op_type for n in o.graph.node] == [n.op_type for n in s.graph.node]
    assert {i.name: list(i.dims) for i in o.graph.initializer} == {i.name: list(i.dims) for i in s.graph.initializer}


def test_hard_labels_mixed_in_by_alpha_on_an_unstructured_student_with_a_dynamic_batch(run_cli, digits):
    d, xte, yte = digits
    onnx.save(onnx_model(), d / "teacher_n.onnx")
    student, _ = prune_model(d / "teacher_n.onnx", PruneOptions(mode="unstructured", ratio=0.9))
    onnx.save(student, d / "sparse.onnx")
    out = d / "labels.onnx"
    base, sparse = _accuracy(d / "teacher_n.onnx", xte, yte), _accuracy(d / "sparse.onnx", xte, yte)
    r = run_cli("distill", "--teacher", d / "teacher_n.onnx", "--student", d / "sparse.onnx", "--data", d / "train",
                "-o", out, "--labels", d / "train_labels.npy", "--alpha", "0.3", "--epochs", "6", "--json")
    assert r.code == 0, r
    res = json.loads(r.out)
    assert res["alpha"] == 0.3 and res["masked_weights"] == 2  # conv2 and fc1: global magnitude pruning spares the ends
    after = _accuracy(out, xte, yte)
    assert sparse < base - 0.1 and base - after <= 0.015, (base, sparse, after)
    for t, u in zip(student.graph.initializer, onnx.load(out).graph.initializer):
        assert t.name == u.name
        assert np.array_equal(numpy_helper.to_array(t) == 0, numpy_helper.to_array(u) == 0) or t.name.endswith("bias")


def _zero_smallest(m: onnx.ModelProto, names, ratio: float) -> onnx.ModelProto:
    """Unstructured magnitude pruning of the named weights (the test's own: a mask to keep)."""
    m = onnx.ModelProto.FromString(m.SerializeToString())
    for i, t in enumerate(m.graph.initializer):
        if t.name in names:
            a = numpy_helper.to_array(t).copy()
            a[np.abs(a) <= np.quantile(np.abs(a), ratio)] = 0
            m.graph.initializer[i].CopyFrom(numpy_helper.from_array(a, t.name))
    return m


def test_unstructured_zeros_stay_zero_on_a_static_batch_residual_cnn(run_cli, tmp_path):
    """A batch-1 model (trained in batches), residual Add, GAP, Gemm and MatMul weights half zero."""
    teacher = cnn()
    student = _zero_smallest(teacher, {"w1", "w2", "wg", "wm"}, 0.5)
    onnx.save(teacher, tmp_path / "t.onnx")
    onnx.save(student, tmp_path / "s.onnx")
    data = write_npy_dir(tmp_path / "data", samples(96))
    out = tmp_path / "r.onnx"
    r = run_cli("distill", "--teacher", tmp_path / "t.onnx", "--student", tmp_path / "s.onnx", "--data", data,
                "-o", out, "--epochs", "30", "--batch-size", "16", "--lr", "3e-3", "--loss", "mse", "--report",
                "--json")
    assert r.code == 0, r
    res = json.loads(r.out)
    got = {t.name: numpy_helper.to_array(t) for t in onnx.load(out).graph.initializer}
    for t in student.graph.initializer:
        before = numpy_helper.to_array(t)
        if t.name in ("w1", "w2", "wg", "wm"):
            assert np.array_equal(got[t.name] == 0, before == 0), t.name  # the same zeros, and only them
        assert not np.array_equal(got[t.name], before), f"{t.name} was not trained"
    assert res["masked_weights"] == 4 and res["zeros"] == sum(int((numpy_helper.to_array(t) == 0).sum())
                                                             for t in student.graph.initializer)
    y = res["report"]["outputs"]["y"]
    assert y["after"]["snr_db"] > y["before"]["snr_db"] + 3, y


def _edge_model(nodes, inits, x_shape, y_shape, opset=17):
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, x_shape)],
                          [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, y_shape)],
                          [numpy_helper.from_array(np.asarray(a, np.float32), n) for n, a in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _save_pair(tmp_path, teacher, student=None):
    onnx.save(teacher, tmp_path / "t.onnx")
    onnx.save(student if student is not None else teacher, tmp_path / "s.onnx")
    return write_npy_dir(tmp_path / "data", samples(4))


def _distill(run_cli, tmp_path, data, *extra):
    return run_cli("distill", "--teacher", tmp_path / "t.onnx", "--student", tmp_path / "s.onnx", "--data", data,
                   "-o", tmp_path / "r.onnx", "--epochs", "1", *extra)


def _one_line_exit_2(r, *words):
    assert r.code == 2, r
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err, r.err
    for w in words:
        assert w in r.err, r.err


@pytest.mark.parametrize("case", ["output-name", "input-shape"])
def test_student_with_other_inputs_or_outputs_is_one_line_exit_2(run_cli, tmp_path, case):
    s = cnn()
    if case == "output-name":
        s.graph.output[0].name = "z"
        s.graph.node[-1].output[0] = "z"
        words = ("outputs", "['z']", "['y']")
    else:  # the convs and the global pool take 32x32 as well: a valid model with another input
        s.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 32
        words = ("input 'x'", "float32[1, 3, 32, 16] in the student", "float32[1, 3, 16, 16] in the teacher")
    data = _save_pair(tmp_path, cnn(), s)
    _one_line_exit_2(_distill(run_cli, tmp_path, data), *words)


def test_integer_kernel_student_is_refused_naming_the_node(run_cli, tmp_path):
    from edgec.quantize import QuantizeOptions, quantize_model

    onnx.save(cnn(), tmp_path / "t.onnx")
    data = write_npy_dir(tmp_path / "data", samples(4))
    quantize_model(tmp_path / "t.onnx", tmp_path / "s.onnx", QuantizeOptions(mode="dynamic"))
    _one_line_exit_2(_distill(run_cli, tmp_path, data), "s.onnx", "DynamicQuantizeLinear", "QDQ")


def test_qdq_student_trains_quantization_aware_and_stays_int8(run_cli, digits):
    """Pruned, then quantized by edgec quantize (int8 QDQ): distillation through fake quantization
    wins the accuracy back; the result is the same QDQ graph with int8 weights on the same scales."""
    from edgec.quantize import QuantizeOptions, quantize_model

    d, xte, yte = digits
    q = d / "student.int8.onnx"
    quantize_model(d / "student.onnx", q, QuantizeOptions(calibration_data=str(d / "train"), samples=256))
    out = d / "student.int8.distilled.onnx"
    base, before = _accuracy(d / "teacher.onnx", xte, yte), _accuracy(q, xte, yte)
    r = run_cli("distill", "--teacher", d / "teacher.onnx", "--student", q, "--data", d / "train", "-o", out, "--json")
    assert r.code == 0, r
    after = _accuracy(out, xte, yte)
    assert base - before >= 0.02 and base - after <= 0.01, (base, before, after)
    s, o = onnx.load(q), onnx.load(out)
    assert [(n.op_type, list(n.input)) for n in o.graph.node] == [(n.op_type, list(n.input)) for n in s.graph.node]
    old = {t.name: numpy_helper.to_array(t) for t in s.graph.initializer}
    new = {t.name: numpy_helper.to_array(t) for t in o.graph.initializer}
    for name, a in old.items():
        b = new[name]
        assert b.dtype == a.dtype and b.shape == a.shape, name
        if name.endswith("_quantized"):
            assert not np.array_equal(a, b), f"{name} was not trained"
            if a.dtype == np.int8:
                assert b.min() >= -127 and b.max() <= 127, name
        else:  # scales and zero points are the student's
            assert np.array_equal(a, b), name


def test_op_without_a_torch_mapping_is_one_line_exit_2(run_cli, tmp_path):
    k = np.array([2], np.int64)
    m = _edge_model([helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
                     helper.make_node("Flatten", ["c"], ["f"], name="flat"),
                     helper.make_node("TopK", ["f", "k"], ["y", "i"], name="topk")],
                    {"w": np.ones((2, 3, 16, 16))}, [1, 3, 16, 16], [1, 2])
    m.graph.initializer.append(numpy_helper.from_array(k, "k"))
    data = _save_pair(tmp_path, m)
    _one_line_exit_2(_distill(run_cli, tmp_path, data), "node 'topk' op 'TopK'")


def test_misuse_is_one_line_exit_2(run_cli, tmp_path):
    data = _save_pair(tmp_path, cnn())
    _one_line_exit_2(_distill(run_cli, tmp_path, data, "--alpha", "0.5"), "--labels")
    _one_line_exit_2(_distill(run_cli, tmp_path, tmp_path / "nope"), "nope")
    np.save(tmp_path / "labels.npy", np.arange(3))
    _one_line_exit_2(_distill(run_cli, tmp_path, data, "--labels", tmp_path / "labels.npy"), "3 labels for 4")
    _one_line_exit_2(_distill(run_cli, tmp_path, data, "--eval-labels", tmp_path / "labels.npy"), "--report")
    np.save(tmp_path / "data" / "bad.npy", np.zeros((1, 3, 8, 8), np.float32))
    _one_line_exit_2(_distill(run_cli, tmp_path, data), "bad.npy", "[1, 3, 8, 8]")
    r = run_cli("distill", "--teacher", tmp_path / "t.onnx", "--student", tmp_path / "s.onnx", "--data", data,
                "-o", tmp_path / "s.onnx")
    _one_line_exit_2(r, "s.onnx")
    assert not (tmp_path / "r.onnx").exists()


def test_missing_torch_says_how_to_install_it(run_cli, tmp_path, monkeypatch):
    data = _save_pair(tmp_path, cnn())
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    _one_line_exit_2(_distill(run_cli, tmp_path, data), "pip install 'edgec[train]'")
    assert not (tmp_path / "r.onnx").exists()


def test_a_student_equal_to_its_teacher_stays_so(run_cli, tmp_path):
    """Nothing to win back: the text report shows the student agreeing with the teacher before and after."""
    data = write_npy_dir(tmp_path / "data", samples(32))
    onnx.save(cnn(), tmp_path / "t.onnx")
    r = run_cli("distill", "--teacher", tmp_path / "t.onnx", "--student", tmp_path / "t.onnx", "--data", data,
                "-o", tmp_path / "r.onnx", "--epochs", "3", "--report")
    assert r.code == 0, r
    assert "before: cosine 1.0000, top-1 agreement 1.0000; after: cosine 1.0000, top-1 agreement 1.0000" in r.out, r.out
    x = samples(1, seed=9)[0]
    y0, y1 = (run_ort_batched(str(tmp_path / f), {"x": x}, True)["y"] for f in ("t.onnx", "r.onnx"))
    assert np.abs(y1 - y0).max() <= 0.02 * np.abs(y0).max(), (y0, y1)


def test_static_batch_reshape_to_one_row_trains_in_batches(run_cli, tmp_path):
    """A batch-1 model flattening with Reshape [1, -1]: its leading 1 becomes the training batch
    (the batched conversion check against onnxruntime would stop a wrong reading)."""
    r = np.random.default_rng(0)
    init = {"w": r.normal(0, 0.3, (4, 3, 3, 3)), "shape": np.array([1, -1], np.int64), "wg": r.normal(0, 0.2, (4 * 256, 5))}
    m = helper.make_model(helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["a"]),
         helper.make_node("Reshape", ["a", "shape"], ["f"]), helper.make_node("MatMul", ["f", "wg"], ["y"])], "m",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 5])],
        [numpy_helper.from_array(a if a.dtype == np.int64 else a.astype(np.float32), n) for n, a in init.items()]),
        opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    student = _zero_smallest(m, {"w", "wg"}, 0.6)
    data = _save_pair(tmp_path, m, student)
    r = run_cli("distill", "--teacher", tmp_path / "t.onnx", "--student", tmp_path / "s.onnx", "--data", data,
                "-o", tmp_path / "r.onnx", "--epochs", "20", "--batch-size", "4", "--lr", "3e-3", "--report", "--json")
    assert r.code == 0, r
    y = json.loads(r.out)["report"]["outputs"]["y"]
    assert y["after"]["snr_db"] > y["before"]["snr_db"], y


def test_batch_1_model_that_cannot_batch_asks_for_batch_size_1(run_cli, tmp_path):
    """A Reshape to [3, 256] fixes the batch at 1: one line naming --batch-size 1, which then trains."""
    r = np.random.default_rng(0)
    init = {"s1": np.array([3, 256], np.int64), "w": r.normal(0, 0.2, (256, 5)), "s2": np.array([1, 15], np.int64)}
    m = helper.make_model(helper.make_graph(
        [helper.make_node("Reshape", ["x", "s1"], ["a"]), helper.make_node("MatMul", ["a", "w"], ["b"]),
         helper.make_node("Reshape", ["b", "s2"], ["y"])], "m",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 15])],
        [numpy_helper.from_array(a if a.dtype == np.int64 else a.astype(np.float32), n) for n, a in init.items()]),
        opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    data = _save_pair(tmp_path, m, _zero_smallest(m, {"w"}, 0.5))
    _one_line_exit_2(_distill(run_cli, tmp_path, data), "s.onnx", "--batch-size 1")
    r = _distill(run_cli, tmp_path, data, "--batch-size", "1", "--loss", "mse", "--epochs", "3", "--report", "--json")
    assert r.code == 0, r
    y = json.loads(r.out)["report"]["outputs"]["y"]
    assert y["after"]["snr_db"] > y["before"]["snr_db"], y
