"""Issue 11 regressions: `-o` never destroys what is not an artifact; a tampered artifact is refused
before anything in it is loaded; names cannot inject code into model.h; SIGTERM / SIGHUP clean up
like SIGINT."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from edgec.api import CompileOptions, compile_model
from edgec.artifact import metadata_checksum
from edgec.c_header import c_header
from edgec.ir.analysis import TensorInfo
from tests.conftest import EXAMPLES, ROOT

MODEL = EXAMPLES / "small_cnn.onnx"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("built") / "art"
    compile_model(MODEL, out, CompileOptions(target="x86-64"))
    return out


def _tree(root):
    """path -> bytes (files) or a marker (dirs, links): a snapshot to prove nothing changed."""
    snap = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            if os.path.islink(p):
                snap[rel] = ("link", os.readlink(p))
            elif os.path.isdir(p):
                snap[rel] = ("dir",)
            else:
                with open(p, "rb") as f:
                    snap[rel] = ("file", f.read())
    return snap


def _one_error_line(r, *words):
    assert r.code == 2, r
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgec: error: "), r.err
    assert "Traceback" not in r.err + r.out
    for w in words:
        assert w in lines[0], (w, lines[0])


# --- -o replaces only an artifact or an empty directory --------------------------------------

def test_output_dir_with_user_files_is_refused_and_untouched(tmp_path, run_cli):
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "notes.txt").write_text("my notes")
    (docs / "sub" / "draft.md").write_text("draft")
    before = _tree(tmp_path)
    r = run_cli("compile", MODEL, "-t", "x86-64", "-o", docs)
    _one_error_line(r, str(docs), "not an edgec artifact")
    assert _tree(tmp_path) == before


def test_output_dir_holding_the_model_is_refused(tmp_path, run_cli):
    model = tmp_path / "m.onnx"
    shutil.copy(MODEL, model)
    before = _tree(tmp_path)
    r = run_cli("compile", model, "-t", "x86-64", "-o", tmp_path)
    _one_error_line(r, "holds the input")
    assert _tree(tmp_path) == before


def test_artifact_with_a_user_file_added_is_refused(tmp_path, run_cli, built):
    art = tmp_path / "art"
    shutil.copytree(built, art)
    (art / "my-results.csv").write_text("1,2,3")
    before = _tree(tmp_path)
    r = run_cli("compile", MODEL, "-t", "x86-64", "-o", art)
    _one_error_line(r, "not an edgec artifact")
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("kind", ["empty-name", "symlink", "file"])
def test_odd_output_paths_are_refused(tmp_path, run_cli, kind):
    (tmp_path / "real").mkdir()
    if kind == "symlink":
        os.symlink(tmp_path / "real", tmp_path / "out")
    elif kind == "file":
        (tmp_path / "out").write_text("keep me")
    before = _tree(tmp_path)
    r = run_cli("compile", MODEL, "-t", "x86-64", "-o", "" if kind == "empty-name" else tmp_path / "out")
    _one_error_line(r)
    assert _tree(tmp_path) == before


def test_previous_artifact_and_empty_dir_are_replaced(tmp_path, run_cli, built):
    art = tmp_path / "art"
    shutil.copytree(built, art)
    assert run_cli("compile", MODEL, "-t", "x86-64", "-o", art).code == 0
    (tmp_path / "empty").mkdir()
    assert run_cli("compile", MODEL, "-t", "x86-64", "-o", tmp_path / "empty").code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art", "empty"]  # nothing left beside them


def test_read_only_parent_is_refused(tmp_path, run_cli):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        if os.access(parent, os.W_OK):  # root: permissions do not bind; a file as parent instead
            parent.chmod(0o755)
            shutil.rmtree(parent)
            parent.write_text("a file")
        r = run_cli("compile", MODEL, "-t", "x86-64", "-o", parent / "art")
        _one_error_line(r, str(parent))
    finally:
        if parent.is_dir():
            parent.chmod(0o755)


# --- a tampered artifact is refused before anything is loaded --------------------------------

def _copy(built, tmp_path):
    art = tmp_path / "art"
    shutil.copytree(built, art, symlinks=True)
    return art


def _edit(art, change, reseal=False):
    meta = json.loads((art / "metadata.json").read_text())
    change(meta)
    if reseal:  # an attacker who recomputes the checksum
        meta["checksum"] = metadata_checksum(meta)
    (art / "metadata.json").write_text(json.dumps(meta))


def _evil_library(tmp_path):
    """A real shared library whose constructor leaves a marker file: it must never be loaded."""
    src = tmp_path / "evil.c"
    marker = tmp_path / "EVIL-LOADED"
    src.write_text(f'#include <stdio.h>\n__attribute__((constructor)) static void f(void) '
                   f'{{ FILE* f = fopen("{marker}", "w"); if (f) fclose(f); }}\n')
    lib = tmp_path / "evil.so"
    subprocess.run(["gcc", "-shared", "-fPIC", str(src), "-o", str(lib)], check=True)
    return lib, marker


def _set(key, value):
    return lambda m: m.__setitem__(key, value)


TAMPER = {
    "shape-edited": (lambda a, t: _edit(a, lambda m: m["inputs"][0].__setitem__("shape", [2, 3, 32, 32])),
                     "checksum mismatch"),
    "dtype-edited": (lambda a, t: _edit(a, lambda m: m["inputs"][0].__setitem__("dtype", "float64")), "checksum"),
    "truncated": (lambda a, t: (a / "metadata.json").write_text((a / "metadata.json").read_text()[:200]),
                  "corrupt metadata"),
    "not-json": (lambda a, t: (a / "metadata.json").write_bytes(b"\xff\xfe junk"), "corrupt metadata"),
    "metadata-missing": (lambda a, t: (a / "metadata.json").unlink(), "no metadata.json"),
    "library-junk": (lambda a, t: (a / "model.so").write_bytes(b"\x7fELF junk"), "model.so"),
    "library-same-size-junk": (lambda a, t: (a / "model.so").write_bytes(b"\0" * (a / "model.so").stat().st_size),
                               "SHA-256"),
    "library-deleted": (lambda a, t: (a / "model.so").unlink(), "missing"),
    "library-symlink": (lambda a, t: ((a / "model.so").unlink(), os.symlink(_evil_library(t)[0], a / "model.so")),
                        "symbolic link"),
    "library-escape": (lambda a, t: _edit(a, _set("library", "../evil.so"), reseal=True), "leaves the artifact"),
    "library-absolute": (lambda a, t: _edit(a, _set("library", str(_evil_library(t)[0])), reseal=True),
                         "not a relative path"),
    "library-not-in-manifest": (lambda a, t: (shutil.copy(_evil_library(t)[0], a / "evil.so"),
                                              _edit(a, _set("library", "evil.so"), reseal=True)),
                                "not in the file manifest"),
    "manifest-escape": (lambda a, t: _edit(a, lambda m: m["files"].__setitem__("../evil.so", {"bytes": 1, "sha256": "0"}),
                                           reseal=True), "leaves the artifact"),
    "weights-escape": (lambda a, t: _edit(a, _set("weights", {"file": "../../w.bin", "tensors": []}), reseal=True),
                       "leaves the artifact"),
    "old-format": (lambda a, t: _edit(a, _set("format", "edgec-artifact/1"), reseal=True), "compile the model again"),
    "unknown-format": (lambda a, t: _edit(a, _set("format", "something"), reseal=True), "unknown artifact format"),
    "keys-missing": (lambda a, t: _edit(a, lambda m: m.pop("inputs"), reseal=True), "malformed metadata"),
    "negative-shape": (lambda a, t: _edit(a, lambda m: m["inputs"][0].__setitem__("shape", [-1, 3]), reseal=True),
                       "non-negative"),
}


@pytest.mark.parametrize("case", sorted(TAMPER))
def test_tampered_artifact_is_refused_before_loading(case, tmp_path, run_cli, built):
    art = _copy(built, tmp_path)
    tamper, words = TAMPER[case]
    tamper(art, tmp_path)
    for argv in (("run", art), ("bench", art, "-n", "1")):
        r = run_cli(*argv)
        _one_error_line(r, words)
    assert not (tmp_path / "EVIL-LOADED").exists()


def test_untampered_copy_still_runs(tmp_path, run_cli, built):
    art = _copy(built, tmp_path)
    r = run_cli("run", art, "--compare-onnx", MODEL)
    assert r.code == 0, r


# --- names cannot inject code into model.h ------------------------------------------------------

HOSTILE_NAMES = [
    'x" \n#include "/etc/passwd',
    "*/ int injected_by_name = 1; /*",
    "a\\\nint injected_by_continuation;",
    "??/\nint injected_by_trigraph;",
    "name\0with nul",
    "é ✓ \t tab",
    "y" * 5000,
]


def test_c_header_keeps_hostile_names_inside_literals(tmp_path):
    ins = [TensorInfo(n, (1, 2), "float32") for n in HOSTILE_NAMES]
    outs = [TensorInfo("*/ #define EDGEC_MODEL_NUM_INPUTS 99 /*", (3,), "int64")]
    (tmp_path / "model.h").write_text(c_header('m*/ int injected_by_model_name; /*"', ins, outs))
    app = tmp_path / "app.c"
    # each would-be injected name is declared here with another type: an injection would clash
    app.write_text('#include "model.h"\n#include <string.h>\n'
                   "char injected_by_name[3], injected_by_continuation[3], injected_by_trigraph[3], "
                   "injected_by_model_name[3];\n"
                   "_Static_assert(EDGEC_MODEL_NUM_INPUTS == 7, \"inputs\");\n"
                   "int check(void) { return strcmp(EDGEC_MODEL_INPUT0_NAME, \"x\\\" \\n#include \\\"/etc/passwd\"); }\n")
    r = subprocess.run(["gcc", "-std=c11", "-trigraphs", "-Wall", "-Wextra", "-Werror", "-fsyntax-only", str(app)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_c_header_names_round_trip(tmp_path):
    """The string literals hold exactly the names' UTF-8 bytes."""
    ins = [TensorInfo(n, (2,), "float32") for n in HOSTILE_NAMES if "\0" not in n]
    (tmp_path / "model.h").write_text(c_header("m", ins, []))
    body = "".join(f'  fputs(EDGEC_MODEL_INPUT{i}_NAME, stdout); putchar(0);\n' for i in range(len(ins)))
    (tmp_path / "p.c").write_text(f'#include <stdio.h>\n#include "model.h"\nint main(void) {{\n{body}  return 0;\n}}\n')
    subprocess.run(["gcc", "-trigraphs", str(tmp_path / "p.c"), "-o", str(tmp_path / "p")], check=True, cwd=tmp_path)
    out = subprocess.run([str(tmp_path / "p")], capture_output=True, check=True).stdout
    assert out.split(b"\0")[:-1] == [t.name.encode() for t in ins]


# --- SIGTERM / SIGHUP behave like SIGINT --------------------------------------------------------

def _default_signals():
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_terminating_signal_leaves_nothing_and_keeps_previous_artifact(tmp_path, built, sig):
    art = _copy(built, tmp_path)
    before = _tree(art)
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "edgec.cli", "compile", str(MODEL), "-t", "x86-64", "-o", str(art)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_signals)
    t0 = time.time()
    while not list(tmp_path.glob(".art.tmp-*")):
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < 60, "no temporary directory appeared"
        time.sleep(0.005)
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    assert err.strip().splitlines()[-1] == f"edgec: interrupted ({signal.Signals(sig).name})"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art", "tmp"]
    assert not list((tmp_path / "tmp").iterdir())
    assert _tree(art) == before
