"""The model zoo sweep (issue 12): compile every zoo model, compare with onnxruntime, time it.

    python benchmarks/zoo.py                                  # all models, x86-64, timed
    python benchmarks/zoo.py --no-time --json /tmp/zoo.json   # status + error only
    python benchmarks/zoo.py --only ppocr_cls_v4,oww_alexa --targets x86-64,armv8
    python benchmarks/zoo.py --max-mb 5 --rounds 5 --md /tmp/zoo.md

For each model of benchmarks/zoo_manifest.toml (fetched first by zoo_fetch into --dest), with the
realistic input the manifest describes (`zoo_fetch.make_inputs`):

1. a `ref` worker process builds the inputs (saved as .npy) and the onnxruntime reference
   (`edgec.reference.run_ort`: graph optimizations off, as every edgec check);
2. `edgec compile MODEL -t TARGET --threads 2 --input-shape NAME=DIMS ...` fixes every input whose
   declared shape is not the input's actual shape (named, unknown, -1 or missing dims);
3. `edgec run ART -i NAME=FILE ... --output out.npz --threads 2` runs it (an armv8 artifact runs
   its bundle under qemu);
4. the outputs are compared with `edgec.compare` (NaN/Inf, shape, dtype, missing or extra outputs
   are mismatches) against the issue's bar: max abs error <= 1e-3 x max(1, max|reference|), per
   output. "max err" is the worst max abs error divided by that scale (<= 1e-3 passes).

Every step is its own process (own session, killed as a group at --timeout), so a hang or a crash
of one model never stops the sweep. Status per model and target: ok, compile-fail (exit 2: bad
input or an unsupported model, with edgec's one-line reason), internal-error (exit 1, or killed by
a signal), mismatch, run-fail, timeout, or fetch-fail / input-fail when the model or its reference
could not be prepared.

Timing (unless --no-time; x86-64 models that are ok only): onnxruntime (2 intra-op threads,
graph optimizations on), edgec (the compiled artifact, 2 threads) and OpenVINO's CPU plugin
(2 threads, f32, latency hint, shapes fixed by `reshape`) each run in a fresh process with the
same inputs, in --rounds interleaved rounds (ORT, edgec, OpenVINO, ORT, ...), with the
environment of benchmarks/bench_models.py (TVM_NUM_THREADS=2, default thread-pool spinning);
the medians are over all rounds x --repeat whole calls (inputs in, outputs out). The geometric
mean of edgec/ORT is over the models that pass.

Writes a markdown report (--md, default docs/zoo.md) and, with --json, the per-model results.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import zoo_fetch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WORK = Path(os.path.expanduser("~/.cache/edgec/zoo-work"))
TARGETS = ("x86-64", "armv8")
RTOL = 1e-3  # the bar: max abs <= 1e-3 x max(1, max|reference|)
THREADS = 2


def _bench_env() -> dict:
    """bench_models.py's environment for timed processes (imported, not copied)."""
    from bench_models import ENV

    return dict(ENV)


# --------------------------------------------------------------------------- subprocesses

def run_proc(cmd: list[str], timeout: float, env: dict | None = None, cwd: str | None = None) -> tuple[int | None, str, str]:
    """Run cmd in its own session; on timeout kill its whole process group. Returns (returncode or
    None on timeout, stdout, stderr)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=max(timeout, 1))
        return p.returncode, out, err
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = p.communicate()
        return None, out, err


def one_line(text: str, limit: int = 300) -> str:
    """The last edgec-looking line of stderr (or the last non-empty one), whitespace collapsed."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    pick = next((ln for ln in reversed(lines) if ln.startswith("edgec:")), lines[-1] if lines else "")
    return " ".join(pick.split())[:limit]


def worker_cmd(kind: str, model_id: str, a) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--worker", kind, model_id,
            "--dest", str(a.dest), "--work", str(a.work), "--warmup", str(a.warmup), "--repeat", str(a.repeat)]


