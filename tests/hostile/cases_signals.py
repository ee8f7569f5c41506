"""Signals mid-compile: SIGTERM and SIGHUP behave like SIGINT. The signal is sent to the edgec
process once its temporary directory `.out.tmp-*` appears beside -o (the backend is building);
edgec must clean up and exit 128 + the signal number with one line `edgec: interrupted ...`,
leave no temporary directory and nothing in TMPDIR, and keep the previous artifact intact."""

from __future__ import annotations

import signal

from tests.hostile.harness import CaseDir, Group, Spec, compile_argv

signals = Group("signals")
CASES = signals.cases


def _interrupted(d: CaseDir, sig: int, previous: bool = True) -> Spec:
    return Spec(compile_argv(d.small_cnn()), signal=sig, timeout=120, previous=previous)


@signals
def sigint(d: CaseDir) -> Spec:
    return _interrupted(d, signal.SIGINT)


@signals
def sigterm(d: CaseDir) -> Spec:
    return _interrupted(d, signal.SIGTERM)


@signals
def sighup(d: CaseDir) -> Spec:
    return _interrupted(d, signal.SIGHUP)


@signals
def sigterm_first_compile(d: CaseDir) -> Spec:
    """No previous artifact: after the signal, -o must not exist at all."""
    return _interrupted(d, signal.SIGTERM, previous=False)
