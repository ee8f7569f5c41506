"""Progress display: one line per task with trials and best-so-far latency. On a TTY the line is
rewritten in place as results arrive; otherwise each task prints plain lines (start, end)."""

from __future__ import annotations

import sys
import time

from edgec.targets.tvm.tune.records import best_knobs_us


def fmt_us(us: float | None) -> str:
    if us is None:
        return "-"
    return f"{us / 1000:.3f} ms" if us >= 1000 else f"{us:.1f} us"


class Progress:
    def __init__(self, stream=None, tty: bool | None = None, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.quiet = quiet
        self.t0 = time.monotonic()
        self._open = False

    def _elapsed(self) -> str:
        s = int(time.monotonic() - self.t0)
        return f"{s // 60:d}:{s % 60:02d}"

    def _line(self, i: int, n: int, name: str, entry: dict, budget: int, status: str) -> str:
        rule = (entry.get("rule") or {}).get("latency_us")
        tuned = entry["tuned"][0]["latency_us"] if entry.get("tuned") else None
        knobs = entry["knobs"][0]["latency_us"] if entry.get("knobs") else None
        verdict = entry.get("knobs_verdict")
        # unconfirmed knobs never count as best
        best = min([x for x in (rule, tuned, best_knobs_us(entry)) if x is not None], default=None)
        gain = f" ({rule / best:.2f}x vs rules)" if rule and best else ""
        err = f", {entry.get('errors', 0)} failed" if entry.get("errors") else ""
        found = (f"knobs {fmt_us(knobs)}{f' ({verdict})' if verdict in ('accepted', 'rejected') else ''}"
                 if "knob_trials" in entry else f"tuned {fmt_us(tuned)}")
        done = entry.get("knob_trials", entry.get("trials", 0))
        return (f"[{self._elapsed()}] task {i}/{n} {name[:40]:<40} trials {done}/{budget}{err}  "
                f"rules {fmt_us(rule)}  {found}  best {fmt_us(best)}{gain}  {status}")

    def update(self, i: int, n: int, name: str, entry: dict, budget: int, status: str = "tuning") -> None:
        if self.quiet:
            return
        line = self._line(i, n, name, entry, budget, status)
        if self.tty:
            self.stream.write("\r\x1b[2K" + line)
            self._open = True
            self.stream.flush()

    def done(self, i: int, n: int, name: str, entry: dict, budget: int, status: str = "done") -> None:
        if self.quiet:
            return
        line = self._line(i, n, name, entry, budget, status)
        self.stream.write(("\r\x1b[2K" if self.tty else "") + line + "\n")
        self._open = False
        self.stream.flush()

    def message(self, text: str) -> None:
        if self.quiet:
            return
        if self._open:
            self.stream.write("\n")
            self._open = False
        self.stream.write(text + "\n")
        self.stream.flush()
