"""Board presets as data (targets/boards.py): every key checked with one line naming the file and
the key (exit 2 from the CLI), derivation from a base target, TOML and JSON, entry-point boards."""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint

import pytest

from edgec.errors import TargetError
from edgec.targets import boards, registry
from edgec.targets.registry import get_target
from tests.conftest import EXAMPLES

BASE = 'name = "myboard"\nbase = "armv8"\n'


def _board(tmp_path, text, suffix=".toml"):
    p = tmp_path / f"b{suffix}"
    p.write_text(text)
    return p


def test_example_board_derives_from_its_base():
    spec = get_target(str(EXAMPLES / "boards" / "rpi3-a53.toml"))
    armv8 = get_target("armv8")
    assert (spec.name, spec.arch, spec.cross_compiler, spec.emulator, spec.layout) == (
        "rpi3-a53", "aarch64", armv8.cross_compiler, armv8.emulator, armv8.layout)
    assert spec.tvm == {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"], "mcpu": "cortex-a53",
                        "num-cores": 4}


def test_board_without_base_and_json(tmp_path):
    data = {"name": "tiny-x86", "arch": "x86_64", "tvm": {"kind": "llvm", "mtriple": "x86_64-linux-gnu", "mcpu": "haswell"},
            "vector_bits": 256, "features": ["avx2", "fma"]}
    spec = get_target(str(_board(tmp_path, json.dumps(data), ".json")))
    assert (spec.name, spec.arch, spec.vector_bits, spec.features, spec.emulator) == (
        "tiny-x86", "x86_64", 256, ("avx2", "fma"), ())
    assert spec.tvm == data["tvm"]


@pytest.mark.parametrize("key, value", [("l2_bytes", 2097152), ("l1d_bytes", 49152)])
def test_board_cache_sizes_reach_the_schedules(tmp_path, key, value):
    """A board's per-core L2 (`l2_bytes`) and L1 data cache (`l1d_bytes`) are recorded in the spec
    and its JSON (artifact metadata) and are what the conv schedules size a task's weight panel and
    a register tile's inner weight sweep by; the base's when not given."""
    from edgec.targets.registry import spec_from_json
    from edgec.targets.tvm.schedules import context_for

    spec = get_target(str(_board(tmp_path, BASE + f"{key} = {value}\n")))
    assert getattr(spec, key) == value and spec.to_json()[key] == value
    assert getattr(spec_from_json(spec.to_json()), key) == value
    assert getattr(context_for(spec), key) == value
    assert getattr(get_target(str(_board(tmp_path, BASE))), key) == getattr(get_target("armv8"), key)


def test_board_cores_size_the_parallel_loops(tmp_path):
    """A board's `num_cores` is the thread count the schedules split their parallel loops for
    (cross-compiling for a 4-core board on a 2-core machine); `--threads` still overrides it."""
    from edgec.targets.tvm.schedules import context_for

    spec = get_target(str(_board(tmp_path, BASE + "num_cores = 4\n")))
    assert context_for(spec).threads == 4 and context_for(spec, threads=3).threads == 3


