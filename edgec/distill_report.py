"""`edgec distill --report`: the student before and after distillation against the teacher, on
evaluation inputs (`--eval-data`, default the training data): per output, cosine and top-1
agreement with the teacher (passes/quantization/_report.ErrorStats); with `--eval-labels`, the
top-1 accuracy of the first output for the teacher, the student before and the student after."""

from __future__ import annotations

import numpy as np


def distill_report(teacher: str, student: str, out: str, inputs, batch1: bool, train_x: dict, o) -> dict:
    from edgec.distill import read_samples, run_ort_batched
    from edgec.passes.quantization._report import ErrorStats
    from edgec.quantize_budget import load_labels

    x = read_samples(inputs, o.eval_data, o.eval_samples, o.seed, o.preprocess) if o.eval_data else train_x
    n = len(next(iter(x.values())))
    runs = {"teacher": run_ort_batched(teacher, x, batch1), "before": run_ort_batched(student, x, batch1),
            "after": run_ort_batched(out, x, batch1)}
    rep: dict = {"samples": n, "source": o.eval_data or "the training data", "outputs": {}}
    for name, ref in runs["teacher"].items():
        rep["outputs"][name] = {}
        for when in ("before", "after"):
            st = ErrorStats()
            st.update(ref, runs[when][name])
            rep["outputs"][name][when] = st.to_json()
    if o.eval_labels:
        labels = load_labels(o.eval_labels, n)
        first = next(iter(runs["teacher"]))
        rep["accuracy"] = {k: _top1(r[first], labels) for k, r in runs.items()}
    return rep


def _top1(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(logits.reshape(len(labels), -1).argmax(-1) == labels))
