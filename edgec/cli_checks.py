"""What `edgec compile --verify` and `edgec run --compare-onnx` print."""

from __future__ import annotations

import click


def verify_summary(p: dict) -> str:
    checked, skipped = p.get("verified_passes", []), p.get("verify_skipped", [])
    text = (f"verified against onnxruntime: {len(checked)} modifying pass run(s) checked, "
            f"{len(skipped)} could not be run by onnxruntime")
    if skipped:
        text += f" (allowed by --verify-allow-unrunnable: {'; '.join(skipped)[:300]})"
    art = p.get("artifact_verified", "not run")
    return text + ("; the compiled artifact matches" if art == "checked" else f"; the compiled artifact was {art}")


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