def worker_json(kind: str, model_id: str, a, timeout: float, env=None) -> dict:
    rc, out, err = run_proc(worker_cmd(kind, model_id, a), timeout, env=env)
    if rc is None:
        return {"error": f"timeout after {timeout:.0f}s"}
    if rc != 0:
        why = f"signal {-rc}" if rc < 0 else f"exit {rc}"
        return {"error": f"{why}: {one_line(err, 200)}"}
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": f"bad worker output: {one_line(out + err, 200)}"}


# --------------------------------------------------------------------------- workers (own process)

def _entry(model_id: str) -> dict:
    return zoo_fetch._by_id(model_id)


def _load_inputs(mdir: Path) -> dict:
    import numpy as np

    spec = json.loads((mdir / "inputs.json").read_text())
    return {d["name"]: np.load(mdir / d["file"], allow_pickle=False) for d in spec}


def worker_ref(model_id: str, dest: Path, mdir: Path) -> dict:
    """Inputs (.npy) and the onnxruntime reference (npz, keyed by index; names in ref.json)."""
    import numpy as np

    from edgec.reference import ort_session

    entry = _entry(model_id)
    feeds = zoo_fetch.make_inputs(entry, dest)
    mdir.mkdir(parents=True, exist_ok=True)
    spec = []
    for i, (name, x) in enumerate(feeds.items()):
        np.save(mdir / f"in{i}.npy", x)
        spec.append({"name": name, "file": f"in{i}.npy", "shape": list(x.shape), "dtype": str(x.dtype)})
    (mdir / "inputs.json").write_text(json.dumps(spec))
    path = str(zoo_fetch.model_path(dest, entry))
    ref, as_written_err = _reference(path, feeds)
    np.savez(mdir / "ref.npz", **{f"o{i}": v for i, v in enumerate(ref.values())})
    (mdir / "ref.json").write_text(json.dumps(list(ref)))
    # the model's own sensitivity: onnxruntime with its graph optimizations on (fused kernels,
    # other summation orders) against the reference; an error of edgec's at this level is within
    # what the model does to ordinary float differences (reported, never a pass)
    try:
        sess = ort_session(path, 1, optimized=True)
        names = [o.name for o in sess.get_outputs()]
        opt = dict(zip(names, sess.run(names, {i.name: feeds[i.name] for i in sess.get_inputs()})))
        self_err = _rel_error(compare(opt, ref), ref)
    except Exception:  # noqa: BLE001 - context only: an optimizer failure leaves it blank
        self_err = None
    return {"outputs": {k: [list(v.shape), str(v.dtype)] for k, v in ref.items()}, "ort_self_err": self_err,
            "ort_as_written_err": as_written_err}


def _reference(path: str, feeds: dict):
    """(onnxruntime's outputs with exact integer products, error of onnxruntime as written against
    them or None). A model with uint8 x int8 products runs with its int8 operands re-encoded as uint8
    (`edgec.reference_exact`): the same integers, computed by onnxruntime's u8u8 kernels, which do
    not saturate int16 pairs as its u8s8 kernels do on x86 without VNNI."""
    import onnx

    from edgec.reference import run_ort
    from edgec.reference_exact import exact_ort_model, has_u8s8_products

    as_written = run_ort(path, feeds)
    if not has_u8s8_products(onnx.load(path, load_external_data=False)):
        return as_written, None
    exact = run_ort(*exact_ort_model(onnx.load(path), feeds))
    return exact, _rel_error(compare(as_written, exact), exact)


def _times(run, warmup: int, repeat: int) -> list[float]:
    from bench_models import time_calls  # the same loop as the model benchmark

    return time_calls(run, warmup, repeat)


