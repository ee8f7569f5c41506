"""Every file and directory edgec writes for the user (--report, --dump-ir, run --output, optimize -o,
tune --records): checked before any work starts, written atomically, errors as one line.

- `check_output_file(path, what, inputs)` before the compile: refuses a path that is a directory,
  whose directory is missing, not a directory or not writable (read-only file system too), whose
  name is too long, or that names the same file as one of `inputs` (the model, an input tensor: a
  model with external data would be corrupted, like gcc's "input file is the same as output file").
- `check_output_dir_for_dump(path)`: a --dump-ir directory must be new, empty, or an earlier dump
  (only `NNN-pass.txt` files, which the new dump replaces); anything else is refused.
- `write_file_atomic(path, data, what)`: a temporary file in the same directory, then a rename;
  the temporary file is removed on any failure. Symbolic links are followed (the link's target is
  replaced), character devices (/dev/null) are written in place;
  FIFOs, sockets and block devices are refused (a FIFO without a reader would hang).

OS errors on these paths (EACCES, EROFS, ENOSPC, ENOTDIR, EISDIR, ENAMETOOLONG, ...) become an
`OutputPathError` naming the path: one line, exit 2.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from edgec.errors import EdgecError

#: The files of an IR dump (`DumpIR`): NNN-pass-name.txt.
DUMP_FILE_RE = re.compile(r"\d{3,}-[A-Za-z0-9_.+-]+\.txt")


class OutputPathError(EdgecError):
    """A path edgec was asked to write cannot or must not be written."""


def _reason(e: OSError) -> str:
    return e.strerror or type(e).__name__


def output_error(e: OSError, path, what: str) -> OutputPathError:
    """The one-line error for an OSError raised while writing the user's `path`."""
    return OutputPathError(f"cannot write {what} {path}: {_reason(e)}")


def _fail(path, what: str, why: str) -> OutputPathError:
    return OutputPathError(f"cannot write {what} {path}: {why}")


