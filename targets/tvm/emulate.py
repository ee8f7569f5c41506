"""Run a bundle's `edgec-runner` on this machine: natively when the arch matches, else under the
target's emulator (`spec.emulator`, e.g. `qemu-aarch64 -L /usr/aarch64-linux-gnu`).

qemu proves correctness, not speed: timings printed under emulation mean nothing for the board.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from edgec.errors import TargetError
from edgec.targets.registry import TargetSpec

_HOST_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64",
              "armv7l": "armv7"}
_OUTPUT_LINE = re.compile(r"^output (\d+) '(.*)' .* -> (.+)$")
_STEP_LINE = re.compile(r"^step (\d+) .* token=\d+ ([0-9.]+) ms$")
_EMULATOR_PACKAGE = "qemu-user"


def host_arch() -> str:
    return _HOST_ARCH.get(platform.machine().lower(), platform.machine().lower())


def command_prefix(spec: TargetSpec) -> list[str]:
    """Command prefix that runs `spec`'s binaries here ([] when native); TargetError if the
    emulator is needed but missing (names the Debian package)."""
    if spec.arch == host_arch():
        return []
    if not spec.emulator:
        raise TargetError(f"cannot run {spec.arch} binaries of target '{spec.name}' on this "
                          f"{host_arch()} host: the target has no emulator")
    if shutil.which(spec.emulator[0]) is None:
        raise TargetError(f"running target '{spec.name}' here needs the emulator "
                          f"'{spec.emulator[0]}', which is not installed: "
                          f"apt-get install {_EMULATOR_PACKAGE}")
    return list(spec.emulator)


def run_runner(bundle_dir: str | Path, spec: TargetSpec, args: list[str],
               timeout: float = 600, program: str = "edgec-runner") -> subprocess.CompletedProcess:
    """Run `<bundle>/<program> <bundle>/model.so *args` (under emulation if needed); program is
    one of the bundle's binaries (edgec-runner, edgec-generate)."""
    bundle = Path(bundle_dir).resolve()
    runner = bundle / program
    if not runner.is_file():
        raise TargetError(f"'{bundle}' is not a bundle (no {program}); see make_bundle")
    cmd = [*command_prefix(spec), str(runner), str(bundle / "model.so"), *args]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TargetError(f"runner timed out after {timeout:.0f} s: {' '.join(cmd)}") from None


def run_bundle(bundle_dir: str | Path, spec: TargetSpec, inputs: dict[str, np.ndarray],
               repeat: int = 1, timeout: float = 600) -> dict[str, np.ndarray]:
    """Run the bundle on `inputs` (name -> array; names as in metadata.json) in a separate
    process, under `spec.emulator` when this host cannot run the target's code directly.
    Returns output name -> array, in the model's output order."""
    with tempfile.TemporaryDirectory(prefix="edgec-run-") as tmp:
        tmpd = Path(tmp)
        args = []
        for i, (name, arr) in enumerate(inputs.items()):
            path = tmpd / f"in{i}.npy"
            np.save(path, np.asarray(arr))  # np.save writes C order; ascontiguousarray made a scalar 1-D
            args += ["--input", f"{name}={path}"]
        out = tmpd / "out"
        out.mkdir()
        args += ["--output-dir", str(out), "--repeat", str(repeat)]
        r = run_runner(bundle_dir, spec, args, timeout)
        if r.returncode != 0:
            msg = (r.stderr.strip() or r.stdout.strip()).splitlines()
            raise TargetError(f"edgec-runner failed (exit {r.returncode}) for target '{spec.name}': "
                              + " | ".join(msg[-5:]))
        results = {}
        for line in r.stdout.splitlines():
            m = _OUTPUT_LINE.match(line)
            if m:
                results[m.group(2)] = np.load(m.group(3))
        if not results:
            raise TargetError(f"edgec-runner printed no outputs: {r.stdout.strip()[:500]}")
        return results


def run_generate(bundle_dir: str | Path, spec: TargetSpec, prompt_ids, max_new_tokens: int,
                 timeout: float = 600):
    """Greedy decoding with the bundle's C program edgec-generate (the C API's decode loop: prefill
    on an empty cache, then max_new_tokens - 1 one-token steps), in a separate process, under
    `spec.emulator` when needed. Returns an edgec.llm_decode.Decoded: per step {"logits": array},
    tokens [1, max_new_tokens], and the step times edgec-generate measured (meaningless under qemu)."""
    from edgec.llm_decode import Decoded

    with tempfile.TemporaryDirectory(prefix="edgec-generate-") as tmp:
        args = ["--prompt-ids", ",".join(str(int(t)) for t in prompt_ids),
                "--max-new-tokens", str(max_new_tokens), "--logits-dir", tmp]
        r = run_runner(bundle_dir, spec, args, timeout, program="edgec-generate")
        if r.returncode != 0:
            msg = (r.stderr.strip() or r.stdout.strip()).splitlines()
            raise TargetError(f"edgec-generate failed (exit {r.returncode}) for target '{spec.name}': "
                              + " | ".join(msg[-5:]))
        res = Decoded()
        for line in r.stdout.splitlines():
            if line.startswith("tokens:"):
                res.tokens = np.array([[int(t) for t in line.split()[1:]]], np.int64)
            m = _STEP_LINE.match(line)
            if m:
                res.seconds.append(float(m.group(2)) / 1e3)
                res.steps.append({"logits": np.load(Path(tmp) / f"logits_{m.group(1)}.npy")})
        if res.tokens is None or len(res.steps) != max_new_tokens:
            raise TargetError(f"edgec-generate printed {len(res.steps)} steps for {max_new_tokens} tokens: "
                              f"{r.stdout.strip()[-500:]}")
        return res
