"""Reading files the user names (models, external data, plugins, tensors, tuning records) without
hanging or running out of memory.

A FIFO blocks a plain `open()`/`read()` until a writer appears (forever); /dev/zero and other
devices never end; a directory or socket is no file at all. So every such file is opened with
O_NONBLOCK (opening a FIFO then returns at once), checked with fstat on the *opened* descriptor
(no race with a rename in between) to be a regular file, and its size is compared with a limit
before a byte is read. Symlinks are followed: a link to /dev/zero is refused as the device it is.
Errors are one line, raised as the caller's `EdgecError` subclass (exit code 2).
"""

from __future__ import annotations

import os
import stat

from edgec.errors import EdgecError, ModelLoadError

PROTOBUF_MAX_BYTES = 2 << 30  # 2 GiB: protobuf cannot parse a larger message

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a file")


def _open_regular(path: str | os.PathLike, what: str, error: type[EdgecError]) -> tuple[int, os.stat_result]:
    """An open descriptor on `path` and its fstat, if it is a regular file; else `error`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise error(f"{what}: file not found") from None
    except ValueError:  # a NUL byte in the path
        raise error(f"{what}: not a valid path") from None
    except OSError as e:
        raise error(f"{what}: cannot open: {e.strerror}") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise error(f"{what}: not a regular file ({_kind(st.st_mode)})")
    return fd, st


def _check_size(size: int, what: str, max_bytes: int, error: type[EdgecError]) -> None:
    if size > max_bytes:
        raise error(f"{what}: {size:,} bytes, over the limit of {max_bytes:,} bytes for this file")


def check_regular_file(path: str | os.PathLike, what: str, error: type[EdgecError] = ModelLoadError,
                       max_bytes: int | None = None) -> int:
    """Refuse anything but an existing regular file (FIFO, device, socket, directory) without
    blocking; returns its size. For files another library reads afterwards (importlib, numpy,
    onnx-ir's external data)."""
    fd, st = _open_regular(path, what, error)
    os.close(fd)
    if max_bytes is not None:
        _check_size(st.st_size, what, max_bytes, error)
    return st.st_size


def read_regular_file(path: str | os.PathLike, what: str, error: type[EdgecError] = ModelLoadError,
                      max_bytes: int = PROTOBUF_MAX_BYTES) -> bytes:
    """The bytes of a regular file of at most `max_bytes`, refused before reading otherwise.
    A file whose size changes between fstat and read is refused too."""
    fd, st = _open_regular(path, what, error)
    with os.fdopen(fd, "rb") as f:
        _check_size(st.st_size, what, max_bytes, error)
        try:
            data = f.read(st.st_size + 1)  # not max_bytes + 1: read() allocates what it is asked for
        except OSError as e:
            raise error(f"{what}: cannot read: {e.strerror}") from None
    if len(data) != st.st_size:
        raise error(f"{what}: changed size while being read")
    return data

