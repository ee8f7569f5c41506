"""Does onnx-simplifier fold what edgec's cleanup does not? Side by side over the examples, the
test models (tests/models), the ResNet-18 / MobileNetV2 / BERT-style benchmark models
(benchmarks/models.py, random weights) and the zoo models in edgec's cache (if fetched):

    python benchmarks/onnxsim_vs_cleanup.py [--no-builtin]   (prints a Markdown table)

Per model: nodes (all graphs, subgraphs included) before, after edgec's CLEANUP_PIPELINE, after
the `onnxsim` pass, after cleanup then onnxsim, after edgec's whole -O2 graph pipeline (cleanup +
fusion: BatchNorm folding, MatMul+Add, attention recognition...; `default_pipeline(None, 2)`) and
after -O2 then onnxsim; the pass times; whether the cleanup and onnxsim results still match
onnxruntime on seeded inputs (edgec.compare, atol 1e-4 / rtol 1e-3); and, from the op histograms,
the ops left more often after cleanup than after onnxsim (what onnxsim folds or fuses that cleanup
does not), the reverse, and what onnxsim still changes after -O2. "static": the same with every
dynamic input dim fixed to 1 first, as `edgec compile --input-shape` does (edgec folds shape
subgraphs only once the shapes are known). The import time of onnxsim
(after onnx, median of 3 fresh processes) heads the table.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ATOL, RTOL = 1e-4, 1e-3


def import_seconds(module: str, after: str = "onnx", rounds: int = 3) -> float:
    """Median wall time of `import module` in a fresh interpreter that already imported `after`."""
    code = f"import time, {after}; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    return statistics.median(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                  check=True).stdout) for _ in range(rounds))


def models(builtin: bool) -> list[Path]:
    """The examples, the test models, the benchmark models (written to a temp dir) and cached zoo models."""
    from edgec.user_cache import cache_dir

    found = sorted((ROOT / "examples").glob("*.onnx")) + sorted((ROOT / "tests" / "models").glob("*.onnx"))
    if builtin:
        from benchmarks import models as bench_models

        tmp = Path(tempfile.mkdtemp(prefix="onnxsim-vs-cleanup-"))
        found += list(bench_models.write_all(tmp).values())
    found += sorted((cache_dir() / "zoo").glob("*.onnx"))
    return found


def histogram(model) -> collections.Counter:
    import onnx_ir as ir

    return collections.Counter(n.op_type for n in ir.traversal.RecursiveGraphIterator(model.graph))


def run_pipeline(path: Path, pipeline: str):
    """(model after `pipeline`, seconds) or (None, one-line error)."""
    from edgec.errors import EdgecError
    from edgec.infra.context import PassContext
    from edgec.infra.manager import PassManager
    from edgec.infra.pipeline import parse_pipeline
    from edgec.ir.loader import load_model

    t0 = time.perf_counter()
    try:
        model = load_model(path)
        t0 = time.perf_counter()
        result = PassManager(parse_pipeline(pipeline)).run(model, PassContext())
    except EdgecError as e:
        return None, e.one_line()
    return result.model, time.perf_counter() - t0


def matches_ort(path: Path, model) -> str:
    """'yes', or why not: the model after the passes against the original, both in onnxruntime."""
    import onnx_ir as ir

    from edgec.compare import assert_outputs_match
    from edgec.ir.analysis import graph_inputs
    from edgec.ir.loader import load_model
    from edgec.reference import run_ort, seeded_inputs

    try:
        original = load_model(path)
        feeds = seeded_inputs(graph_inputs(original), 0, default_dim=2)
        expected = run_ort(ir.serde.serialize_model(original), feeds)
        assert_outputs_match(run_ort(ir.serde.serialize_model(model), feeds), expected, ATOL, RTOL)
    except AssertionError as e:
        return "NO: " + " ".join(str(e).split())[:80]
    except Exception as e:  # onnxruntime cannot run one of them (custom ops, a hostile model)
        return f"n/a ({type(e).__name__})"
    return "yes"


def only_in(a: collections.Counter, b: collections.Counter) -> str:
    """Ops `b` has more of than `a`: 'Op xn, ...' (largest first)."""
    diff = {op: b[op] - a[op] for op in b if b[op] > a[op]}
    return ", ".join(f"{op} x{n}" for op, n in sorted(diff.items(), key=lambda kv: (-kv[1], kv[0]))) or "-"


def static_copy(path: Path) -> Path | None:
    """The model with every dynamic input dim set to 1 (as `edgec compile --input-shape` would fix
    it), in a temp file; None if its inputs are static already."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    inits = {t.name for t in proto.graph.initializer}
    dims = [d for i in proto.graph.input if i.name not in inits and i.type.HasField("tensor_type")
            for d in i.type.tensor_type.shape.dim if not d.HasField("dim_value")]
    if not dims:
        return None
    for d in dims:
        d.dim_value = 1
    out = Path(tempfile.mkdtemp(prefix="onnxsim-static-")) / path.name
    for t in proto.graph.initializer:  # external data copied beside it (onnx refuses links)
        for e in t.external_data:
            dst = out.parent / e.value
            if e.key == "location" and not dst.exists():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path.parent / e.value, dst)
    onnx.save(proto, str(out))
    return out


