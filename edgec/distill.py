"""`edgec distill`: knowledge distillation, to win back the accuracy a pruned (or otherwise
compressed) student lost, on inputs the user already has (no labels needed).

1. The teacher runs in onnxruntime on every training sample (read with the calibration-data
   reader, passes/quantization/_data.py): its outputs are the soft targets.
2. The student becomes a torch module (edgec/distill_torch.py), checked against onnxruntime on
   the first samples before any training (a mismatch is edgec's bug, exit 1).
3. Its float32 weights are fine-tuned with Adam on the loss
   (1 - alpha) * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + alpha * CE(student, labels)
   (the KL term over the last axis of every output; `loss="mse"` for outputs that are not logits;
   the label term only with labels, on the first output). A weight that is exactly zero in the
   student (unstructured or 2:4 pruning) has its gradient masked and is zeroed again after every
   step, so the pruned structure is kept. The weights kept are those of the epoch with the lowest
   loss over all samples (the student as given counts as epoch 0).
4. The trained values are written back into the student's own initializers: the result is the
   student's graph (names, shapes, opset, node order) with new weights, checked to load in
   onnxruntime."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import numpy as np

from edgec.errors import EdgecError, InternalError

# integer-kernel ops: no float path to train through (a QDQ student trains quantization-aware)
QUANTIZED_OPS = {"DynamicQuantizeLinear", "MatMulNBits", "MatMulInteger", "ConvInteger", "QLinearConv", "QLinearMatMul"}
CHECK_SAMPLES = 8  # samples the converted student is checked on against onnxruntime
# Below this many trainable parameters the student trains on one thread by default: its ops are too
# small to split, and torch's worker threads spin against each other on a busy machine (digits
# CNN, 11k parameters, load 5 on 2 cores: 2.2-2.5 s on one thread, 14-29 s on two; same weights).
SMALL_STUDENT = 1_000_000


@dataclass
class DistillOptions:
    epochs: int = 10
    temperature: float = 4.0
    alpha: float | None = None   # weight of the hard-label loss (needs labels; default 0.5 with them)
    labels: str | None = None    # integer labels of the training samples, in read order (.npy or text)
    lr: float = 1e-3
    batch_size: int = 64
    seed: int = 0
    samples: int = 100_000       # training samples read from the data directory at most
    preprocess: str = ""         # image folders (as `edgec quantize --preprocess`)
    loss: str = "kl"             # kl: outputs are logits; mse: match the teacher's outputs directly
    eval_data: str | None = None  # the report's inputs (default: the training data)
    eval_labels: str | None = None
    eval_samples: int = 100_000
    threads: int = 0             # torch's intra-op threads (0: auto, see SMALL_STUDENT)


def import_torch():
    try:
        import torch
    except ImportError:
        raise EdgecError("edgec distill trains with torch, which is not installed: pip install 'edgec[train]'") from None
    return torch


def check_student(model, file: str) -> None:
    """A student computing with integer kernels (not QDQ) has no float path to train: refused clearly."""
    for n in model.graph:
        if n.op_type in QUANTIZED_OPS:
            raise EdgecError(f"{file}: node '{n.name}' op '{n.op_type}': an integer-kernel student cannot be "
                             "fine-tuned; distill the float (or QDQ) student, then quantize the result")


def check_interfaces(teacher, student, tfile: str, sfile: str) -> None:
    """Teacher and student take the same inputs and give the same outputs (names, dtypes, static dims)."""
    from edgec.ir.analysis import graph_inputs, graph_outputs

    for what, t, s in (("inputs", graph_inputs(teacher), graph_inputs(student)),
                       ("outputs", graph_outputs(teacher), graph_outputs(student))):
        tm = {i.name: i for i in t}
        sm = {i.name: i for i in s}
        if set(tm) != set(sm):
            raise EdgecError(f"{sfile}: the student's {what} {sorted(sm)} differ from the teacher's "
                             f"{sorted(tm)} ({tfile})")
        for name, a in tm.items():
            b = sm[name]
            same_dims = len(a.shape) == len(b.shape) and all(
                not (isinstance(x, int) and isinstance(y, int)) or x == y for x, y in zip(a.shape, b.shape))
            if a.dtype != b.dtype or not same_dims:
                raise EdgecError(f"{sfile}: {what[:-1]} '{name}' is {b.dtype}{list(b.shape)} in the student, "
                                 f"{a.dtype}{list(a.shape)} in the teacher ({tfile})")


def static_batch1(inputs) -> bool:
    return all(len(i.shape) and i.shape[0] == 1 for i in inputs)


def read_samples(inputs, source: str, limit: int, seed: int, preprocess: str) -> dict[str, np.ndarray]:
    """{input: all samples stacked along the batch dim} from a calibration-data directory."""
    from edgec.passes.quantization import _data

    feeds = list(_data.samples(inputs, source, limit, seed, preprocess))
    if not feeds:
        raise EdgecError(f"{source}: no samples")
    out = {}
    for i in inputs:
        shapes = {f[i.name].shape[1:] for f in feeds}
        if len(shapes) > 1:
            raise EdgecError(f"{source}: samples of '{i.name}' have different shapes {sorted(shapes)[:3]}; "
                             "distill trains on batches: give samples of one shape")
        out[i.name] = np.concatenate([f[i.name] for f in feeds])
    return out


def run_ort_batched(model, x: dict[str, np.ndarray], batch1: bool, chunk: int = 256) -> dict[str, np.ndarray]:
    """The model's outputs on all samples, run one sample at a time for a static batch of 1."""
    from edgec.reference import ort_session

    sess = ort_session(model)
    names = [o.name for o in sess.get_outputs()]
    n = len(next(iter(x.values())))
    step = 1 if batch1 else chunk
    parts = [sess.run(names, {k: v[i:i + step] for k, v in x.items()}) for i in range(0, n, step)]
    return {name: np.concatenate([p[j] for p in parts]) for j, name in enumerate(names)}


