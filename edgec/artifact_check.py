"""Checks an artifact directory before edgec loads or runs anything in it.

An artifact travels: it is copied to devices, unpacked from archives, edited by careless hands or
crafted by an attacker. Loading model.so runs its code, so nothing is loaded until
- metadata.json is a regular file of sane size, valid JSON, of the current format, and its
  checksum matches (an edit by hand, a truncation, an input shape changed in the metadata);
- its structure is what edgec writes (names are strings, shapes non-negative ints, dtypes known);
- every path it names (library, weights, runtime files, bundle) is a relative path that stays
  inside the artifact, through no symbolic link, and is listed in the file manifest;
- every file of the manifest is a regular file with the recorded size and SHA-256 (a model.so
  replaced by junk or truncated).
Every failure is a one-line ArtifactError (exit 2) naming the artifact and what is wrong.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np

from edgec.artifact import FORMAT, METADATA, file_hash, metadata_checksum
from edgec.errors import ArtifactError

MAX_METADATA_BYTES = 64 << 20


def check_artifact(p: Path) -> dict:
    """The metadata of the artifact at `p`, after every check above; ArtifactError otherwise."""
    if not p.is_dir():
        raise ArtifactError(f"{p}: not an artifact directory (run `edgec compile ... -o {p}` first)")
    meta = _read_metadata(p)
    where = f"{p / METADATA}"
    fmt = meta.get("format")
    if fmt != FORMAT:
        if isinstance(fmt, str) and fmt.startswith("edgec-artifact/"):
            raise ArtifactError(f"{where}: artifact format {fmt!r} is not {FORMAT!r}: compile the model again "
                                "with this edgec")
        raise ArtifactError(f"{where}: unknown artifact format {fmt!r}, expected {FORMAT}")
    if meta.get("checksum") != metadata_checksum(meta):
        raise ArtifactError(f"{where}: checksum mismatch: the metadata was modified after compile "
                            "(compile the model again)")
    _check_structure(meta, where)
    _check_files(p, meta["files"])
    return meta


def _read_metadata(p: Path) -> dict:
    path = p / METADATA
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise ArtifactError(f"{p}: no {METADATA}, not an edgec artifact") from None
    except OSError as e:
        raise ArtifactError(f"{path}: cannot read: {e.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ArtifactError(f"{path}: not a regular file")
    if st.st_size > MAX_METADATA_BYTES:
        raise ArtifactError(f"{path}: {st.st_size:,} bytes, too large for artifact metadata")
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except OSError as e:
        raise ArtifactError(f"{path}: cannot read: {e.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ArtifactError(f"{path}: corrupt metadata: {' '.join(str(e).split())[:200]}") from None
    if not isinstance(doc, dict):
        raise ArtifactError(f"{path}: corrupt metadata: not a JSON object")
    return doc


def _fail(where: str, what: str):
    raise ArtifactError(f"{where}: malformed metadata: {what}")


def _check_tensors(meta: dict, key: str, where: str) -> None:
    items = meta.get(key)
    if not isinstance(items, list):
        _fail(where, f"'{key}' is not a list")
    for i, t in enumerate(items):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            _fail(where, f"{key}[{i}] has no name")
        shape = t.get("shape")
        if not isinstance(shape, list) or not all((type(d) is int and d >= 0) or (type(d) is str and d)
                                                  for d in shape):
            _fail(where, f"{key}[{i}] '{t['name']}' shape {shape!r} is not a list of non-negative ints "
                         "and symbolic dim names")
        _check_dtype(t.get("dtype"), where, f"{key}[{i}] '{t['name']}'")


def _check_dtype(dtype, where: str, what: str) -> None:
    try:
        ok = isinstance(dtype, str) and np.dtype(dtype).kind in "biufc"
    except TypeError:
        ok = False
    if not ok:
        _fail(where, f"{what} dtype {dtype!r} is not a numeric dtype")


def _check_structure(meta: dict, where: str) -> None:
    files = meta.get("files")
    if not isinstance(files, dict) or not all(
            isinstance(k, str) and isinstance(v, dict) and type(v.get("bytes")) is int
            and isinstance(v.get("sha256"), str) for k, v in files.items()):
        _fail(where, "'files' is not a manifest of {path: {bytes, sha256}}")
    for rel in files:
        _check_relpath(rel, where, "file")
    _check_tensors(meta, "inputs", where)
    _check_tensors(meta, "outputs", where)
    if not isinstance(meta.get("target"), dict):
        _fail(where, "'target' is not an object")
    named = [("library", meta.get("library"))]
    runtime_files = meta.get("runtime_files", [])
    if not isinstance(runtime_files, list):
        _fail(where, "'runtime_files' is not a list")
    named += [("runtime file", f) for f in runtime_files]
    weights = meta.get("weights")
    if weights is not None:
        if not isinstance(weights, dict) or not isinstance(weights.get("tensors"), list):
            _fail(where, "'weights' is not an index of tensors")
        named.append(("weights file", weights.get("file")))
        for i, e in enumerate(weights["tensors"]):
            if not isinstance(e, dict) or not all(type(e.get(k)) is int and e[k] >= 0 for k in ("offset", "nbytes")):
                _fail(where, f"weights tensor {i} has no non-negative offset and nbytes")
            _check_dtype(e.get("dtype"), where, f"weights tensor {i}")
    for what, rel in named:
        _check_relpath(rel, where, what)
        if rel not in files:
            _fail(where, f"{what} {rel!r} is not in the file manifest")
    bundle = meta.get("bundle")
    if bundle is not None:
        _check_relpath(bundle, where, "bundle")
        if not any(f.startswith(f"{bundle}/") for f in files):
            _fail(where, f"bundle {bundle!r} lists no files in the manifest")


def _check_relpath(rel, where: str, what: str) -> None:
    """A plain relative path: no absolute path, no `..`, no empty or `.` part, no NUL/backslash."""
    if not isinstance(rel, str) or not rel or "\0" in rel or "\\" in rel or rel.startswith("/"):
        _fail(where, f"{what} path {rel!r} is not a relative path inside the artifact")
    if any(part in ("", ".", "..") for part in rel.split("/")):
        _fail(where, f"{what} path {rel!r} leaves the artifact or is not normalized")


def _check_files(p: Path, files: dict) -> None:
    root = p.resolve()
    for rel, info in files.items():
        f = root / rel
        # no symbolic link anywhere along the path: the file is the artifact's own
        for part in [*reversed(Path(rel).parents[:-1]), Path(rel)]:
            try:
                st = os.lstat(root / part)
            except FileNotFoundError:
                raise ArtifactError(f"{p}: {rel} is missing (the artifact is incomplete)") from None
            except OSError as e:
                raise ArtifactError(f"{p}: {rel}: cannot read: {e.strerror}") from None
            if stat.S_ISLNK(st.st_mode):
                raise ArtifactError(f"{p}: {part} is a symbolic link; an artifact holds only its own files")
        if not stat.S_ISREG(st.st_mode):
            raise ArtifactError(f"{p}: {rel} is not a regular file")
        if st.st_size != info["bytes"]:
            raise ArtifactError(f"{p}: {rel} has {st.st_size:,} bytes, the metadata records {info['bytes']:,} "
                                "(the file was changed or truncated)")
        try:
            digest = file_hash(f)
        except OSError as e:
            raise ArtifactError(f"{p}: {rel}: cannot read: {e.strerror}") from None
        if digest != info["sha256"]:
            raise ArtifactError(f"{p}: {rel} does not match its SHA-256 in the metadata (the file was changed)")
