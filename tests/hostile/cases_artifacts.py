"""Tampered artifacts given to `edgec run` / `edgec bench`: an artifact is checked (format, files,
sizes, hashes in its metadata) before anything in it is loaded, and every path it names stays
inside it. The "evil" library is a real shared object whose constructor creates a marker file:
the marker must never appear."""

from __future__ import annotations

import json
import os
import random

from tests.hostile.harness import SMALL_CNN, CaseDir, Group, Spec

artifacts = Group("artifacts")
CASES = artifacts.cases


def _meta(d: CaseDir, art: str = "art") -> dict:
    return json.loads(d.path(f"{art}/metadata.json").read_text())


def _set_meta(d: CaseDir, meta, art: str = "art") -> None:
    d.path(f"{art}/metadata.json").write_text(json.dumps(meta, indent=1) if not isinstance(meta, str) else meta)


def _run(art: str = "art", *, words: tuple[str, ...] = ("art",), bench: bool = False, timeout: float = 60,
         never: tuple[str, ...] = ()) -> Spec:
    argv = ["bench", art, "-n", "2", "--warmup", "0"] if bench else ["run", art]
    return Spec(argv, code=2, words=words, timeout=timeout, never=never)


def _marker(d: CaseDir) -> str:
    return str(d.base / "EVIL_LIBRARY_WAS_LOADED")  # outside the case dir: only the constructor writes it


@artifacts
def pristine_run(d: CaseDir) -> Spec:
    """The untampered copy runs and matches onnxruntime (the baseline of this group)."""
    art = d.artifact()
    model = d.small_cnn()
    assert SMALL_CNN.is_file()
    return Spec(["run", art, "--compare-onnx", model], code=0)


@artifacts
def metadata_truncated(d: CaseDir) -> Spec:
    art = d.artifact()
    p = d.path(f"{art}/metadata.json")
    p.write_bytes(p.read_bytes()[:200])
    return _run(words=("metadata.json",))


@artifacts
def metadata_not_json(d: CaseDir) -> Spec:
    d.artifact()
    d.path("art/metadata.json").write_bytes(random.Random(3).randbytes(512))
    return _run(words=("metadata.json",))


@artifacts
def metadata_not_an_object(d: CaseDir) -> Spec:
    d.artifact()
    _set_meta(d, "[1, 2, 3]\n")
    return _run(words=("metadata.json",))


@artifacts
def metadata_is_a_directory(d: CaseDir) -> Spec:
    d.artifact()
    d.path("art/metadata.json").unlink()
    d.path("art/metadata.json").mkdir()
    return _run(words=("metadata.json",))


@artifacts
def metadata_is_a_fifo(d: CaseDir) -> Spec:
    d.artifact()
    d.path("art/metadata.json").unlink()
    d.fifo("art/metadata.json")
    return _run(words=("metadata.json",), timeout=20)


@artifacts
def metadata_is_dev_zero(d: CaseDir) -> Spec:
    d.artifact()
    d.path("art/metadata.json").unlink()
    d.symlink("art/metadata.json", "/dev/zero")
    return _run(words=("metadata.json",), timeout=30)


@artifacts
def metadata_input_shape_edited(d: CaseDir) -> Spec:
    d.artifact()
    meta = _meta(d)
    meta["inputs"][0]["shape"] = [1, 3, 64, 64]
    _set_meta(d, meta)
    return _run()


@artifacts
def metadata_input_shape_bomb(d: CaseDir) -> Spec:
    """The edited shape asks `run` for 4e12 random floats."""
    d.artifact()
    meta = _meta(d)
    meta["inputs"][0]["shape"] = [100000, 100000, 100, 1]
    _set_meta(d, meta)
    return _run(timeout=30)


@artifacts
def metadata_dtype_edited(d: CaseDir) -> Spec:
    d.artifact()
    meta = _meta(d)
    meta["inputs"][0]["dtype"] = "float16"
    _set_meta(d, meta)
    return _run()


