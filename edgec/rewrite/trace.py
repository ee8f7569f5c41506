"""RewriteTrace: per-rule hit counts and decline reasons (printed by `--trace-rewrites`).

It is also an `Instrument`: put one in `PassContext.instruments` and every `RewriteRulePass`
in the pipeline adds its counts to it, keyed `pass-name/RuleName`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from edgec.infra.instruments import Instrument


@dataclass
class RewriteTrace(Instrument):
    hits: Counter = field(default_factory=Counter)
    declines: defaultdict = field(default_factory=lambda: defaultdict(Counter))
    skipped: dict = field(default_factory=dict)
    where: defaultdict = field(default_factory=lambda: defaultdict(list))  # rule -> root node names

    def hit(self, rule: str, where: str = "") -> None:
        self.hits[rule] += 1
        if where:
            self.where[rule].append(where)

    def decline(self, rule: str, reason: str) -> None:
        self.declines[rule][reason] += 1

    def skip(self, rule: str, reason: str) -> None:
        self.skipped[rule] = reason

    def merge(self, other: RewriteTrace, prefix: str = "") -> None:
        key = (lambda r: f"{prefix}/{r}") if prefix else (lambda r: r)
        for r, n in other.hits.items():
            self.hits[key(r)] += n
        for r, names in other.where.items():
            self.where[key(r)].extend(names)
        for r, reasons in other.declines.items():
            self.declines[key(r)].update(reasons)
        for r, why in other.skipped.items():
            self.skipped[key(r)] = why

    def rules(self) -> list[str]:
        return sorted(set(self.hits) | set(self.declines) | set(self.skipped))

    def to_json(self) -> dict:
        return {r: {"hits": self.hits.get(r, 0), "declines": dict(self.declines.get(r, {})),
                    **({"at": list(self.where[r])} if self.where.get(r) else {}),
                    **({"skipped": self.skipped[r]} if r in self.skipped else {})} for r in self.rules()}

    def format(self, max_reasons: int = 5) -> str:
        if not self.rules():
            return "rewrite trace: no rules ran"
        lines = ["rewrite trace:"]
        for r in self.rules():
            declined = sum(self.declines.get(r, Counter()).values())
            lines.append(f"  {r}: {self.hits.get(r, 0)} hit(s), {declined} decline(s)")
            if self.where.get(r):
                names = self.where[r]
                more = f" (+{len(names) - 8} more)" if len(names) > 8 else ""
                lines.append(f"    at: {', '.join(names[:8])}{more}")
            if r in self.skipped:
                lines.append(f"    skipped: {self.skipped[r]}")
            for reason, n in self.declines.get(r, Counter()).most_common(max_reasons):
                lines.append(f"    {n}x {reason}")
        return "\n".join(lines)

    __str__ = format
