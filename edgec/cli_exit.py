"""How the CLI ends on an error: one line on stderr and an exit code (2: the user's input or
environment, 1: edgec's own bug, 128 + N: interrupted by signal N)."""

from __future__ import annotations

import errno
import signal
import sys

import click

from edgec.signals import INTERRUPTS, Interrupted

EXIT_USER, EXIT_INTERNAL = 2, 1
EXIT_MISMATCH = 3  # edgec run --compare-onnx: outputs differ beyond the tolerance

# OSErrors that say what is wrong with the machine (permissions, a full or read-only disk, limits),
# never with edgec. ENOTDIR/EISDIR/ELOOP are not here: the user's paths are checked before the work
# (edgec.output_paths, edgec.atomic_output), so one of those later is more likely edgec's own bug.
ENVIRONMENT_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENAMETOOLONG,
                       errno.EMFILE, errno.ENFILE}


def os_error_line(e: OSError) -> str:
    where = f"{e.filename}: " if e.filename else ""
    return f"{where}{e.strerror or e}"


def interrupted(e: BaseException | None) -> None:
    """`edgec: interrupted` (naming SIGTERM / SIGHUP), exit 128 + the signal number."""
    signum = e.signum if isinstance(e, Interrupted) else INTERRUPTS.signum or signal.SIGINT
    name = "" if signum == signal.SIGINT else f" ({signal.Signals(signum).name})"
    click.echo(f"edgec: interrupted{name}", err=True)
    sys.exit(128 + signum)


def internal(e: BaseException) -> None:
    click.echo(f"edgec: internal error: {type(e).__name__}: {' '.join(str(e).split())[:300]} "
               "(rerun with --debug for the traceback)", err=True)
    sys.exit(EXIT_INTERNAL)