def _check_conversion(module, x, student_path: str, batch1: bool, batch_size: int) -> None:
    """The torch student computes what onnxruntime computes on the first samples, in training-size
    batches. A model of static batch 1 is first checked one sample at a time (a mismatch there is
    edgec's bug); if it then fails in batches, the graph fixes its batch at 1 somewhere edgec cannot
    widen (a Reshape to [3, 256], say): the user's choice is --batch-size 1."""
    import torch

    from edgec.compare import Tolerance, all_match, compare_outputs, summary

    first = {k: v[:CHECK_SAMPLES] for k, v in x.items()}
    ref = run_ort_batched(student_path, first, batch1)
    n = len(next(iter(first.values())))

    def diffs(step: int):
        with torch.no_grad():
            parts = [module({k: torch.from_numpy(v[i:i + step]) for k, v in first.items()}) for i in range(0, n, step)]
        got = {k: np.concatenate([p[k].numpy() for p in parts]) for k in parts[0]}
        return compare_outputs(got, ref, Tolerance(atol=1e-4, rtol=1e-4))

    def bug(d):
        return InternalError(f"distill: the student as a torch module disagrees with onnxruntime on {student_path}: "
                             f"{summary(d)}")

    step = min(batch_size, CHECK_SAMPLES)
    if batch1:
        single = diffs(1)
        if not all_match(single):
            raise bug(single)
        if step == 1:
            return
        try:
            batched = diffs(step)
        except RuntimeError as e:  # torch: a shape the batch cannot fit
            batched, why = None, " ".join(str(e).split())[:160]
        if batched is None or not all_match(batched):
            why = summary(batched) if batched is not None else why
            raise EdgecError(f"{student_path}: this batch-1 model does not compute in batches of {step} ({why}): "
                             "train it with --batch-size 1 (slower), or export it with a symbolic batch")
        return
    d = diffs(step)
    if not all_match(d):
        raise bug(d)


def _loss_fn(o: DistillOptions, first_output: str, alpha: float):
    import torch
    import torch.nn.functional as F

    T = o.temperature

    def loss(out: dict, target: dict, labels) -> torch.Tensor:
        total = 0.0
        for name, t in target.items():
            s = out[name]
            if o.loss == "mse" or s.dim() == 0 or s.shape[-1] < 2:
                total = total + F.mse_loss(s, t)
                continue
            s2, t2 = s.reshape(-1, s.shape[-1]), t.reshape(-1, t.shape[-1])
            total = total + T * T * F.kl_div(F.log_softmax(s2 / T, -1), F.log_softmax(t2 / T, -1),
                                             log_target=True, reduction="batchmean")
        if labels is None:
            return total
        s = out[first_output]
        return (1 - alpha) * total + alpha * F.cross_entropy(s.reshape(-1, s.shape[-1]), labels)
    return loss


def distill_model(teacher: str, student: str, data: str, out: str, o: DistillOptions, report: bool = False) -> dict:
    """Fine-tune `student` towards `teacher` on the samples in `data`; write the result to `out`."""
    torch = import_torch()
    from edgec.distill_torch import OnnxModule
    from edgec.ir.analysis import graph_inputs
    from edgec.ir.loader import load_model
    from edgec.quantize_budget import load_labels

    if o.loss not in ("kl", "mse"):
        raise EdgecError(f"--loss is kl or mse, not '{o.loss}'")
    if o.alpha is not None and not o.labels:
        raise EdgecError("--alpha weighs the loss on --labels: give --labels (or leave --alpha out)")
    if o.alpha is not None and not 0 <= o.alpha <= 1:
        raise EdgecError(f"--alpha must lie in [0, 1], got {o.alpha}")
    if not (o.temperature > 0 and math.isfinite(o.temperature)):
        raise EdgecError(f"--temperature must be positive, got {o.temperature}")
    t_model, s_model = load_model(teacher), load_model(student)
    check_student(s_model, student)
    check_interfaces(t_model, s_model, teacher, student)
    inputs = graph_inputs(s_model)
    batch1 = static_batch1(inputs)
    x = read_samples(inputs, data, o.samples, o.seed, o.preprocess)
    n = len(next(iter(x.values())))
    labels = load_labels(o.labels, n) if o.labels else None
    alpha = (0.5 if o.alpha is None else o.alpha) if labels is not None else 0.0
    start = time.perf_counter()
    target = {k: v for k, v in run_ort_batched(teacher, x, batch1).items() if v.dtype.kind == "f"}
    if not target:
        raise EdgecError(f"{teacher}: no float outputs to distill")
    torch.manual_seed(o.seed)
    threads = torch.get_num_threads()
    module = OnnxModule(s_model, student, batch1)
    size = sum(p.numel() for p in module.parameters())
    torch.set_num_threads(o.threads or (1 if size < SMALL_STUDENT else threads))
    try:
        result = _distill(torch, module, s_model, x, target, labels, alpha, o, out, student, batch1)
    finally:
        torch.set_num_threads(threads)
    result.update(teacher=teacher, train_seconds=time.perf_counter() - start)
    if report:
        from edgec.distill_report import distill_report

        result["report"] = distill_report(teacher, student, str(out), inputs, batch1, x, o)
    return result