def compare(path: Path) -> dict:
    from edgec.ir.loader import load_model
    from edgec.passes.cleanup import CLEANUP_PIPELINE
    from edgec.pipelines import default_pipeline

    o2 = default_pipeline(None, 2)
    row = {"model": path.stem, "before": sum(histogram(load_model(path)).values())}
    for key, pipeline in (("cleanup", CLEANUP_PIPELINE), ("onnxsim", "onnxsim"),
                          ("cleanup+onnxsim", f"{CLEANUP_PIPELINE},onnxsim"),
                          ("-O2", o2), ("-O2+onnxsim", f"{o2},onnxsim")):
        model, info = run_pipeline(path, pipeline)
        if model is None:
            row[key], row[key + " error"] = "error", info
            continue
        row[key], row[key + " s"] = sum(histogram(model).values()), info
        row[key + " hist"] = histogram(model)
        if key in ("cleanup", "onnxsim"):
            row[key + " ort"] = matches_ort(path, model)
    if "cleanup hist" in row and "onnxsim hist" in row:
        row["more after cleanup"] = only_in(row["onnxsim hist"], row["cleanup hist"])
        row["more after onnxsim"] = only_in(row["cleanup hist"], row["onnxsim hist"])
    static = static_copy(path)
    for key, pipeline in (("static -O2", o2), ("static -O2+onnxsim", f"{o2},onnxsim")):
        if static is None:  # the same as without fixing
            row[key], row[key + " hist"] = row.get(key[7:], "-"), row.get(key[7:] + " hist")
            continue
        model, info = run_pipeline(static, pipeline)
        if model is None:
            row[key], row[key + " error"] = "error", info
            continue
        row[key], row[key + " hist"] = sum(histogram(model).values()), histogram(model)
    for pre in ("", "static "):
        if row.get(f"{pre}-O2 hist") is not None and row.get(f"{pre}-O2+onnxsim hist") is not None:
            row[f"onnxsim after {pre}-O2"] = changes(row[f"{pre}-O2 hist"], row[f"{pre}-O2+onnxsim hist"])
    return row


def changes(before: collections.Counter, after: collections.Counter) -> str:
    """'-Op xn' for ops removed, '+Op xn' for ops added, from before to after."""
    parts = [f"-{op} x{before[op] - after[op]}" for op in sorted(before) if before[op] > after[op]]
    parts += [f"+{op} x{after[op] - before[op]}" for op in sorted(after) if after[op] > before[op]]
    return ", ".join(parts) or "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-builtin", action="store_true", help="skip the ResNet/MobileNet/BERT benchmark models")
    a = ap.parse_args()
    import onnxsim

    print(f"onnxsim {onnxsim.__version__}: import {import_seconds('onnxsim'):.2f} s after onnx "
          f"(onnx itself {import_seconds('onnx', after='time'):.2f} s; median of 3 processes)\n")
    cols = ["model", "before", "cleanup", "onnxsim", "cleanup+onnxsim", "-O2", "-O2+onnxsim", "static -O2",
            "static -O2+onnxsim", "cleanup s", "onnxsim s", "cleanup ort", "onnxsim ort", "more after cleanup",
            "more after onnxsim", "onnxsim after -O2", "onnxsim after static -O2"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    errors, rows = [], []
    for path in models(not a.no_builtin):
        row = compare(path)
        rows.append(row)
        cells = [f"{row[c]:.2f}" if isinstance(row.get(c), float) else str(row.get(c, "-")) for c in cols]
        print("| " + " | ".join(cells) + " |", flush=True)
        errors += [f"{row['model']}: {k[:-6]}: {v}" for k, v in row.items() if k.endswith(" error")]
    ok = [r for r in rows if isinstance(r.get("cleanup"), int) and isinstance(r.get("onnxsim"), int)]
    print(f"\nmodels: {len(rows)}; both ran: {len(ok)}; cleanup fewer nodes: "
          f"{sum(r['cleanup'] < r['onnxsim'] for r in ok)}, onnxsim fewer: {sum(r['onnxsim'] < r['cleanup'] for r in ok)}, "
          f"equal: {sum(r['onnxsim'] == r['cleanup'] for r in ok)}; total nodes cleanup {sum(r['cleanup'] for r in ok)} "
          f"vs onnxsim {sum(r['onnxsim'] for r in ok)}")
    o2 = [r for r in rows if isinstance(r.get("-O2"), int) and isinstance(r.get("-O2+onnxsim"), int)]
    print(f"after edgec -O2, onnxsim changes the node count of {sum(r['-O2+onnxsim'] != r['-O2'] for r in o2)} "
          f"of {len(o2)} models: total {sum(r['-O2'] for r in o2)} -> {sum(r['-O2+onnxsim'] for r in o2)} nodes")
    st = [r for r in rows if isinstance(r.get("static -O2"), int) and isinstance(r.get("static -O2+onnxsim"), int)]
    print(f"inputs fixed (dynamic dims = 1, as compile needs): onnxsim after -O2 changes the node count of "
          f"{sum(r['static -O2+onnxsim'] != r['static -O2'] for r in st)} of {len(st)} models: total "
          f"{sum(r['static -O2'] for r in st)} -> {sum(r['static -O2+onnxsim'] for r in st)} nodes")
    for e in errors:
        print("error:", e)


if __name__ == "__main__":
    main()