def worker_time(kind: str, model_id: str, dest: Path, mdir: Path, warmup: int, repeat: int) -> dict:
    inputs = _load_inputs(mdir)
    path = str(zoo_fetch.model_path(dest, _entry(model_id)))
    if kind == "time-ort":  # as bench_models.py: 2 intra-op threads, default optimizations and spinning
        from edgec.user_cache import import_onnxruntime

        ort = import_onnxruntime()
        so = ort.SessionOptions()
        so.intra_op_num_threads = THREADS
        so.log_severity_level = 4
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        return {"times": _times(lambda: sess.run(None, inputs), warmup, repeat)}
    if kind == "time-edgec":
        from edgec.artifact import load_artifact
        from edgec.targets.tvm.execute import bench

        art = load_artifact(mdir / "x86-64" / "art")
        return {"times": bench(art, inputs, warmup, repeat, THREADS)}
    if kind == "time-ov":
        import numpy as np
        import openvino as ov

        from edgec.compare import compare_outputs

        core = ov.Core()
        m = core.read_model(path)
        m.reshape({name: ov.PartialShape(list(x.shape)) for name, x in inputs.items()})
        cm = core.compile_model(m, "CPU", {"INFERENCE_NUM_THREADS": THREADS, "PERFORMANCE_HINT": "LATENCY",
                                           "NUM_STREAMS": 1, "INFERENCE_PRECISION_HINT": "f32"})
        req = cm.create_infer_request()
        res = req.infer(inputs)
        names = json.loads((mdir / "ref.json").read_text())
        with np.load(mdir / "ref.npz") as z:
            ref = {n: z[f"o{i}"] for i, n in enumerate(names)}
        got = {}
        for port, v in res.items():
            for n in port.get_names():
                if n in ref:
                    got[n] = np.asarray(v)
        err = _rel_error(compare_outputs(got, ref), ref)
        return {"times": _times(lambda: req.infer(inputs), warmup, repeat), "ov_err": err}
    raise SystemExit(f"unknown worker {kind}")


# --------------------------------------------------------------------------- comparison

def _scale(ref) -> float:
    import numpy as np

    r = np.asarray(ref)
    if r.size == 0 or r.dtype.kind not in "fiub":
        return 1.0
    v = np.abs(r[np.isfinite(r)].astype(np.float64)) if r.dtype.kind == "f" else np.abs(r.astype(np.float64))
    return max(1.0, float(v.max()) if v.size else 0.0)


def compare(actual: dict, ref: dict):
    """edgec.compare with the issue's bound per output: atol 1e-3 x max(1, max|ref|)."""
    from edgec.compare import Tolerance, compare_array, compare_outputs

    diffs = compare_outputs(actual, ref, Tolerance(RTOL))  # missing / extra outputs
    out = []
    for d in diffs:
        if d.name in ref and d.name in actual:
            d = compare_array(d.name, actual[d.name], ref[d.name], Tolerance(RTOL * _scale(ref[d.name])))
        out.append(d)
    return out


def _rel_error(diffs, ref) -> float:
    """Worst max abs error / max(1, max|ref|) over the outputs (NaN/Inf stay NaN/Inf)."""
    worst = 0.0
    for d in diffs:
        e = d.max_abs / _scale(ref[d.name]) if d.name in ref else d.max_abs
        if math.isnan(e):
            return float("nan")
        worst = max(worst, e)
    return worst


# --------------------------------------------------------------------------- one model, one target

def input_shape_args(entry: dict, inputs: list[dict]) -> list[str]:
    """--input-shape for every input whose declared shape is not the actual one."""
    declared = {s["name"]: s.get("declared_shape") for s in entry["inputs"]}
    args = []
    for d in inputs:
        if declared.get(d["name"]) != d["shape"]:
            args += ["--input-shape", f"{d['name']}={','.join(map(str, d['shape']))}"]
    return args


def lowering_counts(art: Path) -> dict:
    try:
        meta = json.loads((art / "metadata.json").read_text())
    except (OSError, ValueError):
        return {}
    low = meta.get("lowering") or {}
    out = {"edgec_nodes": sum((low.get("edgec") or {}).values()),
           "frontend_nodes": sum((low.get("tvm-onnx-frontend") or {}).values())}
    if low.get("tvm-onnx-frontend"):
        out["frontend_ops"] = low["tvm-onnx-frontend"]
    return out