def _distill(torch, module, s_model, x, target, labels, alpha, o: DistillOptions, out, student, batch1) -> dict:
    import onnx_ir as ir

    if not module.trainable:
        raise EdgecError(f"{student}: no float32 weights (Conv/Gemm/MatMul/norm initializers) to fine-tune")
    _check_conversion(module, x, student, batch1, o.batch_size)
    history, best_epoch = _train(torch, module, x, target, labels, o, alpha)
    for name in module.trainable:
        v = s_model.graph.initializers[name]
        v.const_value = ir.tensor(module.value(name), name=name)
    _save(s_model, out)
    kept = all(bool((module.param(name)[m == 0] == 0).all()) for name, m in module.masks.items())
    if not kept:
        raise InternalError("distill: a masked (pruned) weight is no longer zero")
    return {"student": student, "output": str(out), "samples": len(next(iter(x.values()))),
            "epochs": o.epochs, "temperature": o.temperature, "alpha": alpha, "loss": o.loss,
            "weights_trained": len(module.trainable),
            "parameters_trained": int(sum(module.param(k).numel() for k in module.trainable)),
            "masked_weights": len(module.masks), "zeros": int(sum(int((m == 0).sum()) for m in module.masks.values())),
            "loss_per_epoch": history, "best_epoch": best_epoch}


def _train(torch, module, x, target, labels, o: DistillOptions, alpha: float) -> tuple[list[float], int]:
    """Adam on mini-batches, shuffled with the seed. Returns the loss over all samples before
    training and after each epoch, and the epoch whose weights are kept: the one with the lowest
    loss (0: the student as given; Adam's normalized steps move weights even where the gradient is
    only rounding noise, so a student that already matches its teacher is not made worse)."""
    xs = {k: torch.from_numpy(v) for k, v in x.items()}
    ts = {k: torch.from_numpy(v) for k, v in target.items()}
    ys = torch.from_numpy(labels) if labels is not None else None
    n = len(next(iter(xs.values())))
    gen = torch.Generator().manual_seed(o.seed)
    opt = torch.optim.Adam(module.parameters(), lr=o.lr)
    loss_fn = _loss_fn(o, next(iter(ts)), alpha)
    masks = [(module.param(name), m) for name, m in module.masks.items()]

    def batch_loss(idx):
        return loss_fn(module({k: v[idx] for k, v in xs.items()}), {k: v[idx] for k, v in ts.items()},
                       None if ys is None else ys[idx])

    chunk = 256 if o.batch_size > 1 else 1  # --batch-size 1: a model that cannot run batched

    def full_loss() -> float:
        with torch.no_grad():
            return sum(float(batch_loss(torch.arange(i, min(i + chunk, n)))) * (min(i + chunk, n) - i)
                       for i in range(0, n, chunk)) / n

    history = [full_loss()]
    best = (history[0], 0, {k: v.detach().clone() for k, v in module.state_dict().items()})
    for epoch in range(1, o.epochs + 1):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, o.batch_size):
            loss = batch_loss(perm[i:i + o.batch_size])
            if not torch.isfinite(loss):
                raise EdgecError(f"distill: the loss became {float(loss)}; lower --lr (now {o.lr})")
            opt.zero_grad()
            loss.backward()
            for p, m in masks:
                p.grad.mul_(m)
            opt.step()
            module.apply_masks()
        history.append(full_loss())
        if history[-1] < best[0]:
            best = (history[-1], epoch, {k: v.detach().clone() for k, v in module.state_dict().items()})
    module.load_state_dict(best[2])
    return history, best[1]


def _save(model, out: str) -> None:
    from edgec.ir.loader import save_model
    from edgec.reference import ort_session

    save_model(model, out)
    try:
        ort_session(str(out))
    except Exception as e:  # edgec wrote a model onnxruntime refuses: edgec's bug; not left behind
        for p in (out, f"{out}.data"):
            if os.path.exists(p):
                os.unlink(p)
        raise InternalError(f"distill wrote a model onnxruntime cannot load: {' '.join(str(e).split())[:300]}") from None
