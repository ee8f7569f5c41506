"""The portable tuning-records file: one JSON document, no TVM import needed to read it.

    {"format": "edgec-tuning-records", "version": 1,
     "tasks": {"<target-hash>:<workload-hash>": {
         "name": "fused_conv2d_nchwc_add_relu", "target": "<TVM target JSON>", "weight": 2,
         "flops": 1.2e6, "trials": 16, "errors": 1,
         "rule": {"name": "conv2d-nchwc", "latency_us": 25.1, "trace": "<TVM JSON of the trace>"},
         "tuned": [{"latency_us": 18.8, "trace": "<TVM JSON>"}, ...],      # best first, top K
         "knobs": [{"latency_us": 17.9, "values": {"rule": "conv2d-nchwc", "ot": 2, ...}}, ...],
         "knob_trials": 12,                # candidates of the rule's knob space measured so far
         "knobs_verdict": "accepted" | "rejected" | "none" | null,   # interleaved re-timing vs the rule
         "confirm": {"rounds": 5, "rule_us": [...], "candidates": [{"values", "us", "wins", "accepted"}]},
         "best": "tuned" | "rule" | "knobs" | null}}}

Keys are a structural hash of the kernel (the fused PrimFunc as a one-function module) and a hash
of the TVM target, so a record is only ever applied to the same kernel built for the same target.
`best` is whichever of edgec's rule schedule, the best tuned (MetaSchedule) schedule and the best
knob setting of the rule (`edgec tune --space knobs`) measured fastest; knob settings count only
once their interleaved confirmation against the rule accepted them (`knobs_verdict`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from edgec.errors import EdgecError
from edgec.safe_read import read_regular_file

FORMAT, VERSION = "edgec-tuning-records", 1
TOP_K = 8  # tuned traces kept per task (the best is applied; the rest seed a resumed search)
MAX_RECORDS_BYTES = 256 << 20  # a records file holds a few traces per kernel: megabytes, not gigabytes


class RecordsError(EdgecError):
    """A tuning-records file is missing, unreadable or not an edgec records file."""


def target_hash(target_str: str) -> str:
    return hashlib.sha256(target_str.encode()).hexdigest()[:12]


def task_key(target_str: str, workload_hash: int) -> str:
    return f"{target_hash(target_str)}:{workload_hash & (2**64 - 1):016x}"


@dataclass
class Records:
    path: Path | None = None
    tasks: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | os.PathLike, missing_ok: bool = False) -> Records:
        p = Path(path)
        if not p.exists():
            if missing_ok:
                return cls(p)
            raise RecordsError(f"records file {p} not found")
        data = read_regular_file(p, f"records file {p}", RecordsError, MAX_RECORDS_BYTES)  # no FIFO, no /dev/zero
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RecordsError(f"{p}: not a valid records file ({type(e).__name__}: {' '.join(str(e).split())[:100]})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise RecordsError(f"{p}: not an edgec tuning-records file (no \"format\": \"{FORMAT}\")")
        if doc.get("version") != VERSION:
            raise RecordsError(f"{p}: records version {doc.get('version')!r}, this edgec reads version {VERSION}")
        tasks = doc.get("tasks")
        if not isinstance(tasks, dict) or not all(isinstance(v, dict) for v in tasks.values()):
            raise RecordsError(f"{p}: malformed records file ('tasks' must map keys to objects)")
        for k, v in tasks.items():
            if (not isinstance(v.get("tuned", []), list) or not isinstance(v.get("knobs", []), list)
                    or v.get("best") not in (None, "rule", "tuned", "knobs")):
                raise RecordsError(f"{p}: malformed record for task {k}")
        return cls(p, tasks)

    def save(self, path: str | os.PathLike | None = None) -> None:
        """Write atomically (temporary file + rename); an unwritable path is a one-line error."""
        from edgec.output_paths import write_file_atomic

        doc = {"format": FORMAT, "version": VERSION, "tasks": self.tasks}
        write_file_atomic(path or self.path, json.dumps(doc, indent=1, sort_keys=True) + "\n", "records file")

    def entry(self, key: str, **init) -> dict:
        e = self.tasks.setdefault(key, {"trials": 0, "errors": 0, "rule": None, "tuned": [], "best": None})
        e.update({k: v for k, v in init.items() if v is not None})
        return e

    def add_tuned(self, key: str, latency_us: float, trace_json: str) -> None:
        e = self.tasks[key]
        e["tuned"] = sorted([*e["tuned"], {"latency_us": latency_us, "trace": trace_json}],
                            key=lambda r: r["latency_us"])[:TOP_K]
        decide(e)

    def add_knobs(self, key: str, latency_us: float, values: dict) -> None:
        """Record a measured knob setting (a re-measured setting keeps its faster timing)."""
        e = self.tasks[key]
        kept = [k for k in e.setdefault("knobs", []) if k["values"] != values]
        old = [k["latency_us"] for k in e["knobs"] if k["values"] == values]
        kept.append({"latency_us": min([latency_us, *old]), "values": values})
        e["knobs"] = sorted(kept, key=lambda r: r["latency_us"])[:TOP_K]
        e["knobs_verdict"] = None  # a new candidate: the confirmation (knobs.confirm) must run again
        decide(e)

    def best_for(self, key: str) -> dict | None:
        e = self.tasks.get(key)
        return e if e and e.get("best") else None


def best_tuned_us(e: dict) -> float | None:
    return e["tuned"][0]["latency_us"] if e.get("tuned") else None


def best_knobs_us(e: dict) -> float | None:
    """The best knob setting's latency, if the interleaved confirmation accepted it (knobs.confirm)."""
    return e["knobs"][0]["latency_us"] if e.get("knobs") and e.get("knobs_verdict") == "accepted" else None


def knobs_settled(e: dict) -> bool:
    """The knob search's confirmation has run since the last knob setting was measured
    (knobs.confirm); records written before the confirmation existed have no verdict."""
    return bool(e.get("knobs_confirmed")) and e.get("knobs_verdict") is not None


def decide(e: dict) -> None:
    """Per task keep the fastest of edgec's rule schedule, the best tuned one and the best knob
    setting (the rule wins ties)."""
    cands = [(v, i, name) for i, (name, v) in enumerate(
        (("rule", (e.get("rule") or {}).get("latency_us")), ("knobs", best_knobs_us(e)), ("tuned", best_tuned_us(e))))
        if v is not None]
    e["best"] = min(cands)[2] if cands else None


def check_records_output(path: str | os.PathLike, inputs=()) -> None:
    """Before tuning: `path` can be written and is a new file or an edgec records file (resumed),
    never a user's unrelated file, a directory or one of `inputs` (the model)."""
    from edgec.output_paths import check_output_file

    check_output_file(path, "records file", inputs)
    if Path(path).exists():
        Records.load(path)  # RecordsError unless it is an edgec records file
