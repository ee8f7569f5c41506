"""`edgec reduce`: shrink a model that edgec miscompiles (or crashes on) to a minimal one that fails
the same way, and bisect the pipeline to the first pass that breaks it.

The failure predicate is `edgec.differential.check_model` (compile with --verify, run, compare with
onnxruntime) with the user's target, level, passes and disabled passes: a candidate "still fails"
when its outcome has the original's signature (same kind, same stage), so the reduction cannot
wander off to a different bug. Steps, within a budget of `max_checks` check_model calls:

1. nodes, ddmin-style: remove chunks of nodes (halving the chunk size when none can go). A removed
   node's outputs that kept nodes still use become graph inputs (float tensors) or constants with
   the value they had in the original model (int/bool tensors: shapes, indices); graph outputs
   that lose their producer are dropped (when none is left, the kept nodes' unused outputs become
   the outputs); nodes no output depends on are removed.
2. outputs: each remaining output alone.
3. dims: halve each dimension of each graph input while the model stays valid and still fails.
4. pipeline: the prefix of the pipeline whose last pass makes the failure appear (binary search),
   which confirms the pass `--verify` named; a backend failure that the -O0 (lowering-only)
   pipeline already shows is "backend".

Candidates the ONNX checker rejects or onnxruntime cannot run are rejected without a check.
`isolate` (the CLI's default) runs each check in a worker process (edgec.fuzz.run.Runner), so a
native crash or a hang is a failure to reduce like any other; in-process otherwise.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgec.differential import Outcome, check_model
from edgec.errors import EdgecError
from edgec.reduce_candidates import dims, halved, inputs_of, runnable, uses

BISECT_RESERVE = 16  # checks kept back from the reduction for the pipeline bisection


@dataclass
class ReduceOptions:
    target: str = "x86-64"
    opt_level: int = 2
    passes: str | None = None
    disabled: tuple[str, ...] = ()
    max_checks: int = 300
    atol: float = 1e-4
    rtol: float = 1e-4
    isolate: bool = False       # each check in a worker process: native crashes and hangs reduce too
    timeout: float = 300.0      # isolate: seconds before a check counts as a hang
    plugins: tuple[str, ...] = ()  # isolate: plugin files the worker loads


@dataclass
class ReduceResult:
    model: onnx.ModelProto
    nodes_before: int
    nodes_after: int
    original: Outcome
    culprit: str                 # the first failing pass, or "backend"
    after_pass: str = ""         # backend failures that need a pass first: that pass
    confirmed: bool = True       # the bisection agreed with --verify's stage
    checks: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def line(self, out_path: str) -> str:
        where = (f"first failing pass: '{self.culprit}'" if self.culprit != "backend"
                 else "fails in the backend (lowering/schedules/codegen)"
                 + (f" on the output of pass '{self.after_pass}'" if self.after_pass else ""))
        if self.original.kind in ("crash", "hang"):  # no message names where: only the bisection does
            what = "dies" if self.original.kind == "crash" else "hangs"
            where = (f"the process {what} once pass '{self.after_pass}' runs (in that pass, or in the "
                     f"backend on its output)" if self.after_pass
                     else f"the process {what} in the backend (lowering/schedules/codegen)")
        if not self.confirmed:
            where += " (not confirmed by bisection)"
        nodes = f"{self.nodes_after} node{'s' if self.nodes_after != 1 else ''}"
        return f"minimal model: {nodes} (from {self.nodes_before}) -> {out_path}; {where}"


class _OutOfBudget(Exception):
    pass


class Reducer:
    def __init__(self, model: onnx.ModelProto, opts: ReduceOptions, log: Callable[[str], None] = lambda s: None):
        self.opts, self.log = opts, log
        self.orig = model
        g = model.graph
        self.nodes = list(g.node)
        self.inits = {t.name: t for t in g.initializer}
        self.inputs = [i for i in g.input if i.name not in self.inits]
        self.outputs = [o.name for o in g.output]
        self.producer = {o: i for i, n in enumerate(self.nodes) for o in n.output if o}
        self.known = set(self.producer) | set(self.inits) | {i.name for i in self.inputs}
        self.uses = [[u for u in dict.fromkeys(uses(n)) if u in self.known] for n in self.nodes]
        self.values = self._intermediate_values()
        self.checks, self.signature, self.limit = 0, "", opts.max_checks  # limit: for the reduction steps
        self.cache: dict[str, bool] = {}
        self.best = model
        self.runner = self.workdir = None
        if opts.isolate:
            import tempfile

            from edgec.fuzz.run import Runner

            self.runner = Runner(timeout=opts.timeout, threads=None)
            self.workdir = tempfile.TemporaryDirectory(prefix="edgec-reduce-")

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
            self.workdir.cleanup()

    def _intermediate_values(self) -> dict[str, np.ndarray]:
        """Every tensor of the main graph in onnxruntime on seeded inputs (cut points' types and
        the values of int/bool cut points)."""
        from edgec.reference import run_ort

        try:
            inferred = onnx.shape_inference.infer_shapes(self.orig)
        except Exception:
            inferred = self.orig
        typed = {v.name for v in inferred.graph.value_info if v.type.HasField("tensor_type")}
        m = onnx.ModelProto()
        m.CopyFrom(self.orig)
        del m.graph.output[:]
        names = [o for n in self.nodes for o in n.output if o and (o in typed or o in self.outputs)]
        m.graph.output.extend(helper.ValueInfoProto(name=n) for n in names)
        for vi in list(inferred.graph.value_info) + list(self.orig.graph.output):
            if vi.name in names:
                m.graph.output[names.index(vi.name)].CopyFrom(vi)
        try:
            values = run_ort(m, inputs_of(self.orig))
        except Exception:
            return {}
        return {k: v for k, v in values.items() if isinstance(v, np.ndarray)}  # tensors only

    # -- candidates ---------------------------------------------------------------------------

    def build(self, keep: set[int], outputs: list[str] | None = None) -> tuple[onnx.ModelProto, frozenset[int]] | None:
        """The model of the nodes `keep` (dead ones dropped) with `outputs` (default: the original
        outputs still produced, else the kept nodes' unused outputs), or None if it cannot be cut."""
        if outputs is None:
            outputs = [o for o in self.outputs if self.producer.get(o) in keep]
            if not outputs:
                used = {u for i in keep for u in self.uses[i]}
                outputs = [o for i in sorted(keep) for o in self.nodes[i].output
                           if o and o not in used and o in self.values]
        if not outputs:
            return None
        need, live = set(outputs), set()
        for i in sorted(keep, reverse=True):
            if any(o in need for o in self.nodes[i].output):
                live.add(i)
                need.update(self.uses[i])
        if not live:
            return None
        produced = {o for i in live for o in self.nodes[i].output}
        inputs, inits = [], []
        orig_inputs = {i.name: i for i in self.inputs}
        for name in dict.fromkeys(u for i in sorted(live) for u in self.uses[i]):
            if name in produced:
                continue
            if name in orig_inputs:
                inputs.append(orig_inputs[name])
            elif name in self.inits:
                inits.append(self.inits[name])
            elif name in self.values:  # cut: the producer was removed
                a = self.values[name]
                if a.dtype.kind == "f":
                    inputs.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape))
                else:
                    inits.append(numpy_helper.from_array(a, name))
            else:
                return None
        outs = []
        for o in outputs:
            if o not in self.values:
                return None
            a = self.values[o]
            outs.append(helper.make_tensor_value_info(o, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape))
        g = helper.make_graph([self.nodes[i] for i in sorted(live)], self.orig.graph.name or "reduced",
                              inputs, outs, inits)
        m = onnx.ModelProto()
        m.CopyFrom(self.orig)
        m.graph.CopyFrom(g)
        return m, frozenset(live)

    def fails(self, model: onnx.ModelProto, what: str = "") -> bool:
        """Does `model` fail with the original's signature? Invalid models do not (and cost no check)."""
        key = hashlib.sha1(model.SerializeToString(deterministic=True)).hexdigest()
        if key not in self.cache:
            if not runnable(model):
                self.cache[key] = False
                return False
            if self.checks >= self.limit:
                raise _OutOfBudget
            out = self.check(model)
            self.cache[key] = same = out.failed and out.signature() == self.signature
            self.log(f"check {self.checks}/{self.opts.max_checks}: {len(model.graph.node)} nodes{what}: "
                     f"{out.signature()}{' (same failure)' if same else ''}")
        same = self.cache[key]
        if same:
            self.best = model
        return same

    def check(self, model: onnx.ModelProto, passes: str | None = None) -> Outcome:
        self.checks += 1
        o = self.opts
        passes = passes if passes is not None else o.passes
        if self.runner is None:
            return check_model(model, o.target, o.opt_level, passes, tuple(o.disabled), o.atol, o.rtol)
        path = Path(self.workdir.name) / "candidate.onnx"
        onnx.save(model, path)
        got = self.runner.check(str(path), o.target, o.opt_level, passes, o.disabled, o.atol, o.rtol, o.plugins)
        return Outcome(got["kind"], got.get("detail", ""), got.get("stage", ""))

    # -- steps ----------------------------------------------------------------------------------

    def reduce_nodes(self) -> None:
        built = self.build(set(range(len(self.nodes))))
        cur = set(built[1]) if built else set(range(len(self.nodes)))
        chunk = max(len(cur) // 2, 1)
        while cur:
            removed = False
            order = sorted(cur)
            for start in range(0, len(order), chunk):
                drop = set(order[start:start + chunk]) & cur
                if not drop or drop == cur:
                    continue
                built = self.build(cur - drop)
                if built and self.fails(built[0], f" (removed {len(drop)})"):
                    cur, removed = set(built[1]), True
            if not removed:
                if chunk == 1:
                    break
                chunk = max(chunk // 2, 1)
        self.keep = cur

    def reduce_outputs(self) -> None:
        outs = [o.name for o in self.best.graph.output]
        if len(outs) < 2:
            return
        for o in outs:
            built = self.build(self.keep, [o])
            if built and self.fails(built[0], f" (only output '{o}')"):
                self.keep = set(built[1])
                return

    def reduce_dims(self) -> None:
        """Halve each input dim while it still fails: together with the same (right-aligned,
        broadcast) dim of every other input of that size first, then alone."""
        cur = self.best
        for k in range(len(cur.graph.input)):
            for d in range(len(dims(cur, k))):
                while dims(cur, k)[d] > 1:
                    n, r = dims(cur, k)[d], d - len(dims(cur, k))
                    group = {j for j in range(len(cur.graph.input))
                             if len(dims(cur, j)) >= -r and dims(cur, j)[r] == n}
                    tries = [group, {k}] if group != {k} else [{k}]
                    m = next((m for g in tries if (m := halved(cur, g, r)) is not None and runnable(m)), None)
                    what = f" ({cur.graph.input[k].name} dim {d}: {n} -> {n // 2})"
                    if m is None or not self.fails(m, what):
                        break
                    cur = m

    def bisect(self, outcome: Outcome) -> tuple[str, str, bool]:
        """(culprit, after_pass, confirmed): the first pass of the pipeline whose inclusion makes
        the failure appear, or "backend"."""
        from edgec.infra.pipeline import parse_pipeline
        from edgec.pipelines import default_pipeline
        from edgec.targets.registry import get_target

        o = self.opts
        spec = get_target(o.target)
        text = o.passes if o.passes is not None else default_pipeline(spec, o.opt_level)
        specs = [p.spec() for p in parse_pipeline(text).passes if p.name not in o.disabled]
        stage = outcome.stage
        backend = stage not in {s.split("{")[0] for s in specs}
        suffix = [] if not backend else [p.spec() for p in parse_pipeline(default_pipeline(spec, 0)).passes]

        def fails_with(prefix: list[str], what: str) -> bool:
            if self.checks >= o.max_checks:
                raise _OutOfBudget
            out = self.check(self.best, ",".join(prefix))
            same = out.failed and out.signature() == self.signature
            self.log(f"check {self.checks}/{o.max_checks}: pipeline {what}: {out.signature()}"
                     f"{' (same failure)' if same else ''}")
            return same

        try:
            if backend and (fails_with([], "empty") or fails_with(suffix, "-O0 (lowering only)")):
                return "backend", "", True
            lo, hi = 0, len(specs)  # prefix lo does not fail, prefix hi does (known without a suffix)
            if backend and not fails_with(specs + suffix, f"all {len(specs)} passes, then -O0"):
                return (stage if not backend else "backend"), "", False
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if fails_with(specs[:mid] + suffix, f"first {mid} passes (up to '{specs[mid - 1]}')"):
                    hi = mid
                else:
                    lo = mid
        except _OutOfBudget:
            return (stage if not backend else "backend"), "", False
        found = specs[hi - 1].split("{")[0]
        if backend:
            return "backend", found, True
        return stage, "", found == stage


def reduce_model(model: onnx.ModelProto, opts: ReduceOptions, log: Callable[[str], None] = lambda s: None) -> ReduceResult:
    """Reduce `model` (see the module doc). EdgecError (exit 2) when the original does not fail."""
    t0 = time.monotonic()
    r = Reducer(model, opts, log)
    try:
        return _reduce(r, model, opts, log, t0)
    finally:
        r.close()


def _reduce(r: Reducer, model: onnx.ModelProto, opts: ReduceOptions, log, t0: float) -> ReduceResult:
    original = r.check(model)
    log(f"check 1/{opts.max_checks}: original model, {len(model.graph.node)} nodes: {original.signature()}")
    if not original.failed:
        why = {"match": "the model compiles and matches onnxruntime",
               "rejected": f"edgec rejects the model ({original.detail})",
               "reference": f"onnxruntime cannot run the model ({original.detail})",
               "unrunnable": f"the compiled model cannot run here ({original.detail})"}.get(original.kind, original.kind)
        raise EdgecError(f"{why}; nothing to reduce")
    r.signature = original.signature()
    r.limit = max(opts.max_checks - BISECT_RESERVE, 1)
    notes = []
    try:
        r.reduce_nodes()
        r.reduce_outputs()
        r.reduce_dims()
    except _OutOfBudget:
        notes.append(f"stopped after {r.checks} checks (--max-checks); the model may reduce further")
        log(notes[-1])
    culprit, after, confirmed = r.bisect(original)
    return ReduceResult(r.best, len(model.graph.node), len(r.best.graph.node), original, culprit, after,
                        confirmed, r.checks, time.monotonic() - t0, notes)
