"""Termination signals: SIGINT, SIGTERM and SIGHUP all stop edgec the same way.

Each raises `Interrupted` in the main thread, so every `finally` and `except BaseException` on the
way out runs: the artifact's temporary directory is removed, the
previous artifact at `-o` stays intact, and child compilers writing into the temporary directory
are stopped. The CLI then prints `edgec: interrupted (SIGTERM)` and exits 128 + the signal number,
as a shell reports a process killed by that signal.

A signal ignored when edgec starts (`nohup` ignores SIGHUP, a parent may ignore SIGINT) stays
ignored: the user asked for that.
"""

from __future__ import annotations

import contextlib
import signal
import sys

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """A termination signal arrived (`signum` says which). A BaseException like KeyboardInterrupt,
    so `except Exception` does not absorb it; not a KeyboardInterrupt, which click would answer
    with an extra blank line on stderr."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _InterruptFlag:
    """Remembers a termination signal even when a library swallowed the exception it raised.

    TVM wraps a KeyboardInterrupt raised inside a Python callback (a schedule rule, a pass) into an
    FFI error, which a fallback `except Exception` may then absorb: the compile would finish and
    commit the artifact although the user pressed Ctrl-C. `atomic_directory` checks this flag
    before it commits, and the CLI before it reports success.
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def seen(self) -> bool:
        return self.signum is not None

    def install(self) -> None:
        for sig in HANDLED:
            current = signal.getsignal(sig)
            if current is signal.default_int_handler or current is signal.SIG_DFL:
                signal.signal(sig, self._handle)
        if not getattr(sys.unraisablehook, "_edgec", False):
            sys.unraisablehook = _quiet_unraisable(sys.unraisablehook)

    def raise_if_seen(self) -> None:
        if self.signum is not None:
            raise Interrupted(self.signum)

    def _handle(self, signum, frame):
        self.signum = signum
        raise Interrupted(signum)


def _quiet_unraisable(previous):
    """A signal that lands while Python runs a callback whose exceptions it cannot propagate (an
    import lock's weakref callback, a __del__) has its `Interrupted` "ignored", with a traceback on
    stderr. The flag still holds the signal, and the CLI re-raises it at its next check: keep stderr
    to the one `edgec: interrupted` line."""

    def hook(unraisable):
        if isinstance(unraisable.exc_value, Interrupted):
            return
        previous(unraisable)

    hook._edgec = True
    return hook


INTERRUPTS = _InterruptFlag()


@contextlib.contextmanager
def deferred():
    """Hold termination signals back while the block runs (a commit's two renames, a cleanup);
    one that arrived meanwhile is delivered when the block ends."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