def check_target(entry: dict, target: str, mdir: Path, a) -> dict:
    import numpy as np

    inputs = json.loads((mdir / "inputs.json").read_text())
    tdir = mdir / target
    art = tdir / "art"
    tdir.mkdir(parents=True, exist_ok=True)
    edgec = [sys.executable, "-m", "edgec.cli"]
    model = str(zoo_fetch.model_path(a.dest, entry))
    shapes = input_shape_args(entry, inputs)
    cmd = [*edgec, "compile", model, "-t", target, "--threads", str(THREADS), *shapes, "-o", str(art)]
    r: dict = {"compile_cmd": " ".join(["edgec", *cmd[3:]])}
    deadline = time.monotonic() + a.timeout
    t0 = time.perf_counter()
    rc, out, err = run_proc(cmd, a.timeout)
    r["compile_s"] = round(time.perf_counter() - t0, 1)
    if rc is None:
        return {**r, "status": "timeout", "reason": f"compile did not finish in {a.timeout:.0f}s"}
    if rc != 0:
        reason = one_line(err)
        if rc == 2:
            return {**r, "status": "compile-fail", "reason": reason, "exit": rc}
        what = f"killed by signal {-rc}" if rc < 0 else f"exit {rc}"
        return {**r, "status": "internal-error", "reason": reason if rc == 1 else f"{what}: {reason}", "exit": rc}
    r["lowering"] = lowering_counts(art)
    outf = tdir / "out.npz"
    if outf.exists():
        outf.unlink()
    run_cmd = [*edgec, "run", str(art), *[x for d in inputs for x in ("-i", f"{d['name']}={mdir / d['file']}")],
               "--output", str(outf), "--threads", str(THREADS)]
    rc, out, err = run_proc(run_cmd, max(deadline - time.monotonic(), 30), env=_bench_env())
    if rc is None:
        return {**r, "status": "timeout", "reason": "edgec run did not finish in the time left"}
    if rc != 0 or not outf.exists():
        what = f"killed by signal {-rc}" if rc < 0 else f"exit {rc}"
        return {**r, "status": "run-fail", "reason": f"{what}: {one_line(err)}", "exit": rc}
    names = json.loads((mdir / "ref.json").read_text())
    with np.load(mdir / "ref.npz") as z:
        ref = {n: z[f"o{i}"] for i, n in enumerate(names)}
    with np.load(outf) as z:
        got = {k: z[k] for k in z.files}
    diffs = compare(got, ref)
    from edgec.compare import all_match, summary, worst_error

    r["max_err"] = _rel_error(diffs, ref)
    r["max_abs"] = worst_error(diffs)
    if all_match(diffs):
        return {**r, "status": "ok", "reason": ""}
    return {**r, "status": "mismatch", "reason": summary(diffs)[:300]}


def time_model(entry: dict, a) -> dict:
    """Interleaved rounds of ORT / edgec / OpenVINO, each a fresh process; medians in ms."""
    import numpy as np

    env = _bench_env()
    kinds = {"ort": "time-ort", "edgec": "time-edgec", "ov": "time-ov"}
    times = {k: [] for k in kinds}
    errors, extra = {}, {}
    for _ in range(a.rounds):
        for k, kind in kinds.items():
            if k in errors:
                continue
            res = worker_json(kind, entry["id"], a, a.timeout, env=env)
            if "error" in res:
                errors[k] = res["error"]
                continue
            times[k] += res["times"]
            if "ov_err" in res:
                extra["ov_err"] = res["ov_err"]
    t = {k: (float(np.median(v)) * 1e3 if v and k not in errors else None) for k, v in times.items()}
    out = {"edgec_ms": t["edgec"], "ort_ms": t["ort"], "ov_ms": t["ov"], **extra}
    if t["edgec"] and t["ort"]:
        out["edgec_ort"] = t["edgec"] / t["ort"]
    if t["edgec"] and t["ov"]:
        out["edgec_ov"] = t["edgec"] / t["ov"]
    if errors:
        out["time_errors"] = errors
    return out


