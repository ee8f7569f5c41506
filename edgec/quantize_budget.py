"""`edgec quantize --max-accuracy-drop X`: keep the most sensitive layers in float until the
quantized model's accuracy drop fits the budget.

Accuracy is top-1 of the first output (argmax over its last axis, per sample) on the evaluation
samples: against `--labels` when given (a .npy of ints, or a text file of whitespace-separated
ints, one per sample in the order the samples are read), else agreement with the float model's
own top-1 (the drop is then the share of predictions quantization changed).

1. quantize everything the pass takes; if the drop fits, done;
2. sensitivity: for each quantized node alone (every other node excluded), the SNR of the first
   output against the float model; lowest SNR = most sensitive;
3. greedy fallback: exclude the most sensitive node, then the next, ... re-quantizing each time
   (calibration statistics are computed once and reused) until the drop fits.
The result lists the nodes kept in float, the sensitivity ranking and the accuracies."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgec.errors import EdgecError


def load_labels(path: str, n: int) -> np.ndarray:
    p = Path(path)
    try:
        labels = np.load(p, allow_pickle=False) if p.suffix == ".npy" else np.array(p.read_text().split(), np.int64)
    except Exception as e:
        raise EdgecError(f"{p}: cannot read labels ({type(e).__name__}: {' '.join(str(e).split())[:120]})") from None
    labels = np.asarray(labels).reshape(-1)
    if labels.dtype.kind not in "iu":
        raise EdgecError(f"{p}: labels must be integers, got {labels.dtype}")
    if labels.size < n:
        raise EdgecError(f"{p}: {labels.size} labels for {n} evaluation samples")
    return labels[:n].astype(np.int64)


def fit_budget(float_proto, quantize, names: list[str], feeds: list[dict], budget: float,
               labels: np.ndarray | None, first_exclude: tuple[str, ...] = ()) -> tuple[object, dict]:
    """(quantized proto, info). `quantize(exclude)` returns a quantized ONNX model."""
    from edgec.passes.quantization._report import ErrorStats
    from edgec.reference import ort_session
    from edgec.reference_exact import exact_ort_model

    def session(proto):
        m, _ = exact_ort_model(proto, {})
        return ort_session(m.SerializeToString())

    fsess = session(float_proto)
    out = fsess.get_outputs()[0].name
    f_out = [fsess.run([out], {i.name: f[i.name] for i in fsess.get_inputs()})[0] for f in feeds]
    f_pred = np.array([_argmax(o) for o in f_out])
    truth = labels if labels is not None else f_pred
    base = float(np.mean(f_pred == truth))

    def evaluate(proto) -> tuple[float, float]:
        s = session(proto)
        st = ErrorStats()
        preds = []
        for f, ref in zip(feeds, f_out):
            o = s.run([out], {i.name: f[i.name] for i in s.get_inputs()})[0]
            st.update(ref, o)
            preds.append(_argmax(o))
        return float(np.mean(np.array(preds) == truth)), st.to_json()["snr_db"]

    q = quantize(first_exclude)
    acc, _ = evaluate(q)
    info = {"metric": "top-1 vs labels" if labels is not None else "top-1 agreement with the float model",
            "samples": len(feeds), "float_accuracy": base, "budget": budget, "steps": [{"kept_float": [], "accuracy": acc}]}
    if base - acc <= budget:
        return q, {**info, "quantized_accuracy": acc, "kept_float": [], "sensitivity": []}
    candidates = [n for n in names if n and n not in first_exclude]
    sens = []
    for n in candidates:
        only = tuple(first_exclude) + tuple(m for m in candidates if m != n)
        sens.append((n, evaluate(quantize(only))[1]))
    sens.sort(key=lambda t: t[1])
    kept: list[str] = []
    for n, _ in sens:
        kept.append(n)
        q = quantize(tuple(first_exclude) + tuple(kept))
        acc, _ = evaluate(q)
        info["steps"].append({"kept_float": list(kept), "accuracy": acc})
        if base - acc <= budget:
            break
    return q, {**info, "quantized_accuracy": acc, "kept_float": kept,
               "sensitivity": [{"node": n, "snr_db": s} for n, s in sens]}


def _argmax(o: np.ndarray) -> int:
    """Top-1 of one sample's output: argmax over its elements (a [1, C] or [C] output)."""
    return int(np.argmax(o.reshape(-1)))
