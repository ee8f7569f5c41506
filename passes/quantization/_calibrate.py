"""Run the float model in onnxruntime over calibration samples and stream the named tensors into
`TensorStats` (activation ranges) or Gram matrices (GPTQ); one run per sample, the tensors are
extra graph outputs of a copy of the model."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable

import numpy as np
import onnx
import onnx_ir as ir

from edgec.passes.quantization._histogram import TensorStats


def _values(model: ir.Model) -> dict[str, ir.Value]:
    g = model.graph
    out = {v.name: v for v in g.inputs}
    for n in g:
        out.update((o.name, o) for o in n.outputs if o.name)
    return out


def observed_model(model: ir.Model, names: list[str]) -> onnx.ModelProto:
    """A copy of `model` (ONNX) whose outputs also include `names` (typed from the IR)."""
    proto = ir.serde.serialize_model(model)
    have = {o.name for o in proto.graph.output}
    values = _values(model)
    for n in names:
        if n in have:
            continue
        v = values[n]
        elem = int(v.dtype) if v.dtype is not None else onnx.TensorProto.FLOAT
        proto.graph.output.append(onnx.helper.make_tensor_value_info(n, elem, None))
    return proto


def collect(model: ir.Model, names: list[str], feeds: Iterable[dict[str, np.ndarray]]) -> tuple[dict[str, TensorStats], int]:
    """(stats per name, number of samples run). CalibrationRunError if onnxruntime fails."""
    stats = {n: TensorStats() for n in names}
    n = observe(model, names, feeds, lambda name, a: stats[name].update(a))
    return stats, n


def collect_grams(model: ir.Model, names: list[str], feeds: Iterable[dict[str, np.ndarray]]) -> tuple[dict[str, np.ndarray], int]:
    """({name: X^T X float64 [K, K]} with X the tensor's rows [-1, K] over all samples, number
    of samples run): the second moments GPTQ weighs a matmul's weight error by."""
    grams: dict[str, np.ndarray] = {}

    def add(name: str, a: np.ndarray) -> None:
        x = a.reshape(-1, a.shape[-1]).astype(np.float32)
        g = (x.T @ x).astype(np.float64)
        grams[name] = grams[name] + g if name in grams else g

    return grams, observe(model, names, feeds, add)


def observe(model: ir.Model, names: list[str], feeds: Iterable[dict[str, np.ndarray]], sink) -> int:
    """Run the float model in onnxruntime on each feed, handing every named tensor to
    `sink(name, array)`; the number of samples run. CalibrationRunError if onnxruntime fails."""
    try:
        return _observe(model, names, feeds, sink)
    except Exception as e:
        from edgec.errors import CalibrationRunError, EdgecError

        if isinstance(e, EdgecError):  # the user's data (shape, dtype, file): already a one-line error
            raise
        raise CalibrationRunError(f"onnxruntime cannot run the float model for calibration: "
                                  f"{type(e).__name__}: {' '.join(str(e).split())[:300]}") from e


def _observe(model: ir.Model, names: list[str], feeds: Iterable[dict[str, np.ndarray]], sink) -> int:
    import os

    from edgec.reference import ort_session

    proto = observed_model(model, names)
    threads = min(4, os.cpu_count() or 1)
    n = 0
    with tempfile.TemporaryDirectory(prefix="edgec-calib-") as tmp:
        if proto.ByteSize() > 1 << 30:  # large weights: onnxruntime reads them from a file
            path = f"{tmp}/model.onnx"
            onnx.save(proto, path, save_as_external_data=True, location="weights.bin")
            sess = ort_session(path, threads=threads)
        else:
            sess = ort_session(proto.SerializeToString(), threads=threads)
        wanted = [i.name for i in sess.get_inputs()]
        for feed in feeds:
            outs = sess.run(names, {k: feed[k] for k in wanted})
            for name, a in zip(names, outs):
                sink(name, a)
            n += 1
    return n
