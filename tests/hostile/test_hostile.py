"""The hostile-input suite of issue 11: one test per case (tests/hostile/cases_*.py), judged by
tests/hostile/harness.py. The cases run as real `edgec` processes, several at a time (the
selected ones, when the session starts); each test reports its own case. docs/hostile.md has the
rules and the case list."""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.hostile import (
    cases_artifacts,
    cases_cli,
    cases_external,
    cases_files,
    cases_names,
    cases_signals,
    cases_sizes,
)
from tests.hostile.harness import Case, Session, run_case

# the slowest first, so that the pool's tail is short
ALL: list[Case] = [*cases_signals.CASES, *cases_sizes.CASES, *cases_names.CASES, *cases_files.CASES,
                   *cases_external.CASES, *cases_artifacts.CASES, *cases_cli.CASES]


def _jobs() -> int:
    return int(os.environ.get("EDGEC_HOSTILE_JOBS") or max(1, min(os.cpu_count() or 2, 4)))


@pytest.fixture(scope="session")
def hostile_results(request, tmp_path_factory):
    """Runs every selected case once (in parallel) and maps its name to (broken rules, outcome)."""
    selected = {item.callspec.params["case"].name for item in request.session.items
                if getattr(item, "callspec", None) is not None and isinstance(item.callspec.params.get("case"), Case)}
    root = tmp_path_factory.mktemp("hostile")
    session = Session(root)
    session.artifact  # compile the previous artifact once, before the pool starts
    todo = [c for c in ALL if c.name in selected]

    def one(case: Case):
        try:
            return case.name, run_case(case, session, root / re.sub(r"[^\w.-]", "_", case.name))
        except Exception as e:  # a harness or set-up error is that case's failure, not the session's
            return case.name, ([f"harness error: {type(e).__name__}: {e}"], None)

    with ThreadPoolExecutor(_jobs()) as pool:
        results = dict(pool.map(one, todo))
    summary = {name: {"exit": out.returncode if out else None, "seconds": round(out.seconds, 2) if out else None,
                      "maxrss_mib": round(out.maxrss_kib / 1024) if out else None,
                      "descendants_maxrss_mib": round(out.descendants_maxrss_kib / 1024) if out else None,
                      "failures": fails} for name, (fails, out) in results.items()}
    (root / "results.json").write_text(json.dumps(summary, indent=1))  # for CI logs; pytest prints nothing
    return results


@pytest.mark.parametrize("case", ALL, ids=[c.name for c in ALL])
def test_hostile(case: Case, hostile_results):
    fails, out = hostile_results[case.name]
    if fails:
        where = f" (exit {out.returncode}, {out.seconds:.1f} s, {out.maxrss_kib / 1024:.0f} MiB)" if out else ""
        pytest.fail(f"{case.name}{where}:\n  " + "\n  ".join(fails), pytrace=False)