def _name_max(existing_dir: Path) -> int:
    try:
        return os.pathconf(existing_dir, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _nearest_existing(p: Path) -> Path:
    while not os.path.lexists(p) and p != p.parent:
        p = p.parent
    return p


def _check_dir_writable(d: Path, path, what: str) -> None:
    """`d` (the directory `path` goes into) exists, is a directory and is writable."""
    try:
        st = os.stat(d)
    except FileNotFoundError:
        raise _fail(path, what, f"directory {d} does not exist") from None
    except NotADirectoryError:
        raise _fail(path, what, f"{_nearest_existing(d)} is not a directory") from None
    except OSError as e:
        raise _fail(path, what, f"{d}: {_reason(e)}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise _fail(path, what, f"{d} is not a directory")
    if not os.access(d, os.W_OK | os.X_OK):
        try:
            ro = bool(os.statvfs(d).f_flag & os.ST_RDONLY)
        except OSError:
            ro = False
        raise _fail(path, what, f"{'read-only file system' if ro else 'permission denied'} (directory {d})")


def _check_name(p: Path, path, what: str) -> None:
    try:
        absolute = os.fsencode(os.path.abspath(p))
    except (UnicodeError, ValueError) as e:
        raise _fail(path, what, f"invalid file name ({e})") from None
    if b"\0" in absolute:
        raise _fail(path, what, "invalid file name (NUL character)")
    limit = _name_max(_nearest_existing(p.parent))
    for part in p.parts:
        if len(os.fsencode(part)) > limit:
            raise _fail(path, what, os.strerror(errno.ENAMETOOLONG))
    if len(absolute) >= 4096:
        raise _fail(path, what, os.strerror(errno.ENAMETOOLONG))


def _same(a: Path, b: Path) -> bool:
    try:
        if os.path.realpath(a) == os.path.realpath(b):
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def check_not_inputs(path, what: str, inputs: Iterable = ()) -> None:
    """`path` must not be the same file (or hard link, or link to) any of `inputs`; an input is a
    path or a (path, label) pair."""
    p = Path(path)
    for item in inputs:
        inp, label = item if isinstance(item, tuple) else (item, "input")
        if inp is not None and str(inp) and _same(p, Path(inp)):
            raise OutputPathError(f"{what} {path} is the same file as the {label} {inp}; refusing to overwrite it")


def check_outside(path, what: str, directory, label: str) -> None:
    """`path` must not be `directory` or inside it (e.g. the artifact directory, which a compile
    replaces as a whole and which holds only the artifact's own files)."""
    if directory is None or not str(directory):
        return
    p, d = Path(os.path.realpath(path)), Path(os.path.realpath(directory))
    if p == d or d in p.parents:
        raise OutputPathError(f"{what} {path} is inside the {label} {directory}; write it elsewhere")


def check_output_file(path, what: str, inputs: Iterable = (), will_create: Iterable = ()) -> Path:
    """Check, before any work, that the file `path` can be written atomically and is none of
    `inputs`. Directories in `will_create` are made by the same command before `path` is written
    (e.g. the artifact directory). Returns the path to write (symbolic links resolved)."""
    if path is None or not str(path).strip():
        raise OutputPathError(f"{what}: empty path")
    p = Path(path)
    _check_name(p, path, what)
    check_not_inputs(path, what, inputs)
    target = Path(os.path.realpath(p))
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        raise _fail(path, what, f"{_nearest_existing(target.parent)} is not a directory") from None
    except OSError as e:
        raise output_error(e, path, what) from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise _fail(path, what, "is a directory")
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISCHR(st.st_mode)):
            raise _fail(path, what, "is a FIFO, socket or block device; edgec writes regular files "
                                    "(or a character device such as /dev/null)")
        if stat.S_ISCHR(st.st_mode):  # /dev/null: written in place
            if not os.access(target, os.W_OK):
                raise _fail(path, what, "permission denied")
            return target
    if any(_same(target.parent, Path(d)) for d in will_create if d is not None):
        return target
    _check_dir_writable(target.parent, path, what)
    return target


def check_output_dir_for_dump(path, inputs: Iterable = ()) -> Path:
    """A --dump-ir directory: new, empty, or an earlier dump (only NNN-pass.txt files, replaced by
    the new dump). A non-empty directory holding anything else is refused: nothing of the user's
    is ever deleted or overwritten."""
    what = "IR dump directory"
    if path is None or not str(path).strip():
        raise OutputPathError(f"{what}: empty path")
    p = Path(path)
    _check_name(p, path, what)
    check_not_inputs(path, what, inputs)
    if p.exists() and not p.is_dir():
        raise _fail(path, what, "exists and is not a directory")
    if p.is_dir():
        try:
            names = os.listdir(p)
        except OSError as e:
            raise output_error(e, path, what) from None
        other = sorted(n for n in names if not (DUMP_FILE_RE.fullmatch(n) and (p / n).is_file()))
        if other:
            raise _fail(path, what, f"not empty and not an earlier IR dump (holds '{other[0]}'"
                        f"{f' and {len(other) - 1} more' if len(other) > 1 else ''}); "
                        "give a new or empty directory")
        _check_dir_writable(p, path, what)
    else:
        _check_dir_writable(_nearest_existing(p.parent), path, what)
    return p


def earlier_dump_files(directory: Path) -> list[Path]:
    """The NNN-pass.txt files of an earlier dump in `directory`."""
    try:
        return sorted(directory / n for n in os.listdir(directory)
                      if DUMP_FILE_RE.fullmatch(n) and (directory / n).is_file())
    except OSError:
        return []


def write_file_atomic(path, data: str | bytes | Callable, what: str = "file") -> Path:
    """Write `data` (text, bytes, or a function writing to a binary file object) to `path`: a
    temporary file in the same directory, then a rename over `path` (an existing file keeps its
    permission bits). OSErrors become an OutputPathError naming `path`."""
    target = Path(os.path.realpath(path))

    def _fill(f) -> None:
        if callable(data):
            data(f)
        else:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)

    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise output_error(e, path, what) from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise _fail(path, what, "is a directory")
    try:
        if st is not None and stat.S_ISFIFO(st.st_mode) | stat.S_ISSOCK(st.st_mode) | stat.S_ISBLK(st.st_mode):
            raise _fail(path, what, "is a FIFO, socket or block device; edgec writes regular files")
        if st is not None and not stat.S_ISREG(st.st_mode):  # /dev/null: in place
            with open(target, "wb") as f:
                _fill(f)
            return target
        mode = stat.S_IMODE(st.st_mode) if st is not None else 0o666  # new files: umask applies
        tmp = target.parent / f".{target.name[:64]}.edgec-tmp-{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
    except OSError as e:
        raise output_error(e, path, what) from None
    try:
        with os.fdopen(fd, "wb") as f:
            _fill(f)
        if st is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except OSError as e:
        raise output_error(e, path, what) from None
    finally:
        if os.path.lexists(tmp):
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return target
