"""Bundles as complete deployables, from C (c_api_error_checks.c), for both C runtimes: the VM
runtime natively on x86-64 and under qemu for armv8 (a model with weights.bin), the call plan
under qemu for armv7. Every error is a return code with a message, never an abort: a missing or
garbage library, a short weights.bin / model.consts, wrong shape, rank, dtype, byte count, index,
an unset input; the weights file is mapped (/proc/self/maps); edgec_set_num_threads changes how
many threads do the work (CPU time per thread in /proc/self/task) and not the results. The
runners' --threads flag is checked on the same bundles."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgec.reference import run_ort
from tests.conftest import EXAMPLES, require_target_tools

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _write_lm(out_dir: Path) -> Path:
    """Embedding 1024 x 256 and head 256 x 1024 (1 MiB each: weights.bin), one 256 x 256 layer."""
    spec = importlib.util.spec_from_file_location("edgec_large_model", ROOT / "benchmarks" / "large_model.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.write_large_model(out_dir, 1024, 256, layers=1)


# target -> (model, compile flags, the file cut short, its mapping)
CASES = {
    "x86-64": ("lm", ["--bundle", "--weights-file", "always"], "weights.bin"),
    "armv8": ("lm", ["--weights-file", "always"], "weights.bin"),
    "armv7": ("small_cnn", [], "model.consts"),
}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """target -> (spec, bundle dir, model path), compiled once per target on first use."""
    root = tmp_path_factory.mktemp("c_api")
    made: dict[str, tuple] = {}

    def get(target: str, run_cli):
        if target not in made:
            spec = require_target_tools(target)
            name, flags, _ = CASES[target]
            model = root / "lm" / "model.onnx" if name == "lm" else EXAMPLES / f"{name}.onnx"
            if not model.exists():
                _write_lm(model.parent)
            art = root / target
            r = run_cli("compile", model, "-t", target, "-o", art, *flags)
            assert r.code == 0, r
            made[target] = (spec, art / "bundle", Path(model))
        return made[target]

    return get


def _c_checks(spec, bundle: Path, cut: str, tmp_path: Path) -> dict[str, list[str]]:
    """Build c_api_error_checks.c against the bundle, run it (under qemu if needed) on the bundle,
    a copy with `cut` truncated to half and a garbage file; label -> the rest of each line."""
    short = tmp_path / "short"
    shutil.copytree(bundle, short)
    os.truncate(short / cut, (short / cut).stat().st_size // 2)
    (tmp_path / "garbage.so").write_bytes(b"\x7fELF not really" * 8)
    exe = bundle / "c_api_error_checks"
    cc = spec.cross_compiler or "g++"
    subprocess.run([cc, "-x", "c", "-std=c11", "-O1", str(HERE / "c_api_error_checks.c"), "-x", "none",
                    "-I", str(bundle), "-L", str(bundle), "-ledgec_runtime", "-Wl,-rpath,$ORIGIN", "-o", str(exe)],
                   check=True)
    from edgec.targets.tvm import emulate

    # idle TVM pool workers sleep at once instead of spinning 300000 sched_yield()s: on a busy
    # machine the spin outlasted the warm-up, and a worker idle under 1 thread counted as busy
    env = {**os.environ, "TVM_THREAD_POOL_SPIN_COUNT": "0"}
    r = subprocess.run([*emulate.command_prefix(spec), str(exe), str(bundle / "model.so"), str(short / "model.so"),
                        str(tmp_path / "garbage.so"), "0.5"], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    out: dict[str, list[str]] = {}
    for line in r.stdout.splitlines():
        label, _, rest = line.partition(" ")
        out.setdefault(label, []).append(rest)
    assert "done" in out, r.stdout
    return out


def _code(out, label) -> int:
    return int(out[label][0].split()[0])


@pytest.mark.parametrize("target", sorted(CASES))
def test_c_api_errors_mapping_and_threads(target, bundles, run_cli, tmp_path):
    spec, bundle, _ = bundles(target, run_cli)
    cut = CASES[target][2]
    out = _c_checks(spec, bundle, cut, tmp_path)
    one = {k: v[0] for k, v in out.items()}
    # load failures: NULL with a message naming the file (never an abort)
    assert _code(out, "load_missing") == -1 and "no such file" in one["load_missing"]
    assert _code(out, "load_garbage") == -1 and "garbage.so" in one["load_garbage"]
    assert _code(out, "load_truncated") == -1, one["load_truncated"]
    assert f"short/{cut}" in one["load_truncated"] and "exceeds the file" in one["load_truncated"]
    assert one["last_error_null"].split(" ", 1)[1] == one["load_truncated"].split(" ", 1)[1]
    assert _code(out, "load_null") == -1 and "NULL" in one["load_null"]
    assert _code(out, "threads_bad") == -6
    # the weights are mapped from the file beside model.so, not read into memory
    mapped = [m for m in out["mapping"] if m != "-"]
    assert len(mapped) == 1 and mapped[0].endswith(f"{bundle}/{cut}"), out["mapping"]
    # the shared query API and every misuse as a code with a message
    assert one["counts"] == "1 1" and one["bad_index"] == "NULL -2 -2"
    assert _code(out, "run_unset") == -5 and "was not set" in one["run_unset"]
    assert _code(out, "get_before_run") == -5
    for label in ("wrong_shape", "wrong_rank", "wrong_dtype"):
        assert _code(out, label) == -7 and "declared" in one[label], one[label]
    assert _code(out, "unknown_dtype") == -6 and "complex-ish" in one["unknown_dtype"]
    assert _code(out, "same_shape") == 0
    assert _code(out, "wrong_bytes") == -3 and "needs" in one["wrong_bytes"]
    assert _code(out, "wrong_index") == -2 and _code(out, "null_data") == -6
    assert _code(out, "small_buffer") == -3
    assert all(c.split()[0] == "0" for k in ("set_input", "set_num_threads", "run", "get_output") for c in out[k])
    # threads: "threads<n> <edgec_num_threads> <threads in process> <threads that used CPU> <runs>"
    t1, t2 = (list(map(int, one[f"threads{n}"].split())) for n in (1, 2))
    assert t1[0] == 1 and t2[0] == 2, (t1, t2)
    assert t1[2] == 1 and t2[2] == 2, f"threads doing work with 1 / 2 threads: {t1[2]} / {t2[2]}"
    assert one["identical"].startswith("yes"), one["identical"]
    if spec.runtime == "plan":  # its own pool grows on request
        assert _code(out, "threads_over") == 0 and one["threads_after_over"] == "64"
    else:  # TVM's pool was created with max(n, cores) threads at the first run
        assert _code(out, "threads_over") == -4 and "cannot grow to 64" in one["threads_over"], one["threads_over"]
        assert one["threads_after_over"] == "2"
    assert _code(out, "run_after_over") == 0


@pytest.mark.parametrize("target", ["armv7", "x86-64"])
def test_runner_threads_flag(target, bundles, run_cli, tmp_path):
    """edgec-runner --threads 1 / 2: the same output bytes, matching onnxruntime; the count is
    printed; --threads 0 is one line, exit 2."""
    from edgec.targets.tvm import emulate

    spec, bundle, model = bundles(target, run_cli)
    name = "ids" if CASES[target][0] == "lm" else "input"
    x = (np.arange(8, dtype=np.int64).reshape(1, 8) * 97 % 1024 if name == "ids"
         else np.random.default_rng(5).uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32))
    np.save(tmp_path / "x.npy", x)
    outs = []
    for n in (1, 2):
        d = tmp_path / f"out{n}"
        if n == 1:
            d.mkdir()  # an existing directory is used; a missing one (n == 2) is created
        r = emulate.run_runner(bundle, spec, ["--input", f"{name}={tmp_path / 'x.npy'}", "--output-dir", str(d),
                                              "--threads", str(n)])
        assert r.returncode == 0, r.stderr
        assert f"threads: {n}, process has" in r.stdout, r.stdout
        outs.append(np.load(next(d.glob("*.npy"))))
    assert outs[0].tobytes() == outs[1].tobytes()
    expected = next(iter(run_ort(str(model), {name: x}).values()))
    assert outs[0].shape == expected.shape and np.abs(outs[0] - expected).max() <= 1e-4
    r = emulate.run_runner(bundle, spec, ["--input", str(tmp_path / "x.npy"), "--threads", "0"])
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and lines == ["edgec-runner: --threads must be >= 1"], r
    r = emulate.run_runner(bundle, spec, ["--input", str(tmp_path / "x.npy"), "--output-dir", str(tmp_path / "no" / "dir")])
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "cannot create --output-dir" in lines[0], r
    r = emulate.run_runner(bundle, spec, ["--prompt-ids", "1", "--threads", "0"], program="edgec-generate")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and lines == ["edgec-generate: --threads must be >= 1"], r
