"""Careless paths and target options (issue 11): every path edgec writes is checked before the work
starts; a bad one is exit 2, exactly one stderr line `edgec: error: ...` naming the path, and
nothing created, changed or deleted. Unknown --mcpu/--mattr names are refused the same way."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from tests.conftest import EXAMPLES, model_from_text

CNN = EXAMPLES / "small_cnn.onnx"
ROOT = os.geteuid() == 0  # chmod does not bind for root: a path under a file (ENOTDIR) instead


def snapshot(*dirs: Path) -> dict:
    """Every entry under `dirs`: kind, mode, size, mtime and content hash."""
    snap = {}
    for d in dirs:
        for p in [d, *sorted(d.rglob("*"))]:
            st = p.lstat()
            digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() and not p.is_symlink() else ""
            snap[str(p)] = (st.st_mode, st.st_size if p.is_file() else 0, digest,
                            st.st_mtime_ns if not p.is_dir() else 0)
    return snap


def assert_refused(r, *names) -> None:
    assert r.code == 2, r
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgec: error: "), r.err
    assert "Traceback" not in r.err
    for n in names:
        assert str(n) in lines[0], (n, lines[0])


def unwritable_dir(tmp_path: Path) -> Path:
    """A directory nothing can be written into: read-only (mode 0555), or for root (where modes do
    not bind) a path below a regular file."""
    if ROOT:
        f = tmp_path / "a-file"
        f.write_text("not a directory\n")
        return f / "sub"
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    return d


@pytest.fixture
def model(tmp_path) -> Path:
    m = tmp_path / "small_cnn.onnx"
    shutil.copy(CNN, m)
    return m


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    from edgec.api import CompileOptions, compile_model

    d = tmp_path_factory.mktemp("art")
    onnx.save(model_from_text('<ir_version: 8, opset_import: ["" : 17]>\n'
                              "g (float[2,3] x) => (float[2,3] y) { y = Abs(x) }"), d / "abs.onnx")
    return compile_model(d / "abs.onnx", d / "art", CompileOptions(target="x86-64", opt_level=0)).path


def _refused(run_cli, tmp_path, argv, *names, extra_dirs=()):
    before = snapshot(tmp_path, *extra_dirs)
    r = run_cli(*argv)
    assert_refused(r, *names)
    assert snapshot(tmp_path, *extra_dirs) == before
    return r


# --dump-ir ---------------------------------------------------------------------------------------

def test_dump_ir_existing_file(run_cli, tmp_path, model):
    f = tmp_path / "dump"
    f.write_text("my notes\n")
    r = _refused(run_cli, tmp_path, ["compile", model, "-t", "x86-64", "-o", tmp_path / "out", "--dump-ir", f], f)
    assert "not a directory" in r.err


def test_dump_ir_foreign_nonempty_directory(run_cli, tmp_path, model):
    d = tmp_path / "docs"
    d.mkdir()
    (d / "readme.md").write_text("keep me\n")
    (d / "001-old.txt").write_text("looks like a dump file\n")
    r = _refused(run_cli, tmp_path, ["optimize", model, "-o", tmp_path / "o.onnx", "--dump-ir", d], d)
    assert "readme.md" in r.err


def test_dump_ir_unwritable(run_cli, tmp_path, model):
    d = unwritable_dir(tmp_path) / "dump"
    _refused(run_cli, tmp_path, ["optimize", model, "-o", tmp_path / "o.onnx", "--dump-ir", d], d)


def test_dump_ir_earlier_dump_is_replaced(run_cli, tmp_path, model):
    d = tmp_path / "dump"
    d.mkdir()
    (d / "001-old-pass.txt").write_text("old\n")
    (d / "999-stale.txt").write_text("old\n")
    r = run_cli("optimize", model, "-o", tmp_path / "o.onnx", "--dump-ir", d, "--passes", "fold-constants")
    assert r.code == 0, r
    assert sorted(p.name for p in d.iterdir()) == ["001-fold-constants.txt"]


def test_dump_ir_is_the_artifact_directory(run_cli, tmp_path, model):
    out = tmp_path / "out"
    _refused(run_cli, tmp_path, ["compile", model, "-t", "x86-64", "-o", out, "--dump-ir", out], out)


def test_dump_ir_inside_the_artifact_directory(run_cli, tmp_path, model):
    d = tmp_path / "out" / "dump"
    _refused(run_cli, tmp_path, ["compile", model, "-t", "x86-64", "-o", tmp_path / "out", "--dump-ir", d], d)


# --report ----------------------------------------------------------------------------------------

def test_report_is_a_directory(run_cli, tmp_path, model):
    d = tmp_path / "report.html"
    d.mkdir()
    r = _refused(run_cli, tmp_path, ["compile", model, "-t", "x86-64", "-o", tmp_path / "out", "--report", d], d)
    assert "is a directory" in r.err


def test_report_parent_missing(run_cli, tmp_path, model):
    p = tmp_path / "no" / "such" / "report.html"
    r = _refused(run_cli, tmp_path, ["compile", model, "-t", "x86-64", "-o", tmp_path / "out", "--report", p], p)
    assert "does not exist" in r.err


def test_report_parent_unwritable(run_cli, tmp_path, model):
    p = unwritable_dir(tmp_path) / "report.html"
    _refused(run_cli, tmp_path, ["compile", model, "-t", "x86-64", "-o", tmp_path / "out", "--report", p], p)


def test_report_is_the_model(run_cli, tmp_path, model):
    r = _refused(run_cli, tmp_path, ["compile", model, "-t", "x86-64", "-o", tmp_path / "out", "--report", model], model)
    assert "same file" in r.err


def test_report_inside_the_artifact_directory(run_cli, tmp_path, model):
    """The artifact directory holds only the artifact's files (a later compile would refuse to
    replace it), so a report there is refused before compiling."""
    out = tmp_path / "out"
    p = out / "report.html"
    r = _refused(run_cli, tmp_path, ["compile", model, "-t", "x86-64", "-o", out, "--report", p], p)
    assert "artifact directory" in r.err


def test_report_written_beside_the_artifact(run_cli, tmp_path, model):
    r = run_cli("compile", model, "-t", "x86-64", "-o", tmp_path / "out", "--report", tmp_path / "r.html")
    assert r.code == 0, r
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "r.html", "small_cnn.onnx"]


def test_report_name_too_long(run_cli, tmp_path, model):
    p = tmp_path / ("r" * 300 + ".html")
    _refused(run_cli, tmp_path, ["compile", model, "-t", "x86-64", "-o", tmp_path / "out", "--report", p], "rrrr")


# run --output ------------------------------------------------------------------------------------

def test_run_output_is_a_directory(run_cli, tmp_path, artifact):
    d = tmp_path / "outs.npz"
    d.mkdir()
    r = _refused(run_cli, tmp_path, ["run", artifact, "--output", d], d, extra_dirs=(artifact,))
    assert "is a directory" in r.err


def test_run_output_unwritable(run_cli, tmp_path, artifact):
    p = unwritable_dir(tmp_path) / "outs.npz"
    _refused(run_cli, tmp_path, ["run", artifact, "--output", p], p, extra_dirs=(artifact,))


def test_run_output_is_an_input(run_cli, tmp_path, artifact):
    x = tmp_path / "x.npy"
    np.save(x, np.ones((2, 3), np.float32))
    _refused(run_cli, tmp_path, ["run", artifact, "-i", f"x={x}", "--output", x], x, extra_dirs=(artifact,))


def test_run_output_is_the_compared_model(run_cli, tmp_path, artifact):
    m = artifact.parent / "abs.onnx"
    _refused(run_cli, tmp_path, ["run", artifact, "--compare-onnx", m, "--output", m], m, extra_dirs=(artifact.parent,))


def test_run_output_is_an_artifact_file(run_cli, tmp_path, artifact):
    p = artifact / "metadata.json"
    _refused(run_cli, tmp_path, ["run", artifact, "--output", p], p, extra_dirs=(artifact,))


def test_run_output_written_atomically(run_cli, tmp_path, artifact):
    p = tmp_path / "outs"  # no .npz appended, no temporary file left
    r = run_cli("run", artifact, "--output", p)
    assert r.code == 0, r
    assert sorted(x.name for x in tmp_path.iterdir()) == ["outs"]
    assert set(np.load(p)) == {"y"}


# optimize -o -------------------------------------------------------------------------------------

def test_optimize_output_is_a_directory(run_cli, tmp_path, model):
    d = tmp_path / "opt"
    d.mkdir()
    _refused(run_cli, tmp_path, ["optimize", model, "-o", d], d)


def test_optimize_output_unwritable(run_cli, tmp_path, model):
    p = unwritable_dir(tmp_path) / "o.onnx"
    _refused(run_cli, tmp_path, ["optimize", model, "-o", p], p)


def test_optimize_output_is_the_input(run_cli, tmp_path, model):
    r = _refused(run_cli, tmp_path, ["optimize", model, "-o", model], model)
    assert "same file" in r.err


def test_optimize_output_is_a_hard_link_to_the_input(run_cli, tmp_path, model):
    link = tmp_path / "link.onnx"
    os.link(model, link)
    _refused(run_cli, tmp_path, ["optimize", model, "-o", link], link)


# tune --records ----------------------------------------------------------------------------------

def test_tune_records_is_a_directory(run_cli, tmp_path, model):
    d = tmp_path / "records.json"
    d.mkdir()
    _refused(run_cli, tmp_path, ["tune", model, "-t", "x86-64", "--trials", "0", "--records", d], d)


def test_tune_records_is_a_foreign_file(run_cli, tmp_path, model):
    p = tmp_path / "package.json"
    p.write_text(json.dumps({"name": "my-app", "version": "1.0.0"}) + "\n")
    r = _refused(run_cli, tmp_path, ["tune", model, "-t", "x86-64", "--trials", "0", "--records", p], p)
    assert "records" in r.err


def test_tune_records_is_the_model(run_cli, tmp_path, model):
    _refused(run_cli, tmp_path, ["tune", model, "-t", "x86-64", "--trials", "0", "--records", model], model)


def test_tune_records_unwritable(run_cli, tmp_path, model):
    p = unwritable_dir(tmp_path) / "records.json"
    _refused(run_cli, tmp_path, ["tune", model, "-t", "x86-64", "--trials", "0", "--records", p], p)


# the writer itself -------------------------------------------------------------------------------

def test_write_file_atomic_leaves_nothing_on_failure(tmp_path):
    from edgec.output_paths import write_file_atomic

    target = tmp_path / "keep.txt"
    target.write_text("old\n")
    target.chmod(0o640)

    def boom(f):
        f.write(b"partial")
        raise ValueError("serializer failed")

    with pytest.raises(ValueError):
        write_file_atomic(target, boom)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"] and target.read_text() == "old\n"
    write_file_atomic(target, "new\n")
    assert target.read_text() == "new\n" and (target.stat().st_mode & 0o777) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_write_file_atomic_os_error_names_the_path(tmp_path):
    from edgec.output_paths import OutputPathError, write_file_atomic

    p = tmp_path / "missing-dir" / "r.html"
    with pytest.raises(OutputPathError, match="missing-dir"):
        write_file_atomic(p, "x", "report")
    assert list(tmp_path.iterdir()) == []


# --mcpu / --mattr --------------------------------------------------------------------------------

def test_mcpu_unknown(run_cli, tmp_path, model):
    r = _refused(run_cli, tmp_path, ["compile", model, "-t", "x86-64", "--mcpu", "znver9", "-o", tmp_path / "out"],
                 "'znver9'")
    assert "znver" in r.err.split("znver9", 1)[1]  # close names listed


def test_mattr_unknown(run_cli, tmp_path, model):
    r = _refused(run_cli, tmp_path, ["compile", model, "-t", "x86-64", "--mattr", "+avx2,+nonsense", "-o", tmp_path / "out"],
                 "'nonsense'")
    assert "--mattr" in r.err


def test_mattr_of_another_architecture(run_cli, tmp_path, model):
    r = _refused(run_cli, tmp_path, ["compile", model, "-t", "armv8", "--mattr", "+avx2", "--print-pipeline"], "'avx2'")
    assert "aarch64" in r.err


def test_mcpu_unknown_in_target_json(run_cli, tmp_path, model):
    target = json.dumps({"kind": "llvm", "mcpu": "bogus"})
    _refused(run_cli, tmp_path, ["compile", model, "-t", target, "-o", tmp_path / "out"], "'bogus'")


def test_mattr_unknown_in_target_json(run_cli, tmp_path, model):
    target = json.dumps({"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon", "+neonx"]})
    r = _refused(run_cli, tmp_path, ["compile", model, "-t", target, "--print-pipeline"], "'neonx'")
    assert "neon" in r.err.split("neonx", 1)[1]


def test_valid_mcpu_for_armv8(run_cli, model):
    r = run_cli("compile", model, "-t", "armv8", "--mcpu", "cortex-a72", "--mattr", "+neon,+crc", "--print-pipeline")
    assert r.code == 0 and r.err == "", r


def test_valid_mcpu_compiles(run_cli, tmp_path, model):
    out = tmp_path / "out"
    r = run_cli("compile", model, "-t", "x86-64", "--mcpu", "znver3", "--mattr", "+avx2,-avx512f", "-o", out)
    assert r.code == 0, r
    tvm = json.loads((out / "metadata.json").read_text())["target"]["tvm"]
    assert tvm["mcpu"] == "znver3" and tvm["mattr"] == ["+avx2", "-avx512f"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_run_output_no_space_left(run_cli, tmp_path, artifact):
    """A write that fails after the run (ENOSPC: /dev/full) is one line naming the path."""
    r = _refused(run_cli, tmp_path, ["run", artifact, "--output", "/dev/full"], "/dev/full", extra_dirs=(artifact,))
    assert "No space left" in r.err


@pytest.mark.parametrize("argv", [("compile", "{model}", "-t", "x86-64", "-o", "{tmp}/art", "--report", "{out}"),
                                  ("run", "{art}", "--output", "{out}"),
                                  ("optimize", "{model}", "-o", "{out}"),
                                  ("reduce", "{model}", "-o", "{out}")],
                         ids=["report", "run-output", "optimize", "reduce"])
def test_fifo_as_output_is_refused_not_a_hang(argv, tmp_path, model):
    """A FIFO without a reader blocks its writer forever: refused before any work."""
    import subprocess
    import sys

    from tests.conftest import ROOT as REPO

    out = tmp_path / "out.fifo"
    os.mkfifo(out)
    art = tmp_path / "art0"
    art.mkdir()  # never reached: the output is checked first
    args = [a.format(model=model, tmp=tmp_path, out=out, art=art) for a in argv]
    before = snapshot(tmp_path)
    r = subprocess.run([sys.executable, "-m", "edgec.cli", *args], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "FIFO" in r.stderr and str(out) in r.stderr, r.stderr
    assert snapshot(tmp_path) == before