def run_model(entry: dict, targets: list[str], a) -> dict:
    mid = entry["id"]
    mdir = a.work / mid
    res = {"id": mid, "package": entry["package"], "domain": entry["domain"], "mb": round(entry["size"] / 1e6, 1),
           "targets": {}}
    failed = zoo_fetch.fetch(a.dest, [mid], verbose=False) if not a.no_fetch else []
    if failed:
        for t in targets:
            res["targets"][t] = {"status": "fetch-fail", "reason": "zoo_fetch failed (see its stderr)"}
        return res
    ref = worker_json("ref", mid, a, a.timeout)
    if "error" in ref:
        for t in targets:
            res["targets"][t] = {"status": "input-fail", "reason": f"inputs/onnxruntime reference: {ref['error']}"}
        return res
    res["ort_self_err"] = ref.get("ort_self_err")
    res["ort_as_written_err"] = ref.get("ort_as_written_err")
    for t in targets:
        res["targets"][t] = check_target(entry, t, mdir, a)
    x86 = res["targets"].get("x86-64")
    if not a.no_time and x86 and x86["status"] == "ok":
        x86.update(time_model(entry, a))
    return res


# --------------------------------------------------------------------------- report

def _fmt_ms(v) -> str:
    return "-" if v is None else (f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.0f}")


def _fmt_err(r: dict) -> str:
    e = r.get("max_err")
    if e is None:
        return "-"
    return "NaN" if math.isnan(e) else "inf" if math.isinf(e) else f"{e:.1e}"


def _md_cell(s: str) -> str:
    return (s or "").replace("|", "\\|").replace("\n", " ")


def git_state() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip().splitlines()
    except OSError:
        return "unknown"
    return head + (f" (+ uncommitted changes in {len(dirty)} tracked file(s) of the shared tree)" if dirty else "")


def geomean(xs: list[float]) -> float | None:
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else None


def summarize(results: list[dict], targets: list[str]) -> dict:
    s = {"models": len(results), "packages": len({r["package"] for r in results}), "targets": {}}
    for t in targets:
        rows = [r["targets"][t] for r in results if t in r["targets"]]
        counts: dict[str, int] = {}
        for x in rows:
            counts[x["status"]] = counts.get(x["status"], 0) + 1
        ratios = [x["edgec_ort"] for x in rows if x["status"] == "ok" and x.get("edgec_ort")]
        ov = [x["edgec_ov"] for x in rows if x["status"] == "ok" and x.get("edgec_ov")]
        s["targets"][t] = {"ok": counts.get("ok", 0), "of": len(rows), "counts": counts,
                           "geomean_edgec_ort": geomean(ratios), "timed": len(ratios),
                           "geomean_edgec_ov": geomean(ov)}
    return s


