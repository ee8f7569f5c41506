"""What `edgec compile` (its lowering summary, --verify) and `edgec run --compare-onnx` print."""

from __future__ import annotations

import click


def verify_summary(p: dict) -> str:
    checked, skipped = p.get("verified_passes", []), p.get("verify_skipped", [])
    text = (f"verified against onnxruntime: {len(checked)} modifying pass run(s) checked, "
            f"{len(skipped)} could not be run by onnxruntime")
    if skipped and p.get("verify_unrunnable_from"):
        text += (f" (from {p['verify_unrunnable_from']} on, which changes numerics by design into types onnxruntime "
                 "has no kernels for; the artifact is compared with the float model, within 2 int8 steps of its "
                 "largest output)")
    elif skipped:
        text += f" (allowed by --verify-allow-unrunnable: {'; '.join(skipped)[:300]})"
    if p.get("verify_rebaselined"):
        within = ("within 2 quantization steps of each output (2 int8 steps of its largest value where it has no "
                  "step)" if p.get("verify_in_steps", True) else "within the float tolerance (float arithmetic)")
        text += (f"; after {', '.join(p['verify_rebaselined'])} (changes numerics by design) against its output "
                 f"in onnxruntime, {within}")
    art = p.get("artifact_verified", "not run")
    return text + ("; the compiled artifact matches" if art == "checked" else f"; the compiled artifact was {art}")


def lowering_summary(lowering: dict) -> str:
    """Where each node went and which kernels run generic code, so no node falls back silently:
    nodes lowered by edgec, nodes handed to TVM's ONNX importer (named by op), kernels scheduled by
    an edgec rule or a tuning record, and kernels no rule scheduled (TVM's generic loops)."""
    own = sum((lowering.get("edgec") or {}).values())
    frontend = lowering.get("tvm-onnx-frontend") or {}
    schedules = lowering.get("schedules") or {}
    generic = schedules.get("none", 0)
    rec = (lowering.get("records") or {}).get("applied", 0)
    kernels = sum(schedules.values()) + rec
    text = f"lowering: {own} node(s) by edgec, {sum(frontend.values())} by TVM's ONNX importer"
    if frontend:
        text += " (" + ", ".join(f"{op} {n}" for op, n in sorted(frontend.items())) + ")"
    text += f"; {kernels} kernel(s), {kernels - generic} with an edgec schedule"
    symbolic = schedules.get("parallel-symbolic", 0)
    if symbolic:
        text += f" ({symbolic} of them only parallel: symbolic extents, not tiled)"
    if generic:
        text += f", {generic} unscheduled (generic code, slow)"
    return text


def compare_with_onnx(model: str, feed: dict, outputs: dict, atol: float, rtol: float, io_layout: dict | None) -> bool:
    """Every output of the reference model against the artifact's: NaN/Inf, missing or extra
    outputs, shape and dtype differences are mismatches, as are errors above the bound. Prints
    one line per output and the verdict; returns whether everything matched."""
    from edgec.compare import Tolerance, compare_outputs, summary, worst_error
    from edgec.reference import run_reference_model

    expected = run_reference_model(model, feed, io_layout)
    diffs = compare_outputs(outputs, expected, Tolerance(atol, rtol))
    for d in diffs:
        click.echo(f"compare {d.name}: {d.describe()}")
    tol = Tolerance(atol, rtol).text()
    if not all(d.ok for d in diffs):
        click.echo(f"MISMATCH: {summary(diffs)} (max abs error {worst_error(diffs):.3g}, {tol})", err=True)
        return False
    click.echo(f"OK: matches onnxruntime on all {len(diffs)} output(s) (max abs error {worst_error(diffs):.3g} <= {tol})")
    return True
