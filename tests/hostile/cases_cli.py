"""CLI misuse by a careless user: output paths that would destroy the user's files, bogus CPUs,
targets, passes, shapes and limits, broken plugins, bad run inputs. Each is exit 2 with one line,
checked before any work, so the previous artifact (or the user's directory) at -o is untouched."""

from __future__ import annotations

import os

import numpy as np

from tests.hostile.harness import CaseDir, Group, Spec, compile_argv

cli = Group("cli")
CASES = cli.cases


def _user_files(d: CaseDir, folder: str) -> str:
    d.write(f"{folder}/notes.txt", "the user's notes\n")
    d.write(f"{folder}/sub/data.csv", "a,b\n1,2\n")
    os.chmod(d.path(f"{folder}/notes.txt"), 0o640)
    return folder


def _cnn_compile(d: CaseDir, *extra: str, out: str = "out", words: tuple[str, ...] = (), timeout: float = 60) -> Spec:
    return Spec(compile_argv(d.small_cnn(), *extra, out=out), code=2, words=words, timeout=timeout)


# ---- where edgec writes ---------------------------------------------------------------------------

@cli
def out_is_user_directory(d: CaseDir) -> Spec:
    return _cnn_compile(d, out=_user_files(d, "docs"), words=("docs",))


@cli
def out_is_model_directory(d: CaseDir) -> Spec:
    d.small_cnn("project/small_cnn.onnx")
    _user_files(d, "project")
    return Spec(compile_argv("project/small_cnn.onnx", out="project"), code=2, words=("project",))


@cli
def out_is_current_directory(d: CaseDir) -> Spec:
    _user_files(d, "docs")
    return Spec(compile_argv(d.small_cnn(), out="."), code=2)


@cli
def out_is_symlink_to_user_directory(d: CaseDir) -> Spec:
    _user_files(d, "docs")
    d.symlink("link", "docs")
    return _cnn_compile(d, out="link", words=("link",))


@cli
def out_is_existing_file(d: CaseDir) -> Spec:
    d.write("result.txt", "keep me\n")
    return _cnn_compile(d, out="result.txt", words=("result.txt",))


@cli
def out_is_the_model_file(d: CaseDir) -> Spec:
    model = d.small_cnn()
    return Spec(compile_argv(model, out=model), code=2, words=(model,))


@cli
def out_under_a_file(d: CaseDir) -> Spec:
    d.write("plain.txt", "keep me\n")
    return _cnn_compile(d, out="plain.txt/out", words=("plain.txt",))


@cli
def out_under_readonly_directory(d: CaseDir) -> Spec:
    """A directory edgec cannot write in; as root (permissions do not bind) a sysfs directory."""
    if os.geteuid() != 0:
        d.path("ro").mkdir()
        os.chmod(d.path("ro"), 0o555)
        return _cnn_compile(d, out="ro/out", words=("ro",))
    return _cnn_compile(d, out="/sys/edgec-hostile/out", words=("/sys",))


@cli
def out_empty_string(d: CaseDir) -> Spec:
    _user_files(d, "docs")
    return Spec(compile_argv(d.small_cnn(), out=""), code=2, previous=False)


@cli
def out_empty_directory(d: CaseDir) -> Spec:
    """An existing empty directory is a fine destination."""
    d.path("empty").mkdir()
    model = d.small_cnn()
    return Spec(compile_argv(model, out="empty"), code=0, check=lambda cd, o: cd.check_artifact("empty"))


@cli
def dump_ir_is_a_file(d: CaseDir) -> Spec:
    d.write("dump.txt", "keep me\n")
    return _cnn_compile(d, "--dump-ir", "dump.txt", words=("dump.txt",))


@cli
def dump_ir_is_user_directory(d: CaseDir) -> Spec:
    return _cnn_compile(d, "--dump-ir", _user_files(d, "docs"), words=("docs",))


@cli
def report_is_a_directory(d: CaseDir) -> Spec:
    return _cnn_compile(d, "--report", _user_files(d, "report.html"), words=("report.html",))


@cli
def run_output_is_a_directory(d: CaseDir) -> Spec:
    art = d.artifact()
    return Spec(["run", art, "--output", _user_files(d, "outputs.npz")], code=2, words=("outputs.npz",))


@cli
def optimize_output_is_the_input(d: CaseDir) -> Spec:
    model = d.small_cnn()
    return Spec(["optimize", model, "-o", model], code=2, words=(model,))


@cli
def optimize_output_is_a_directory(d: CaseDir) -> Spec:
    return Spec(["optimize", d.small_cnn(), "-o", _user_files(d, "docs")], code=2, words=("docs",))


# ---- options ------------------------------------------------------------------------------------------

@cli
def bogus_mcpu(d: CaseDir) -> Spec:
    return _cnn_compile(d, "--mcpu", "notacpu", words=("notacpu",))


@cli
def bogus_mattr(d: CaseDir) -> Spec:
    return _cnn_compile(d, "--mattr", "+avx2,+notafeature", words=("notafeature",))


@cli
def bogus_target_json(d: CaseDir) -> Spec:
    return Spec(["compile", d.small_cnn(), "-t", '{"kind": "llvm", "mcpu": ', "-o", "out"], code=2)


@cli
def target_json_unknown_kind(d: CaseDir) -> Spec:
    return Spec(["compile", d.small_cnn(), "-t", '{"kind": "nosuchkind"}', "-o", "out"], code=2, words=("nosuchkind",))


@cli
def target_json_bogus_mcpu(d: CaseDir) -> Spec:
    return Spec(["compile", d.small_cnn(), "-t", '{"kind": "llvm", "mcpu": "notacpu2"}', "-o", "out"], code=2,
                words=("notacpu2",))