def write_markdown(path: Path, results: list[dict], targets: list[str], a, summary: dict, started: str,
                   commit: str | None = None) -> None:
    title = a.title or "Model zoo: compile, match onnxruntime, latency"
    lines = [f"# {title}", ""]
    if a.note:
        lines += [a.note, ""]
    timed = "not timed (`--no-time`)" if a.no_time else (
        f"timed on this host: {THREADS} threads each, {a.rounds} interleaved rounds x {a.repeat} runs "
        f"(+{a.warmup} warm-up) per runtime, each in a fresh process; medians; untuned")
    lines += [
        f"Run {started} on commit {commit or git_state()}; {os.cpu_count()} cores; {timed}.",
        f"Command: `{a.command}`",
        "",
        f"{summary['models']} models from {summary['packages']} packages (benchmarks/zoo_manifest.toml, "
        "sources in [zoo-sources.md](zoo-sources.md)), each with its realistic input (`zoo_fetch.make_inputs`); "
        "dynamic input dims fixed with `--input-shape` from that input. Pass bar (issue 12): per output, "
        "max abs error <= 1e-3 x max(1, max|onnxruntime|); `max err` is the worst max abs error over "
        "that scale. onnxruntime is the reference (graph optimizations off; a model with uint8 x int8 products "
        "runs with its int8 operands re-encoded as uint8, `edgec.reference_exact`, so that onnxruntime's integer "
        "products are exact on every CPU: on x86 without VNNI its u8s8 kernels saturate int16 pairs; the reason "
        "column then gives onnxruntime as written against that reference) and, with graph optimizations on, "
        "the timing baseline; OpenVINO is its CPU plugin (f32, latency hint). `ORT opt err` is onnxruntime "
        "with its optimizations on against the same reference, in the same units: the model's own sensitivity "
        "to ordinary float differences (shown for context; it never makes a model pass).",
        "",
    ]
    for t in targets:
        st = summary["targets"][t]
        pct = 100 * st["ok"] / st["of"] if st["of"] else 0
        counts = ", ".join(f"{k} {v}" for k, v in sorted(st["counts"].items(), key=lambda kv: -kv[1]))
        lines.append(f"- **{t}**: {st['ok']} of {st['of']} compile and match ({pct:.0f}%); {counts}.")
        if t == "x86-64" and not a.no_time:
            g, go = st["geomean_edgec_ort"], st["geomean_edgec_ov"]
            lines.append(f"  Geometric mean of edgec/onnxruntime over the {st['timed']} passing models: "
                         f"{'-' if g is None else f'{g:.2f}'}; of edgec/OpenVINO: {'-' if go is None else f'{go:.2f}'}.")
    lines.append("")
    for t in targets:
        lines += [f"## {t}", ""]
        timecols = t == "x86-64" and not a.no_time
        head = "| model | package | MB | status | max err | ORT opt err | " + (
            "edgec ms | ORT ms | OpenVINO ms | edgec/ORT | edgec/OV | " if timecols else "") + "reason |"
        lines += [head, "|" + "---|" * (head.count(" | ") + 1)]
        for r in results:
            x = r["targets"].get(t)
            if x is None:
                continue
            self_err = r.get("ort_self_err")
            row = (f"| {r['id']} | {r['package']} | {r['mb']} | {x['status']} | {_fmt_err(x)} | "
                   f"{'-' if self_err is None else f'{self_err:.1e}'} | ")
            if timecols:
                ratio = lambda k: f"{x[k]:.2f}" if x.get(k) else "-"  # noqa: E731
                row += (f"{_fmt_ms(x.get('edgec_ms'))} | {_fmt_ms(x.get('ort_ms'))} | {_fmt_ms(x.get('ov_ms'))} | "
                        f"{ratio('edgec_ort')} | {ratio('edgec_ov')} | ")
            why = x.get("reason", "")
            if r.get("ort_as_written_err") is not None:
                why = (why + "; " if why else "") + f"ORT as written: {r['ort_as_written_err']:.1e}"
            if x.get("time_errors"):
                why = (why + " " if why else "") + "timing: " + "; ".join(f"{k}: {v}" for k, v in x["time_errors"].items())
            lines.append(row + _md_cell(why) + " |")
        lines.append("")
    if a.append:
        lines += [Path(a.append).read_text().rstrip(), ""]
    tmp = path.with_name(path.name + ".part")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, path)


