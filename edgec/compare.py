"""Output comparison that cannot call a wrong result a match.

Every numerical check in edgec (`run --compare-onnx`, `--verify`, the benchmarks, the fuzzer, the
test helpers) goes through `compare_outputs`. A difference is a mismatch when:

- an output of the reference is missing from the actual outputs, or the actual has an extra one;
- shapes or dtypes differ;
- a position is NaN or +-Inf on one side and not the same non-finite value on the other
  (NaN matches NaN, +Inf matches +Inf; NaN vs a finite value is a mismatch, never "error 0");
- the largest absolute error over the finite positions exceeds `atol + rtol * max|reference|`.

`max_abs` is the real worst error: NaN when a NaN stands where the reference is finite, Inf when an
Inf does, never clamped to the finite part.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Tolerance:
    """Accepted error of one output: `atol + rtol * max|reference|` (over its finite values)."""

    atol: float = 1e-4
    rtol: float = 0.0

    def bound(self, expected: np.ndarray) -> float:
        e = np.asarray(expected)
        if self.rtol == 0 or e.size == 0 or e.dtype.kind not in "fiucb":
            return self.atol
        finite = np.abs(e[np.isfinite(e)].astype(np.float64)) if e.dtype.kind == "f" else np.abs(e.astype(np.float64))
        return self.atol + self.rtol * (float(finite.max()) if finite.size else 0.0)

    def text(self) -> str:
        return f"atol {self.atol:g}" + (f" + rtol {self.rtol:g} x max|ref|" if self.rtol else "")


@dataclass
class OutputDiff:
    """The comparison of one output. `problems` lists every reason it mismatches other than the
    error bound (missing, extra, shape, dtype, non-finite values)."""

    name: str
    max_abs: float = 0.0
    max_rel: float = 0.0
    bound: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        # `not (x > bound)` would accept NaN: compare the other way round
        return not self.problems and self.max_abs <= self.bound

    def describe(self) -> str:
        text = f"max abs error {self.max_abs:.3g}, max rel error {self.max_rel:.3g}"
        if self.problems:
            text += " (" + "; ".join(self.problems) + ")"
        return text


def _nonfinite_problems(a: np.ndarray, e: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Problems with NaN/Inf positions, and the mask of positions where both are finite."""
    fa, fe = np.isfinite(a), np.isfinite(e)
    problems = []
    nan_a, nan_e = np.isnan(a), np.isnan(e)
    checks = (
        (nan_a & fe, "NaN where the reference is finite"),
        (np.isinf(a) & fe, "Inf where the reference is finite"),
        (fa & ~fe, "finite where the reference is NaN/Inf"),
        (nan_a & np.isinf(e), "NaN where the reference is Inf"),
        (np.isinf(a) & nan_e, "Inf where the reference is NaN"),
        (np.isinf(a) & np.isinf(e) & (np.sign(a) != np.sign(e)), "Inf of the opposite sign"),
    )
    for mask, what in checks:
        n = int(np.count_nonzero(mask))
        if n:
            problems.append(f"{n} of {a.size} values: {what}")
    return problems, fa & fe


def compare_array(name: str, actual, expected, tol: Tolerance = Tolerance()) -> OutputDiff:
    a, e = np.asarray(actual), np.asarray(expected)
    d = OutputDiff(name, bound=tol.bound(e))
    if a.shape != e.shape:
        d.problems.append(f"shape {list(a.shape)}, reference {list(e.shape)}")
        d.max_abs = d.max_rel = float("inf")
        return d
    if a.dtype != e.dtype:
        d.problems.append(f"dtype {a.dtype}, reference {e.dtype}")
    if a.size == 0:
        return d
    if a.dtype.kind not in "fiucbc" or e.dtype.kind not in "fiucbc":
        if not np.array_equal(a, e):
            d.problems.append("values differ")
            d.max_abs = d.max_rel = float("inf")
        return d
    if a.dtype.kind == "c" or e.dtype.kind == "c":  # real and imaginary parts, each compared
        a, e = np.asarray(a, np.complex128), np.asarray(e, np.complex128)
        a, e = np.stack([a.real, a.imag], -1), np.stack([e.real, e.imag], -1)
    a64, e64 = a.astype(np.float64), e.astype(np.float64)
    problems, both = _nonfinite_problems(a64, e64)
    d.problems += problems
    err = np.abs(a64[both] - e64[both])
    if err.size:
        d.max_abs = float(err.max())
        d.max_rel = float((err / np.maximum(np.abs(e64[both]), 1e-6)).max())
    if problems:  # the worst error is the non-finite one: report it, not the finite part's
        bad = float("nan") if any("NaN" in p for p in problems) else float("inf")
        d.max_abs = d.max_rel = bad
    return d


def compare_outputs(actual: dict, expected: dict, tol: Tolerance | dict[str, Tolerance] = Tolerance()) -> list[OutputDiff]:
    """One OutputDiff per reference output (in its order), then one per extra actual output.
    `tol` is one Tolerance for all outputs or one per output name (a name it lacks: the default)."""
    diffs = []
    per_output = tol if isinstance(tol, dict) else None
    for name, e in expected.items():
        if per_output is not None:
            tol = per_output.get(name, Tolerance())
        if name not in actual:
            diffs.append(OutputDiff(name, float("nan"), float("nan"), tol.atol, ["missing from the outputs"]))
            continue
        diffs.append(compare_array(name, actual[name], e, tol))
    for name in actual:
        if name not in expected:
            atol = tol.atol if isinstance(tol, Tolerance) else 0.0
            diffs.append(OutputDiff(name, float("nan"), float("nan"), atol, ["extra output the reference does not have"]))
    return diffs


def worst_error(diffs: list[OutputDiff]) -> float:
    """The largest max_abs, NaN if any is NaN (max() would drop it)."""
    vals = [d.max_abs for d in diffs]
    if any(np.isnan(v) for v in vals):
        return float("nan")
    return max(vals, default=0.0)


def all_match(diffs: list[OutputDiff]) -> bool:
    return bool(diffs) and all(d.ok for d in diffs)


def summary(diffs: list[OutputDiff]) -> str:
    """One line: the mismatching outputs with their problems, or the worst error when all match."""
    bad = [d for d in diffs if not d.ok]
    if not diffs:
        return "no outputs to compare"
    if not bad:
        return f"all {len(diffs)} output(s) match (max abs error {worst_error(diffs):.3g})"
    return "; ".join(f"'{d.name}': {d.describe()} > bound {d.bound:.3g}" if not d.problems
                     else f"'{d.name}': {'; '.join(d.problems)}" for d in bad)


def assert_outputs_match(actual: dict, expected: dict, atol: float, rtol: float = 0.0) -> list[OutputDiff]:
    """For tests and scripts: raise AssertionError naming every mismatch. On top of
    `compare_outputs` the error is also bounded element by element, as numpy's assert_allclose
    does (|a - e| <= atol + rtol * |e|), which is at least as strict."""
    diffs = compare_outputs(actual, expected, Tolerance(atol, rtol))
    if not all_match(diffs):
        raise AssertionError(summary(diffs))
    for name, e in expected.items():
        a = np.asarray(actual[name])
        if a.dtype.kind in "fc":
            np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=f"output {name}")
    return diffs
