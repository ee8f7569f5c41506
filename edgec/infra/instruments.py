"""Pass instruments: hooks called around every pass run (timing, IR dumps, statistics)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import onnx_ir as ir

from edgec.ir.analysis import node_count, op_histogram


class Instrument:
    """Base: override any hook."""

    def before_pass(self, pass_, model: ir.Model, ctx) -> None:
        pass

    def after_pass(self, pass_, model: ir.Model, ctx, result, seconds: float) -> None:
        pass


@dataclass
class PassRecord:
    name: str
    spec: str
    iteration: int
    seconds: float
    modified: bool
    nodes_before: int
    nodes_after: int
    op_delta: dict[str, int]
    rules: dict[str, dict] = field(default_factory=dict)  # rule -> {"hits": n, "at": [root node names]}

    def to_json(self) -> dict:
        """The record as metadata.json keeps it: no wall time, so that the same model and options
        give the same artifact bytes (times go to the build info: `edgec.api.build_info`)."""
        return {
            "pass": self.spec, "iteration": self.iteration,
            "modified": self.modified, "nodes_before": self.nodes_before,
            "nodes_after": self.nodes_after, "op_delta": self.op_delta,
            **({"rules": self.rules} if self.rules else {}),
        }


@dataclass
class Statistics(Instrument):
    """Records time, node counts and the op-histogram delta of every pass run."""

    records: list[PassRecord] = field(default_factory=list)
    _before: tuple = ()
    _iteration: int = 0

    def set_iteration(self, i: int) -> None:
        self._iteration = i

    def before_pass(self, pass_, model, ctx):
        self._before = (node_count(model), op_histogram(model))

    def after_pass(self, pass_, model, ctx, result, seconds):
        n0, h0 = self._before
        h1 = op_histogram(result.model)
        delta = {k: h1.get(k, 0) - h0.get(k, 0) for k in set(h0) | set(h1) if h1.get(k, 0) != h0.get(k, 0)}
        trace = getattr(pass_, "last_trace", None)  # set by rewrite-rule passes on every run
        rules = {r: {"hits": n, "at": list(trace.where.get(r, []))} for r, n in sorted(trace.hits.items())} if trace else {}
        self.records.append(PassRecord(pass_.name, pass_.spec(), self._iteration, seconds, result.modified,
                                       n0, node_count(result.model), dict(sorted(delta.items())), rules))


@dataclass
class Timing(Instrument):
    """Prints each pass's wall time (to a stream)."""

    stream: object = None

    def before_pass(self, pass_, model, ctx):
        self._t = time.perf_counter()

    def after_pass(self, pass_, model, ctx, result, seconds):
        print(f"[edgec] {pass_.spec():40s} {seconds * 1e3:9.2f} ms  modified={result.modified}", file=self.stream)


@dataclass
class DumpIR(Instrument):
    """Writes the model as ONNX text after every pass into `directory` (NNN-pass-name.txt).

    The directory must be new, empty or an earlier dump (only NNN-pass-name.txt files): checked
    when the instrument is made, before any pass runs. The earlier dump's files are removed when the
    first pass finishes (so the directory never mixes two runs); nothing else is ever deleted."""

    directory: Path = Path("edgec-dump")
    _n: int = 0

    def __post_init__(self):
        from edgec.output_paths import check_output_dir_for_dump

        self.directory = Path(self.directory)
        check_output_dir_for_dump(self.directory)

    def after_pass(self, pass_, model, ctx, result, seconds):
        from edgec.output_paths import (
            check_output_dir_for_dump,
            earlier_dump_files,
            output_error,
            write_file_atomic,
        )

        if self._n == 0:
            check_output_dir_for_dump(self.directory)  # still new, empty or an earlier dump
            try:
                for f in earlier_dump_files(self.directory):
                    f.unlink()
                self.directory.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise output_error(e, self.directory, "IR dump directory") from None
        self._n += 1
        write_file_atomic(self.directory / f"{self._n:03d}-{pass_.name}.txt", ir.to_onnx_text(result.model), "IR dump")
