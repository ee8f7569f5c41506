"""Quantization error against the float model: per quantized tensor and per output, streamed.

For every tensor the pass quantized (its DequantizeLinear output carries `edgec.quantized_from`),
and every graph output, over the same inputs: cosine similarity and SNR (dB) of the quantized
model's value against the float model's, max abs error, and for outputs whose last dim is > 1 the
top-1 agreement (share of rows whose argmax is the same)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import onnx

from edgec.passes.quantization._qdq import QUANTIZED_FROM


class ErrorStats:
    def __init__(self) -> None:
        self.dot = self.aa = self.bb = self.ee = 0.0
        self.max_abs = 0.0
        self.rows = self.agree = 0
        self.bad = False

    def update(self, ref: np.ndarray, got: np.ndarray) -> None:
        if ref.shape != got.shape:
            self.bad = True
            return
        a, b = ref.astype(np.float64).ravel(), got.astype(np.float64).ravel()
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
            # a NaN or Inf where the other model has a different value is a mismatch
            fa, fb = np.isfinite(a), np.isfinite(b)
            self.bad = self.bad or not (np.array_equal(fa, fb) and np.array_equal(a[~fa], b[~fb], equal_nan=True))
            a, b = a[fa & fb], b[fa & fb]
        self.dot += float(a @ b)
        self.aa += float(a @ a)
        self.bb += float(b @ b)
        d = a - b
        self.ee += float(d @ d)
        self.max_abs = max(self.max_abs, float(np.abs(d).max()) if d.size else 0.0)
        if ref.ndim >= 1 and ref.shape[-1] > 1:
            ra, rb = ref.reshape(-1, ref.shape[-1]), got.reshape(-1, got.shape[-1])
            self.rows += ra.shape[0]
            self.agree += int(np.sum(ra.argmax(-1) == rb.argmax(-1)))

    def to_json(self) -> dict:
        cos = self.dot / math.sqrt(self.aa * self.bb) if self.aa > 0 and self.bb > 0 else (1.0 if self.ee == 0 else 0.0)
        snr = math.inf if self.ee == 0 else 10 * math.log10(self.aa / self.ee) if self.aa > 0 else -math.inf
        out = {"cosine": cos, "snr_db": snr, "max_abs": self.max_abs, "mismatch": self.bad}
        if self.rows:
            out["top1_agreement"] = self.agree / self.rows
        return out


def quantized_tensors(qmodel: onnx.ModelProto) -> dict[str, str]:
    """{DequantizeLinear output name: the float tensor it stands for} (top-level graph)."""
    out = {}
    for vi in [*qmodel.graph.value_info]:
        for p in vi.metadata_props:
            if p.key == QUANTIZED_FROM:
                out[vi.name] = p.value
    return out


def compare_models(float_model: onnx.ModelProto, qmodel: onnx.ModelProto, pairs: dict[str, str],
                   feeds: Iterable[dict[str, np.ndarray]]) -> tuple[dict[str, dict], dict[str, dict], int]:
    """({float tensor: stats}, {output: stats}, samples) of qmodel against float_model."""
    from edgec.reference import ort_session

    outputs = [o.name for o in float_model.graph.output]
    fm, qm = onnx.ModelProto(), onnx.ModelProto()
    fm.CopyFrom(float_model)
    qm.CopyFrom(qmodel)
    have_f = set(outputs)
    for dq, src in pairs.items():
        if src not in have_f:
            fm.graph.output.append(onnx.ValueInfoProto(name=src))
            have_f.add(src)
        qm.graph.output.append(onnx.ValueInfoProto(name=dq))
    fs, qs = ort_session(fm.SerializeToString()), ort_session(qm.SerializeToString())
    f_names = outputs + [src for src in pairs.values()]
    q_names = outputs + list(pairs)
    per_tensor = {src: ErrorStats() for src in pairs.values()}
    per_output = {o: ErrorStats() for o in outputs}
    n = 0
    for feed in feeds:
        fo = dict(zip(f_names, fs.run(f_names, {i.name: feed[i.name] for i in fs.get_inputs()})))
        qo = dict(zip(q_names, qs.run(q_names, {i.name: feed[i.name] for i in qs.get_inputs()})))
        for o in outputs:
            per_output[o].update(fo[o], qo[o])
        for dq, src in pairs.items():
            per_tensor[src].update(fo[src], qo[dq])
        n += 1
    return ({k: v.to_json() for k, v in per_tensor.items()}, {k: v.to_json() for k, v in per_output.items()}, n)