@pytest.mark.parametrize("text, key, why", [
    (BASE + "colour = 'red'\n", "colour", "is unknown"),
    (BASE + "vector_bits = 0\n", "vector_bits", "must be a positive integer"),
    (BASE + "vector_bits = true\n", "vector_bits", "must be a positive integer"),
    (BASE + "l2_bytes = 0\n", "l2_bytes", "must be a positive integer"),
    (BASE + "l2_bytes = '1M'\n", "l2_bytes", "must be a positive integer"),
    (BASE + "l1d_bytes = -1\n", "l1d_bytes", "must be a positive integer"),
    (BASE + "mattr = '+neon'\n", "mattr", "must be a list of strings"),
    (BASE + "mattr = ['neon']\n", "mattr", "must start with '+' or '-'"),
    (BASE + "arch = 'mips'\n", "arch", "must be one of"),
    (BASE + "layout = 'NWHC'\n", "layout", "must be one of"),
    (BASE + "emulator = 'qemu-aarch64'\n", "emulator", "must be a list of strings"),
    ('base = "armv8"\n', "name", "is required"),
    ('name = "armv8"\nbase = "armv8"\n', "name", "is a built-in target"),
    ('name = "My Board"\nbase = "armv8"\n', "name", "must be lower case"),
    ('name = "b"\nbase = "armv9"\n', "base", "is not a built-in target"),
    ('name = "b"\narch = "aarch64"\n', "tvm", "is required when there is no 'base'"),
    ('name = "b"\narch = "aarch64"\ntvm = {mtriple = "aarch64-linux-gnu"}\n', "tvm", 'needs a "kind"'),
    ('name = "b"\nbase = "cuda-sm87"\nmcpu = "cortex-a53"\n', "mcpu", "applies to CPU (llvm) targets only"),
    (BASE + 'mcpu = "cortex-a99"\n', "mcpu", "is not a CPU LLVM knows"),
    (BASE + 'features = ["neon", "dotprd"]\n', "features", "'dotprd' is not a feature LLVM knows"),
])
def test_bad_key_is_one_line_naming_file_and_key(tmp_path, text, key, why):
    path = _board(tmp_path, text)
    with pytest.raises(TargetError) as e:
        get_target(str(path))
    msg = e.value.one_line()
    assert str(path) in msg and (f"key '{key}'" in msg or f"key {key}" in msg) and why in msg, msg


@pytest.mark.parametrize("text, why", [("name = \n", "is not valid TOML"), ("[1, 2]", "must hold a table")])
def test_unparsable_board_file(tmp_path, text, why):
    path = _board(tmp_path, text, ".json" if text.startswith("[") else ".toml")
    with pytest.raises(TargetError, match=why):
        get_target(str(path))
    with pytest.raises(TargetError, match="does not exist"):
        get_target(str(tmp_path / "missing.toml"))


def test_not_a_regular_file_is_refused_without_blocking(tmp_path):
    import os

    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    with pytest.raises(TargetError, match="fifo.toml"):
        get_target(str(fifo))
    (tmp_path / "dir.toml").mkdir()
    with pytest.raises(TargetError, match="dir.toml"):
        get_target(str(tmp_path / "dir.toml"))
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'name = "caf\xe9"\n')
    with pytest.raises(TargetError, match="is not valid TOML"):
        get_target(str(bad))


def test_cli_exit_2_one_line(tmp_path, run_cli):
    path = _board(tmp_path, BASE + "vector_bits = 'wide'\n")
    for argv in (("targets", "--board", path), ("compile", EXAMPLES / "small_cnn.onnx", "-o", tmp_path / "a", "-t", path)):
        r = run_cli(*argv)
        assert r.code == 2, r
        assert r.err.count("\n") == 1 and str(path) in r.err and "key 'vector_bits'" in r.err, r.err


def test_entry_point_boards(tmp_path, monkeypatch, run_cli):
    board = _board(tmp_path, BASE.replace("myboard", "ep-board"))
    eps = [EntryPoint("b", f"{__name__}:_EP_VALUE", boards.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(f"{__name__}._EP_VALUE", [str(board)], raising=False)
    monkeypatch.setattr("importlib.metadata.entry_points",
                        lambda group=None: eps if group == boards.ENTRY_POINT_GROUP else [])
    assert get_target("ep-board").tvm["mtriple"] == "aarch64-linux-gnu"
    assert "ep-board" in [t.name for t in registry.all_targets()]
    assert board in boards.entry_point_board_files()
    r = run_cli("targets")
    assert r.code == 0 and any(line.startswith("ep-board ") for line in r.out.splitlines()), r
    monkeypatch.setattr(f"{__name__}._EP_VALUE", [str(board), str(board)])
    with pytest.raises(TargetError, match="defined twice"):
        get_target("ep-board")
    monkeypatch.setattr(f"{__name__}._EP_VALUE", 42)
    with pytest.raises(TargetError, match="expected a TargetSpec or a board file path"):
        registry.all_targets()


_EP_VALUE: list = []


def test_builtin_cpu_presets_features_are_llvm_features():
    # the board check applies the same rule: every preset passes it
    from edgec.targets.registry import all_targets
    from edgec.targets.tvm.llvm_names import check_feature_tags

    for spec in all_targets():
        if spec.is_cpu:
            check_feature_tags(spec.tvm, spec.features, spec.name)