# --------------------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="", help="comma-separated model ids")
    ap.add_argument("--max-mb", type=float, default=None, help="only models of at most this many MB")
    ap.add_argument("--targets", default="x86-64", help="comma-separated: x86-64, armv8 (qemu)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (fresh processes)")
    ap.add_argument("--repeat", type=int, default=20, help="timed calls per round and runtime")
    ap.add_argument("--warmup", type=int, default=3, help="untimed calls first, per process")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per step (reference; compile + run; a timing process)")
    ap.add_argument("--no-time", action="store_true", help="status and error only")
    ap.add_argument("--json", default="", help="write the per-model results here")
    ap.add_argument("--md", default=str(ROOT / "docs" / "zoo.md"), help="markdown report (default docs/zoo.md); '' for none")
    ap.add_argument("--title", default="", help="the report's heading")
    ap.add_argument("--note", default="", help="a paragraph under the heading")
    ap.add_argument("--append", default="", help="a markdown file appended to the report")
    ap.add_argument("--dest", type=Path, default=zoo_fetch.DEFAULT_DEST, help="zoo directory (zoo_fetch --dest)")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK, help="inputs, references and artifacts")
    ap.add_argument("--no-fetch", action="store_true", help="use the models already in --dest")
    ap.add_argument("--render", default="", metavar="JSON",
                    help="only write the markdown report from a results JSON of an earlier run")
    ap.add_argument("--worker", nargs=2, metavar=("KIND", "ID"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    a.dest, a.work = a.dest.expanduser().resolve(), a.work.expanduser().resolve()
    if a.worker:
        kind, mid = a.worker
        mdir = a.work / mid
        res = worker_ref(mid, a.dest, mdir) if kind == "ref" else worker_time(kind, mid, a.dest, mdir, a.warmup, a.repeat)
        print(json.dumps(res))
        return 0
    if a.render:
        d = json.loads(Path(a.render).read_text())
        results, targets = d["results"], list(d["summary"]["targets"])
        a.command, a.no_time = d["command"], d.get("no_time", "--no-time" in d["command"])
        for k in ("rounds", "repeat", "warmup"):
            setattr(a, k, d.get(k, getattr(a, k)))
        write_markdown(Path(a.md), results, targets, a, summarize(results, targets), d["started"], d.get("commit"))
        return 0
    targets = [t for t in a.targets.split(",") if t]
    bad = [t for t in targets if t not in TARGETS]
    if bad:
        ap.error(f"unknown target(s) {bad}; choose from {', '.join(TARGETS)}")
    models = zoo_fetch.load_manifest()["model"]
    only = [x for x in a.only.split(",") if x]
    unknown = set(only) - {m["id"] for m in models}
    if unknown:
        ap.error(f"unknown model id(s): {', '.join(sorted(unknown))}")
    models = [m for m in models if (not only or m["id"] in only) and (a.max_mb is None or m["size"] <= a.max_mb * 1e6)]
    a.command = "python benchmarks/zoo.py " + " ".join(argv if argv is not None else sys.argv[1:])
    started = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    commit = git_state()
    a.work.mkdir(parents=True, exist_ok=True)
    results = []
    for i, m in enumerate(models, 1):
        t0 = time.perf_counter()
        r = run_model(m, targets, a)
        results.append(r)
        parts = []
        for t, x in r["targets"].items():
            p = f"{t}: {x['status']}"
            if x.get("max_err") is not None:
                p += f" err {_fmt_err(x)}"
            if x.get("edgec_ort"):
                p += f" edgec/ORT {x['edgec_ort']:.2f}"
            if x.get("reason"):
                p += f" ({x['reason'][:160]})"
            parts.append(p)
        print(f"[{i}/{len(models)}] {m['id']:28} {time.perf_counter() - t0:6.0f}s  " + "; ".join(parts), flush=True)
        summary = summarize(results, targets)
        if a.json:  # after every model: a killed sweep keeps what it measured
            Path(a.json).write_text(json.dumps({"summary": summary, "command": a.command, "started": started,
                                                "commit": commit, "no_time": a.no_time, "rounds": a.rounds,
                                                "repeat": a.repeat, "warmup": a.warmup, "results": results},
                                               indent=1))
    summary = summarize(results, targets)
    if a.md:
        write_markdown(Path(a.md), results, targets, a, summary, started, commit)
    for t, st in summary["targets"].items():
        g = st["geomean_edgec_ort"]
        print(f"{t}: {st['ok']}/{st['of']} ok" + (f"; geomean edgec/ORT {g:.2f} over {st['timed']}" if g else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