@artifacts
def metadata_output_shape_edited(d: CaseDir) -> Spec:
    d.artifact()
    meta = _meta(d)
    meta["outputs"][0]["shape"] = [1, 1000]
    _set_meta(d, meta)
    return _run()


@artifacts
def metadata_missing_keys(d: CaseDir) -> Spec:
    d.artifact()
    meta = _meta(d)
    for k in ("inputs", "target"):
        meta.pop(k, None)
    _set_meta(d, meta)
    return _run()


@artifacts
def unknown_format_version(d: CaseDir) -> Spec:
    d.artifact()
    meta = _meta(d)
    meta["format"] = "edgec-artifact/99"
    _set_meta(d, meta)
    return _run(words=("format",))


@artifacts
def library_path_dotdot(d: CaseDir) -> Spec:
    d.artifact()
    marker = _marker(d)
    d.evil_library("evil.so", marker)
    meta = _meta(d)
    meta["library"] = "../evil.so"
    _set_meta(d, meta)
    return _run(never=(marker,))


@artifacts
def library_path_absolute(d: CaseDir) -> Spec:
    d.artifact()
    marker = _marker(d)
    evil = d.evil_library("evil.so", marker)
    meta = _meta(d)
    meta["library"] = str(d.path(evil))
    _set_meta(d, meta)
    return _run(never=(marker,))


@artifacts
def library_symlink_outside(d: CaseDir) -> Spec:
    """metadata.json is untouched; model.so became a symlink to a library outside the artifact."""
    d.artifact()
    marker = _marker(d)
    d.evil_library("evil.so", marker)
    d.path("art/model.so").unlink()
    d.symlink("art/model.so", "../evil.so")
    return _run(never=(marker,))


@artifacts
def library_swapped_for_evil(d: CaseDir) -> Spec:
    """model.so overwritten in place by another (evil) library: only its hash can tell."""
    d.artifact()
    marker = _marker(d)
    d.evil_library("art/model.so", marker)
    return _run(never=(marker,))


@artifacts
def library_is_junk(d: CaseDir) -> Spec:
    d.artifact()
    d.write("art/model.so", random.Random(5).randbytes(4096))
    return _run(words=("model.so",))


@artifacts
def library_truncated(d: CaseDir) -> Spec:
    d.artifact()
    p = d.path("art/model.so")
    p.write_bytes(p.read_bytes()[: os.path.getsize(p) // 2])
    return _run(words=("model.so",))


@artifacts
def library_deleted(d: CaseDir) -> Spec:
    d.artifact()
    d.path("art/model.so").unlink()
    return _run(words=("model.so",))


@artifacts
def weights_file_escapes(d: CaseDir) -> Spec:
    d.artifact()
    d.write("w.bin", b"\0" * 4096)
    meta = _meta(d)
    meta["weights"] = {"file": "../w.bin", "tensors": {}}
    _set_meta(d, meta)
    return _run()


@artifacts
def runtime_file_escapes(d: CaseDir) -> Spec:
    d.artifact()
    marker = _marker(d)
    d.evil_library("evil.so", marker)
    meta = _meta(d)
    meta["runtime_files"] = ["../evil.so"]
    _set_meta(d, meta)
    return _run(never=(marker,))


@artifacts
def bench_input_shape_edited(d: CaseDir) -> Spec:
    d.artifact()
    meta = _meta(d)
    meta["inputs"][0]["shape"] = [1, 3, 16, 16]
    _set_meta(d, meta)
    return _run(bench=True)


@artifacts
def bench_library_dotdot(d: CaseDir) -> Spec:
    d.artifact()
    marker = _marker(d)
    d.evil_library("evil.so", marker)
    meta = _meta(d)
    meta["library"] = "../evil.so"
    _set_meta(d, meta)
    return _run(bench=True, never=(marker,))


@artifacts
def bench_library_junk(d: CaseDir) -> Spec:
    d.artifact()
    d.write("art/model.so", b"\x7fELF" + random.Random(9).randbytes(2048))
    return _run(bench=True, words=("model.so",))
