"""onnxruntime as the numerical reference: seeded inputs, sessions, comparisons."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx

from edgec.ir.analysis import TensorInfo


def seeded_inputs(infos: list[TensorInfo], seed: int = 0, default_dim: int = 1) -> dict[str, np.ndarray]:
    """Deterministic inputs: floats ~ U(-1, 1), ints in [0, 4), bools random."""
    rng = np.random.default_rng(seed)
    out = {}
    for info in infos:
        shape = tuple(d if isinstance(d, int) else default_dim for d in info.shape)
        dt = np.dtype(info.dtype) if info.dtype != "unknown" else np.dtype("float32")
        if dt.kind == "f":
            a = rng.uniform(-1, 1, size=shape).astype(dt)
        elif dt.kind in "iu":
            a = rng.integers(0, 4, size=shape).astype(dt)
        elif dt.kind == "b":
            a = rng.integers(0, 2, size=shape).astype(bool)
        else:
            raise ValueError(f"cannot generate inputs of dtype {dt} for '{info.name}'")
        out[info.name] = np.asarray(a, dtype=dt) if dt.kind != "b" else np.asarray(a)
    return out


def ort_session(model: onnx.ModelProto | bytes | str, threads: int = 1):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def run_ort(model: onnx.ModelProto | bytes | str, inputs: dict[str, np.ndarray], threads: int = 1) -> dict[str, np.ndarray]:
    sess = ort_session(model, threads)
    names = [o.name for o in sess.get_outputs()]
    feed = {i.name: inputs[i.name] for i in sess.get_inputs()}
    return dict(zip(names, sess.run(names, feed)))


@dataclass
class Diff:
    name: str
    max_abs: float
    max_rel: float
    shape_ok: bool

    def ok(self, atol: float) -> bool:
        return self.shape_ok and self.max_abs <= atol


def compare(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> list[Diff]:
    diffs = []
    for name, e in expected.items():
        a = actual.get(name)
        if a is None or np.shape(a) != np.shape(e):
            diffs.append(Diff(name, float("inf"), float("inf"), False))
            continue
        a64, e64 = np.asarray(a, dtype=np.float64), np.asarray(e, dtype=np.float64)
        if a64.size == 0:
            diffs.append(Diff(name, 0.0, 0.0, True))
            continue
        err = np.abs(a64 - e64)
        same_nan = np.isnan(a64) & np.isnan(e64)
        err[same_nan] = 0.0
        rel = err / np.maximum(np.abs(e64), 1e-6)
        diffs.append(Diff(name, float(np.max(err)), float(np.max(rel)), True))
    return diffs


def run_ort_ir(model, inputs: dict[str, np.ndarray], threads: int = 1) -> dict[str, np.ndarray]:
    """Run an edgec IR model in onnxruntime. Models whose weights are external data are saved
    (weights included) to a temporary directory and run by path; others go through memory."""
    import tempfile

    import onnx_ir as ir

    if not any(isinstance(v.const_value, ir.ExternalTensor) for v in model.graph.initializers.values()):
        return run_ort(ir.serde.serialize_model(model), inputs, threads)
    with tempfile.TemporaryDirectory(prefix="edgec-ort-") as tmp:
        path = f"{tmp}/model.onnx"
        ir.save(model, path, external_data="weights.bin")
        return run_ort(path, inputs, threads)
