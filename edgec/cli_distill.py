"""`edgec distill`: fine-tune a pruned student to match its teacher (edgec/distill.py)."""

from __future__ import annotations

import json

import click


def print_report(rep: dict) -> None:
    click.echo(f"report: {rep['samples']} samples from {rep['source']}")
    acc = rep.get("accuracy")
    if acc:
        click.echo(f"  accuracy: teacher {acc['teacher']:.4f}, student before {acc['before']:.4f}, "
                   f"after {acc['after']:.4f}")
    for name, s in rep["outputs"].items():
        parts = []
        for when in ("before", "after"):
            st = s[when]
            agree = f", top-1 agreement {st['top1_agreement']:.4f}" if "top1_agreement" in st else ""
            bad = " MISMATCH (shape or NaN pattern differs)" if st["mismatch"] else ""
            parts.append(f"{when}: cosine {st['cosine']:.4f}{agree}{bad}")
        click.echo(f"  output {name} vs the teacher: " + "; ".join(parts))


@click.command("distill")
@click.option("--teacher", required=True, type=click.Path(), help="The original (float) model.")
@click.option("--student", required=True, type=click.Path(),
              help="The compressed model to fine-tune (e.g. `edgec prune`'s output): same inputs and outputs.")
@click.option("--data", required=True, type=click.Path(),
              help="Directory of unlabeled training inputs: .npy/.npz files or images (as --calibration-data).")
@click.option("-o", "--output", "out", required=True, type=click.Path(), help="Fine-tuned student .onnx to write.")
@click.option("--epochs", type=click.IntRange(1), default=10, show_default=True)
@click.option("--temperature", type=float, default=4.0, show_default=True, help="Softens both models' logits.")
@click.option("--alpha", type=click.FloatRange(0, 1), default=None,
              help="With --labels: weight of the hard-label loss (default 0.5); 1 - alpha weighs the teacher's.")
@click.option("--labels", type=click.Path(), default=None,
              help="Integer labels of the --data samples, in read order (.npy or text).")
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=1e-3, show_default=True,
              help="Adam's learning rate.")
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True)
@click.option("--samples", type=click.IntRange(1), default=100_000, show_default=True,
              help="Training samples read from --data at most.")
@click.option("--preprocess", default="", help="For image folders: as `edgec quantize --preprocess`.")
@click.option("--loss", type=click.Choice(["kl", "mse"]), default="kl", show_default=True,
              help="kl: outputs are logits (softmax with --temperature); mse: match the outputs as values.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(0), default=0, show_default=True,
              help="torch's threads for training (0: one for a student under 1M parameters, else one per core).")
@click.option("--report", is_flag=True,
              help="Compare the student before and after with the teacher (cosine, top-1 agreement; "
                   "accuracy with --eval-labels).")
@click.option("--eval-data", type=click.Path(), default=None, help="Inputs for --report (default: --data).")
@click.option("--eval-labels", type=click.Path(), default=None,
              help="With --report: integer labels of the evaluation samples (.npy or text).")
@click.option("--json", "as_json", is_flag=True, help="Print the result (and report) as JSON.")
def distill_cmd(teacher, student, data, out, epochs, temperature, alpha, labels, lr, batch_size, samples, preprocess,
                loss, seed, threads, report, eval_data, eval_labels, as_json):
    """Fine-tune STUDENT's weights to match TEACHER's outputs on unlabeled inputs (knowledge
    distillation); zero weights stay zero. Needs torch (pip install 'edgec[train]')."""
    from edgec.distill import DistillOptions, distill_model, import_torch
    from edgec.output_paths import check_output_file

    if (eval_data or eval_labels) and not report:
        raise click.UsageError("--eval-data / --eval-labels go with --report")
    check_output_file(out, "distilled model", inputs=((teacher, "teacher"), (student, "student")))
    import_torch()
    o = DistillOptions(epochs=epochs, temperature=temperature, alpha=alpha, labels=labels, lr=lr,
                       batch_size=batch_size, seed=seed, samples=samples, preprocess=preprocess, loss=loss, threads=threads,
                       eval_data=eval_data, eval_labels=eval_labels)
    res = distill_model(teacher, student, data, out, o, report=report)
    if as_json:
        click.echo(json.dumps(res, indent=1))
        return
    h = res["loss_per_epoch"]
    click.echo(f"distilled {student} -> {out}: {res['parameters_trained']} parameters in {res['weights_trained']} "
               f"weights, {res['samples']} samples x {res['epochs']} epochs in {res['train_seconds']:.1f} s; "
               f"loss {h[0]:.4g} -> {h[res['best_epoch']]:.4g} (epoch {res['best_epoch']} kept)")
    if res["masked_weights"]:
        click.echo(f"  {res['zeros']} zero weights in {res['masked_weights']} tensors kept at zero")
    if report:
        print_report(res["report"])
