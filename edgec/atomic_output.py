"""Writing an artifact directory at `-o` without ever losing the user's files.

`atomic_directory(dest)` yields a hidden temporary directory beside `dest` that replaces `dest`
only when the block completes: an interrupted or failed compile leaves the previous artifact
intact and no partial one. `check_destination(dest, inputs)` decides, before any work, whether
`dest` may be replaced at all: only an edgec artifact (or an empty directory) may; a directory
with anything else in it (a `docs/` folder, the model's own directory) is refused, exit 2.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from edgec.artifact import PARTIAL_MARK
from edgec.errors import ArtifactError
from edgec.signals import INTERRUPTS, deferred

# what older artifacts (before the file manifest) could hold
_LEGACY_ENTRIES = {"metadata.json", "model.h", "model.so", "model.tar", "weights.bin", "bundle", "model.plan",
                   "model.consts"}


def _is_artifact(d: Path) -> bool:
    """An edgec artifact directory holding nothing edgec did not write."""
    meta = d / "metadata.json"
    if meta.is_symlink() or not meta.is_file() or meta.stat().st_size > (64 << 20):
        return False
    try:
        doc = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(doc, dict) or not str(doc.get("format", "")).startswith("edgec-artifact/"):
        return False
    files = doc.get("files")
    known = ({str(f).split("/", 1)[0] for f in files} if isinstance(files, dict) else set(_LEGACY_ENTRIES))
    known |= {"metadata.json", str(doc.get("library", ""))}
    return all(e.name in known for e in d.iterdir())


def check_destination(dest: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """The absolute path `dest` as an artifact destination, or a one-line ArtifactError (exit 2)
    when writing there could destroy something that is not edgec's: an existing file, a symbolic
    link, a directory that is neither empty nor an artifact, a directory holding one of `inputs`,
    or a parent directory edgec cannot write."""
    if str(dest).strip() == "":
        raise ArtifactError("-o: the artifact directory name is empty")
    d = Path(dest).absolute()
    if d.is_symlink():
        raise ArtifactError(f"{d}: is a symbolic link; give the artifact directory itself")
    if d.exists() and not d.is_dir():
        raise ArtifactError(f"{d}: exists and is not a directory; edgec writes an artifact directory there")
    real = _resolve(d)
    for f in inputs:
        src = _resolve(Path(f).absolute())
        if src == real or real in src.parents:
            raise ArtifactError(f"{d}: holds the input {f}; choose another artifact directory")
    if d.is_dir():
        try:
            empty = not any(d.iterdir())
        except OSError as e:
            raise ArtifactError(f"{d}: cannot read the directory: {e.strerror}") from None
        if not empty and not _is_artifact(d):
            raise ArtifactError(f"{d}: exists and is not an edgec artifact (it holds other files); "
                                "edgec replaces only an artifact or an empty directory")
    parent = d.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ArtifactError(f"{d}: cannot create it: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ArtifactError(f"{d}: cannot write in {parent}: permission denied")
    return d


def _resolve(p: Path) -> Path:
    try:
        return p.resolve()
    except (OSError, RuntimeError) as e:  # a symbolic-link loop
        raise ArtifactError(f"{p}: cannot resolve the path: {' '.join(str(e).split())}") from None


@contextlib.contextmanager
def atomic_directory(dest: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Iterator[Path]:
    """Yield a temporary directory that replaces `dest` only if the block completes."""
    dest = check_destination(dest, inputs)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ArtifactError(f"{dest}: cannot create its directory: {e.strerror}") from None
    _clean_leftovers(dest)
    tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}"
    _remove_tree(tmp)
    try:
        try:
            tmp.mkdir()
            (tmp / PARTIAL_MARK).touch()
        except OSError as e:
            raise ArtifactError(f"{dest}: cannot write beside it: {e.strerror}") from None
        yield tmp
        INTERRUPTS.raise_if_seen()  # a signal some library swallowed: do not commit
        check_destination(dest, inputs)  # nobody put files there meanwhile
        with deferred():  # never stop between the two renames
            (tmp / PARTIAL_MARK).unlink()
            old = dest.parent / f".{dest.name}.old-{os.getpid()}"
            if dest.exists():
                os.rename(dest, old)
            try:
                os.rename(tmp, dest)
            except OSError:
                if old.exists():
                    os.rename(old, dest)
                raise
            _remove_tree(old)
    except BaseException:
        # An interrupt leaves the compiler/linker subprocesses the build started still running
        # (subprocess.communicate does not kill them): stop those writing into `tmp`.
        with deferred():
            _terminate_writers(tmp)
        raise
    finally:
        with deferred():
            _remove_tree(tmp)


def _clean_leftovers(dest: Path) -> None:
    """Remove what a killed compile left beside `dest`: temporary directories (marked, of dead
    processes), and a previous artifact moved aside between the two renames of the commit."""
    for stale in dest.parent.glob(f".{dest.name}.tmp-*"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(stale.name.rsplit("-", 1)[1])
            if stale.is_symlink() or not stale.is_dir():
                continue
            # ours: marked, or still empty (killed between its mkdir and the marker)
            if not (stale / PARTIAL_MARK).is_file() and any(stale.iterdir()):
                continue
            if _alive(pid):
                continue  # still running
            _remove_tree(stale)
    for backup in dest.parent.glob(f".{dest.name}.old-*"):
        if backup.is_symlink() or not backup.is_dir() or not _is_artifact(backup):
            continue
        if dest.exists():
            _remove_tree(backup)
        else:
            os.rename(backup, dest)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _terminate_writers(tmp: Path) -> None:
    """SIGTERM descendants of this process whose command line names `tmp` (Linux /proc)."""
    pids, frontier = [], [os.getpid()]
    while frontier:
        for task in Path(f"/proc/{frontier.pop()}/task").glob("*/children"):
            with contextlib.suppress(OSError, ValueError):
                kids = [int(p) for p in task.read_text().split()]
                pids += kids
                frontier += kids
    needle = str(tmp).encode()
    writers = []
    for pid in pids:
        with contextlib.suppress(OSError):
            if needle in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGTERM)
                writers.append(pid)
    deadline = time.monotonic() + 2.0
    while writers and time.monotonic() < deadline:
        writers = [p for p in writers if not _is_zombie(p)]
        time.sleep(0.02)


def _is_zombie(pid: int) -> bool:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    return True


def _remove_tree(path: Path, attempts: int = 10) -> None:
    """rmtree that retries: an interrupted build may still be finishing a write into `path`."""
    for i in range(attempts):
        if path.is_symlink():
            path.unlink()
            return
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            return
        time.sleep(0.05 * (i + 1))