@cli
def unknown_target_name(d: CaseDir) -> Spec:
    return Spec(["compile", d.small_cnn(), "-t", "pdp11", "-o", "out"], code=2, words=("pdp11",))


@cli
def board_file_fifo(d: CaseDir) -> Spec:
    return _cnn_compile(d, "-t", d.fifo("board.toml"), words=("board.toml",))


@cli
def board_file_bad_key(d: CaseDir) -> Spec:
    return _cnn_compile(d, "-t", d.write("board.toml", 'name = "b"\nbase = "armv8"\nvector_bits = -1\n'),
                        words=("board.toml", "vector_bits"))


@cli
def board_file_missing(d: CaseDir) -> Spec:
    return _cnn_compile(d, "-t", "no-such-board.toml", words=("no-such-board.toml",))


@cli
def unknown_pass(d: CaseDir) -> Spec:
    return _cnn_compile(d, "--passes", "fold-constants,no-such-pass", words=("no-such-pass",))


@cli
def pipeline_syntax_error(d: CaseDir) -> Spec:
    return _cnn_compile(d, "--passes", "fold-constants{max-size=", words=("fold-constants",))


@cli
def unknown_pass_option(d: CaseDir) -> Spec:
    return _cnn_compile(d, "--passes", "fold-constants{bogus-option=1}", words=("bogus-option",))


@cli
def input_shape_bad_syntax(d: CaseDir) -> Spec:
    return _cnn_compile(d, "--input-shape", "input=1,three,32,32", words=("three",))


@cli
def input_shape_without_name(d: CaseDir) -> Spec:
    return _cnn_compile(d, "--input-shape", "1,3,32,32", words=("input-shape",))


@cli
def input_shape_unknown_input(d: CaseDir) -> Spec:
    return _cnn_compile(d, "--input-shape", "nosuchinput=1,3,32,32", words=("nosuchinput",))


@cli
def max_tensor_bytes_negative(d: CaseDir) -> Spec:
    return _cnn_compile(d, "--max-tensor-bytes", "-1", words=("max-tensor-bytes",))


@cli
def max_tensor_bytes_not_an_integer(d: CaseDir) -> Spec:
    return _cnn_compile(d, "--max-tensor-bytes", "1e9", words=("max-tensor-bytes",))


@cli
def opt_level_out_of_range(d: CaseDir) -> Spec:
    return _cnn_compile(d, "-O", "7")


@cli
def records_not_json(d: CaseDir) -> Spec:
    d.write("tuning.json", "not json at all {")
    return _cnn_compile(d, "--records", "tuning.json", words=("tuning.json",))


@cli
def records_missing(d: CaseDir) -> Spec:
    return _cnn_compile(d, "--records", "nope.json", words=("nope.json",))


# ---- plugins (the user's code: its bugs are the user's, exit 2) ----------------------------------------

@cli
def plugin_fifo(d: CaseDir) -> Spec:
    return _cnn_compile(d, "--plugin", d.fifo("mypass.py"), "--passes", "fold-constants", words=("mypass.py",),
                        timeout=20)


@cli
def plugin_missing(d: CaseDir) -> Spec:
    return _cnn_compile(d, "--plugin", "nope.py", "--passes", "fold-constants", words=("nope.py",))


@cli
def plugin_syntax_error(d: CaseDir) -> Spec:
    d.write("mypass.py", "from edgec.infra.pass_base import Pass\nclass Broken(Pass:\n    pass\n")
    return _cnn_compile(d, "--plugin", "mypass.py", "--passes", "fold-constants", words=("mypass.py",))


@cli
def plugin_raises_on_import(d: CaseDir) -> Spec:
    d.write("mypass.py", "raise RuntimeError('plugin author bug')\n")
    return _cnn_compile(d, "--plugin", "mypass.py", "--passes", "fold-constants", words=("mypass.py",))


# ---- run / bench -------------------------------------------------------------------------------------

@cli
def run_missing_artifact(d: CaseDir) -> Spec:
    return Spec(["run", "no_such_artifact"], code=2, words=("no_such_artifact",))


@cli
def run_input_missing_file(d: CaseDir) -> Spec:
    return Spec(["run", d.artifact(), "-i", "input=nope.npy"], code=2, words=("nope.npy",))


@cli
def run_input_wrong_shape(d: CaseDir) -> Spec:
    buf = d.path("x.npy")
    np.save(buf, np.zeros((1, 3, 8, 8), np.float32))
    return Spec(["run", d.artifact(), "-i", "input=x.npy"], code=2, words=("input",))


@cli
def run_input_unknown_name(d: CaseDir) -> Spec:
    np.save(d.path("x.npy"), np.zeros((1, 3, 32, 32), np.float32))
    return Spec(["run", d.artifact(), "-i", "nosuchinput=x.npy"], code=2, words=("nosuchinput",))


@cli
def run_input_fifo(d: CaseDir) -> Spec:
    return Spec(["run", d.artifact(), "-i", f"input={d.fifo('x.npy')}"], code=2, words=("x.npy",), timeout=20)


@cli
def run_input_not_npy(d: CaseDir) -> Spec:
    d.write("x.npy", "\x93NUMPY but not really\n")
    return Spec(["run", d.artifact(), "-i", "input=x.npy"], code=2, words=("x.npy",))


@cli
def run_threads_negative(d: CaseDir) -> Spec:
    return Spec(["run", d.artifact(), "--threads", "-3"], code=2, words=("threads",))


@cli
def unknown_command(d: CaseDir) -> Spec:
    return Spec(["frobnicate", "x"], code=2, words=("frobnicate",))
