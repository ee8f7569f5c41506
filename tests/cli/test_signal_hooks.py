"""A termination signal that lands inside a callback whose exceptions Python cannot propagate (the
import system's lock weakref callback, seen in CI under load) must not print "Exception ignored"
with a traceback: the flag keeps the signal, the CLI reports it in its one line."""

from __future__ import annotations

import signal
import sys
import weakref

from edgec.signals import Interrupted, _quiet_unraisable


def test_interrupt_in_an_unraisable_callback_is_quiet(capsys):
    seen = []
    hook = _quiet_unraisable(lambda u: seen.append(u.exc_type))
    old = sys.unraisablehook
    sys.unraisablehook = hook
    try:
        class Obj:
            pass

        def cb(_ref, signum=signal.SIGINT):
            raise Interrupted(signum)

        o = Obj()
        ref = weakref.ref(o, cb)  # noqa: F841 - kept alive so its callback runs when o dies
        del o                      # the callback raises; Python hands it to sys.unraisablehook

        def cb2(_ref):
            raise ValueError("other errors still reach the previous hook")

        o2 = Obj()
        ref2 = weakref.ref(o2, cb2)  # noqa: F841
        del o2
    finally:
        sys.unraisablehook = old
    assert seen == [ValueError]
    assert "Interrupted" not in capsys.readouterr().err
