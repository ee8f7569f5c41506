"""Runs one hostile-input case of issue 11 as a real `edgec` process and judges it by the rules.

A case is a function that prepares its own directory (models, user files, a tampered artifact)
and returns a `Spec`: the argv of `python -m edgec.cli`, the exit code it must give (0: valid
input, the result is then checked; 2: one line on stderr), words that line must contain, and
optionally a signal to send mid-compile. `run_case` then checks, whatever the case:

- the exit code is the declared one; for 2: exactly one stderr line, starting `edgec: error: `,
  without "Traceback" or "internal error"; for a signal: exit 128 + the signal number and one line
  `edgec: interrupted ...`;
- the process finished within the case's limit (a hang is killed with its whole process group);
- neither the process nor any descendant it waited for peaked above 2 GiB resident
  (ru_maxrss of edgec and RUSAGE_CHILDREN of it, taken by a small launcher); an address-space limit
  (RLIMIT_AS 4 GiB, see `address_space_limit`) keeps a memory bomb from taking the machine down;
- no file, directory or link of the case directory outside the paths the command was asked to
  write (`-o`, `--report`, `--dump-ir`, `run --output`) was created, changed or deleted
  (type, mode, size, sha256, link target);
- after a failure (exit 2 or a signal) every such output path is exactly as before: the previous
  artifact edgec finds at `-o` (a copy of the session's artifact unless the case put something
  else there) is byte-identical;
- the per-case TMPDIR is empty afterwards, and no process of the case's group is still running.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SMALL_CNN = EXAMPLES / "small_cnn.onnx"

GIB = 1 << 30
MEMORY_LIMIT = 2 * GIB  # bytes of resident memory any process of a case may peak at
DEFAULT_TIMEOUT = 60.0
TARGET = "x86-64"  # deterministic (host would read /proc/cpuinfo)

# A small launcher between the harness and edgec. It limits the address space, restores the
# default disposition of the termination signals (pytest or TVM pools may have left SIGINT ignored,
# and an ignored signal stays ignored across exec), forks `python -m edgec.cli ARGV`, forwards
# SIGINT/SIGTERM/SIGHUP to it, and when it ends writes its peak RSS (and that of everything it
# waited for) to REPORT and exits the same way. Why not measure the harness's own child: Linux
# carries the parent's resident high-water mark into a child across fork/vfork and exec, so
# wait4() on a child of pytest reports at least pytest's size; a child of this launcher starts
# from the launcher's few MiB.
_LAUNCHER = textwrap.dedent("""
    import os, resource, signal, sys
    limit, report, module, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
    if limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_DFL)
    pid = os.fork()
    if pid == 0:
        os.execv(sys.executable, [sys.executable, "-m", module, *argv])
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, lambda signum, frame: os.kill(pid, signum))
    _, status, ru = os.wait4(pid, 0)
    if report != "-":
        with open(report, "w") as f:
            f.write(f"{ru.ru_maxrss} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    sys.exit(code)
""")


def address_space_limit() -> int:
    """RLIMIT_AS for every case process (0: none), from $EDGEC_HOSTILE_RLIMIT_AS if set.

    The 2 GiB rule is judged on resident memory (ru_maxrss). The address-space limit is only the
    safety net that makes a memory bomb fail fast instead of taking the machine down, so it sits
    above the rule: untouched reservations are not memory (a `read(n)` reserves n bytes up
    front, TVM's thread pool and glibc's malloc arenas reserve address space per core).
    Measured on the 2-core reference machine: a normal `edgec compile examples/small_cnn.onnx`
    peaks at 0.32 GiB resident and 0.56 GiB of address space (it completes under a 700 MiB
    RLIMIT_AS); 4 GiB, plus 96 MiB per core above two, leaves a wide margin.
    """
    env = os.environ.get("EDGEC_HOSTILE_RLIMIT_AS")
    if env is not None:
        return int(env)
    return 2 * MEMORY_LIMIT + 96 * (1 << 20) * max(0, (os.cpu_count() or 2) - 2)


class CaseFailure(AssertionError):
    """A rule a case broke (raised by checks of exit-0 results)."""


@dataclass
class Outcome:
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    maxrss_kib: int = 0  # the edgec process itself
    descendants_maxrss_kib: int = 0  # the largest process edgec started and waited for
    timed_out: bool = False
    pid: int = 0  # also the process group of the case
    signal_sent: int | None = None


@dataclass
class Spec:
    """What one case runs and what it must give."""

    argv: list[str]
    code: int = 2  # 0: valid input (then `check` runs), 2: a one-line user error
    words: tuple[str, ...] = ()  # for exit 2: the stderr line contains each (case-insensitive)
    check: Callable[[CaseDir, Outcome], None] | None = None  # for exit 0: raises CaseFailure
    timeout: float = DEFAULT_TIMEOUT
    signal: int | None = None  # send to edgec once the compile's `.NAME.tmp-*` dir appears beside -o
    also_ok: tuple[int, ...] = ()  # further accepted codes (0 or 2), e.g. "finish or refuse"
    previous: bool = True  # put the session artifact at compile's -o when nothing is there yet
    never: tuple[str, ...] = ()  # absolute paths that must never come to exist (markers)


@dataclass
class Case:
    name: str
    setup: Callable[[CaseDir], Spec]
    group: str

    def __repr__(self) -> str:
        return self.name


class Group:
    """`group = Group("files")`, then `@group` on each `def name(d: CaseDir) -> Spec`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.cases: list[Case] = []

    def __call__(self, fn: Callable[[CaseDir], Spec]) -> Callable[[CaseDir], Spec]:
        self.cases.append(Case(f"{self.name}-{fn.__name__.strip('_').replace('_', '-')}", fn, self.name))
        return fn


class Session:
    """What all cases share: a root directory, the bundle-runner cache, the previous artifact."""

    module = "edgec.cli"  # what the launcher runs (the harness's own tests swap in a fake)

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.cache = self.root / "edgec-cache"  # EDGEC_CACHE: edgec-owned, outside every case dir
        self.cache.mkdir(parents=True, exist_ok=True)
        self.as_limit = address_space_limit()
        self._lock = threading.Lock()
        self._artifact: Path | None = None

    def env(self, tmpdir: Path) -> dict[str, str]:
        env = dict(os.environ)  # HOME unchanged
        env["TMPDIR"] = str(tmpdir)
        env["EDGEC_CACHE"] = str(self.cache)
        env.pop("PYTHONSTARTUP", None)
        return env

    def command(self, argv: list[str], report: Path | None = None) -> list[str]:
        return [sys.executable, "-c", _LAUNCHER, str(self.as_limit), str(report or "-"), self.module, *map(str, argv)]

    def edgec(self, argv: list[str], cwd: Path, tmpdir: Path, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run edgec to completion (for session set-up and result checks)."""
        tmpdir.mkdir(parents=True, exist_ok=True)
        return subprocess.run(self.command(argv), cwd=cwd, env=self.env(tmpdir), capture_output=True, text=True,
                              timeout=timeout, start_new_session=True)

    @property
    def artifact(self) -> Path:
        """A valid artifact of examples/small_cnn.onnx, compiled once per session by the real CLI."""
        with self._lock:
            if self._artifact is None:
                d = self.root / "session"
                d.mkdir(exist_ok=True)
                art = d / "small_cnn"
                r = self.edgec(["compile", str(SMALL_CNN), "-t", TARGET, "-o", str(art)], d, d / "tmp", timeout=300)
                if r.returncode != 0 or not (art / "metadata.json").is_file():
                    raise RuntimeError(f"cannot compile the session artifact: exit {r.returncode}: {r.stderr.strip()}")
                self._artifact = art
            return self._artifact


class CaseDir:
    """The directory a case prepares and edgec runs in (its cwd), with helpers for set-up."""

    def __init__(self, session: Session, base: Path) -> None:
        self.session = session
        self.base = base
        self.work = base / "work"
        self.tmp = base / "tmp"
        self.scratch = base / "scratch"  # the harness's own files (logs, C test files): never seen by edgec
        for d in (self.work, self.tmp, self.scratch):
            d.mkdir(parents=True)

    def path(self, rel: str) -> Path:
        return self.work / rel

    def write(self, rel: str, data: bytes | str) -> str:
        p = self.path(rel)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
        return rel

    def save(self, rel: str, model) -> str:
        return self.write(rel, model.SerializeToString())

    def fifo(self, rel: str) -> str:
        p = self.path(rel)
        p.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(p)
        return rel

    def symlink(self, rel: str, target: str | os.PathLike) -> str:
        p = self.path(rel)
        p.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, p)
        return rel

    def small_cnn(self, rel: str = "small_cnn.onnx") -> str:
        p = self.path(rel)
        p.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SMALL_CNN, p)
        return rel

    def artifact(self, rel: str = "art") -> str:
        """A copy of the session's valid artifact (symlinks preserved)."""
        shutil.copytree(self.session.artifact, self.path(rel), symlinks=True)
        return rel

    def evil_library(self, rel: str, marker: Path) -> str:
        """A real shared library whose constructor creates `marker` when anything loads it."""
        src = self.scratch / "evil.c"
        src.write_text(textwrap.dedent(f"""
            #include <fcntl.h>
            #include <unistd.h>
            __attribute__((constructor)) static void edgec_hostile_evil(void) {{
                int fd = open("{marker}", O_CREAT | O_WRONLY, 0644);
                if (fd >= 0) close(fd);
            }}
            int edgec_hostile_evil_symbol(void) {{ return 42; }}
        """))
        out = self.path(rel)
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(out), str(src)], check=True, capture_output=True,
                       cwd=self.scratch)
        return rel

    # ---- checks for exit-0 results -------------------------------------------------------------

    def check_artifact(self, out: str) -> None:
        meta = self.path(out) / "metadata.json"
        if not meta.is_file():
            raise CaseFailure(f"exit 0 but {out}/metadata.json is missing")
        lib = json.loads(meta.read_text()).get("library", "model.so")
        if not (self.path(out) / lib).is_file():
            raise CaseFailure(f"exit 0 but {out}/{lib} is missing")

    def check_run(self, out: str, model: str) -> None:
        """`edgec run OUT --compare-onnx MODEL` exits 0: the compiled result is correct."""
        self.check_artifact(out)
        r = self.session.edgec(["run", out, "--compare-onnx", model], self.work, self.scratch / "tmp-run")
        if r.returncode != 0:
            last = r.stderr.strip().splitlines()[-1:] or [""]
            raise CaseFailure(f"`edgec run {out} --compare-onnx` exit {r.returncode}: {last[0]}")

    def check_header(self, out: str, macro: str = "EDGEC_PWNED", symbol: str = "edgec_pwned") -> None:
        """model.h compiles with `gcc -fsyntax-only -Wall -Werror -trigraphs`, defines no `macro`
        and declares nothing named `symbol` (the test file's typedef would clash with it)."""
        header = self.path(out) / "model.h"
        if not header.is_file():
            raise CaseFailure(f"{out}/model.h is missing")
        test = self.scratch / "use_model_h.c"
        test.write_text(f'#include "model.h"\n#ifdef {macro}\n#error "model.h defines {macro}"\n#endif\n'
                        f"typedef char {symbol};\nint main(void) {{ return EDGEC_MODEL_NUM_INPUTS - EDGEC_MODEL_NUM_INPUTS; }}\n")
        for std in ("-std=c11", "-std=gnu89"):
            r = subprocess.run(["gcc", "-fsyntax-only", "-Wall", "-Werror", "-trigraphs", std, "-I", str(header.parent),
                                str(test)], capture_output=True, text=True, cwd=self.scratch)
            if r.returncode != 0:
                raise CaseFailure(f"model.h does not compile cleanly ({std}): {' '.join(r.stderr.split())[:600]}")

    def check_report(self, report: str) -> None:
        p = self.path(report)
        if not p.is_file():
            raise CaseFailure(f"exit 0 but the report {report} is missing")
        text = p.read_text(errors="replace")
        if re.search(r"<\s*script", text, re.IGNORECASE):
            raise CaseFailure(f"{report} holds an unescaped <script")


# ---- snapshots ---------------------------------------------------------------------------------

_HASH_LIMIT = 256 << 20


def _entry(p: Path):
    st = os.lstat(p)
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode):
        return ("symlink", os.readlink(p))
    if stat.S_ISDIR(st.st_mode):
        return ("dir", mode)
    if stat.S_ISREG(st.st_mode):
        if st.st_size > _HASH_LIMIT:  # a size bomb's sparse file: identity, size and mtime instead
            return ("file", mode, st.st_size, f"ino {st.st_ino} mtime {st.st_mtime_ns}")
        h = hashlib.sha256()
        try:
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            digest = h.hexdigest()
        except OSError:
            digest = None
        return ("file", mode, st.st_size, digest)
    kind = "fifo" if stat.S_ISFIFO(st.st_mode) else "socket" if stat.S_ISSOCK(st.st_mode) else "device"
    return (kind, mode, getattr(st, "st_rdev", 0))


def snapshot(root: Path, exclude: frozenset[Path] = frozenset()) -> dict[str, tuple]:
    """rel path -> (kind, mode, size, sha256) / ("symlink", target) for everything under `root`."""
    out: dict[str, tuple] = {}

    def walk(d: Path) -> None:
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as e:
            out[str(d.relative_to(root)) + "/"] = ("unlistable", e.errno)
            return
        for e in entries:
            p = Path(e.path)
            if p in exclude:
                continue
            rec = _entry(p)
            out[str(p.relative_to(root))] = rec
            if rec[0] == "dir":
                walk(p)

    walk(root)
    return out


def snapshot_path(p: Path) -> dict[str, tuple] | None:
    """The entry at `p` and, for a real directory, everything under it; None when absent."""
    if not os.path.lexists(p):
        return None
    rec = _entry(p)
    snap = {".": rec}
    if rec[0] == "dir":
        snap.update(snapshot(p))
    return snap


def diff(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    lines = []
    for k in sorted(set(before) | set(after)):
        b, a = before.get(k), after.get(k)
        if b == a:
            continue
        what = "created" if b is None else "deleted" if a is None else "changed"
        lines.append(f"{what}: {k!r} {b if b is not None else ''} -> {a if a is not None else ''}".rstrip())
    return lines


# ---- argv ----------------------------------------------------------------------------------------

_OUTPUT_OPTIONS = {"-o", "--output", "--report", "--dump-ir"}


def output_paths(argv: list[str]) -> list[str]:
    """The paths the command is asked to write (as given)."""
    outs = []
    for i, a in enumerate(argv):
        if a in _OUTPUT_OPTIONS and i + 1 < len(argv):
            outs.append(argv[i + 1])
        elif "=" in a and a.split("=", 1)[0] in _OUTPUT_OPTIONS - {"-o"}:
            outs.append(a.split("=", 1)[1])
    return outs


def compile_output(argv: list[str]) -> str | None:
    if not argv or argv[0] != "compile":
        return None
    for i, a in enumerate(argv):
        if a in ("-o", "--output") and i + 1 < len(argv):
            return argv[i + 1]
    return None


def compile_argv(model: str, *extra: str, out: str = "out") -> list[str]:
    return ["compile", model, "-t", TARGET, "-o", out, *extra]


# ---- running -------------------------------------------------------------------------------------

def _inside(p: Path, root: Path) -> bool:
    try:
        p.relative_to(root)
        return True
    except ValueError:
        return False


def _group_members(pgid: int) -> list[str]:
    """Live (non-zombie) processes of process group `pgid`, as 'pid cmdline'."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                found.append(f"{d.name} {cmd[:120]}")
        except (OSError, IndexError, ValueError):
            continue
    return found


def _leftover_processes(pgid: int) -> list[str]:
    """Processes of the case's group still alive a second after edgec exited (then killed)."""
    deadline = time.monotonic() + 1.0
    while True:
        live = _group_members(pgid)
        if not live or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if live:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return live


def _launch_and_wait(session: Session, cd: CaseDir, spec: Spec, out: Outcome) -> None:
    log_out, log_err = cd.scratch / "stdout", cd.scratch / "stderr"
    watch = None
    if spec.signal is not None:
        o = compile_output(spec.argv)
        if o:
            target = (cd.work / o)
            watch = (target.parent, f".{target.name}.tmp-*")
    with open(log_out, "wb") as fo, open(log_err, "wb") as fe:
        report = cd.scratch / "rusage"
        t0 = time.monotonic()
        proc = subprocess.Popen(session.command(spec.argv, report), cwd=cd.work, env=session.env(cd.tmp),
                                stdin=subprocess.DEVNULL, stdout=fo, stderr=fe, start_new_session=True)
        out.pid = proc.pid
        deadline = t0 + spec.timeout
        status, ru = 0, None
        try:
            while True:
                pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if watch is not None and out.signal_sent is None and any(watch[0].glob(watch[1])):
                    os.kill(proc.pid, spec.signal)
                    out.signal_sent = spec.signal
                if time.monotonic() > deadline:
                    out.timed_out = True
                    os.killpg(proc.pid, signal.SIGKILL)
                    pid, status, ru = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.004 if watch is not None and out.signal_sent is None else 0.02)
        finally:
            if ru is None:  # interrupted harness: do not leave the case running
                os.killpg(proc.pid, signal.SIGKILL)
                os.wait4(proc.pid, 0)
        out.seconds = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.returncode = proc.returncode
        if report.is_file():  # absent when the launcher itself was killed (a hang)
            own, everything = map(int, report.read_text().split())
            out.maxrss_kib, out.descendants_maxrss_kib = own, everything
        # else the launcher was killed (a hang): its own ru_maxrss would be the harness's size, not
        # edgec's, so the peak stays unknown (0); the hang is the failure reported
    out.stdout = log_out.read_text(errors="replace")
    out.stderr = log_err.read_text(errors="replace")


def _judge_exit(spec: Spec, out: Outcome) -> list[str]:
    fails = []
    err = out.stderr
    lines = err.rstrip("\n").split("\n") if err.strip() else []
    shown = " | ".join(lines)[:500]
    if spec.signal is not None:
        want = 128 + spec.signal
        if out.signal_sent is None:
            fails.append(f"the compile ended (exit {out.returncode}) before its temporary directory appeared: "
                         f"no signal sent; stderr: {shown}")
        elif out.returncode != want:
            fails.append(f"exit {out.returncode} after {signal.Signals(spec.signal).name}, expected {want} "
                         f"(128 + signal: edgec cleans up and exits); stderr: {shown}")
        if out.signal_sent is not None and (len(lines) != 1 or not lines[0].startswith("edgec: interrupted")):
            fails.append(f"stderr is not one line 'edgec: interrupted ...': {shown!r}")
        return fails
    accepted = (spec.code, *spec.also_ok)
    if out.returncode not in accepted:
        fails.append(f"exit {out.returncode}, expected {' or '.join(map(str, accepted))}; stderr: {shown}")
        return fails
    if "Traceback" in err:
        fails.append("a Traceback on stderr")
    if out.returncode == 2:
        if len(lines) != 1:
            fails.append(f"{len(lines)} lines on stderr, expected exactly one: {shown!r}")
        elif not lines[0].startswith("edgec: error: "):
            fails.append(f"stderr line does not start with 'edgec: error: ': {shown!r}")
        if "internal error" in err:
            fails.append(f"'internal error' on stderr: {shown!r}")
        missing = [w for w in spec.words if w.lower() not in err.lower()]
        if missing:
            fails.append(f"stderr line does not name {missing}: {shown!r}")
    return fails


def run_case(case: Case, session: Session, base: Path) -> tuple[list[str], Outcome]:
    """Prepare, run and judge one case; returns (broken rules, outcome)."""
    cd = CaseDir(session, base)
    spec = case.setup(cd)
    out = Outcome()
    work = cd.work
    outputs = [work / o for o in output_paths(spec.argv) if o.strip()]
    outputs = [Path(os.path.normpath(p)) for p in outputs if _inside(Path(os.path.normpath(p)), work)]
    art_out = compile_output(spec.argv)
    if spec.previous and art_out and art_out.strip():
        dest = Path(os.path.normpath(work / art_out))
        if _inside(dest, work) and dest != work and not os.path.lexists(dest) and dest.parent.is_dir():
            shutil.copytree(session.artifact, dest, symlinks=True)
    exclude = frozenset(outputs)
    before = snapshot(work, exclude)
    outputs_before = {p: snapshot_path(p) for p in outputs}

    _launch_and_wait(session, cd, spec, out)

    fails: list[str] = []
    if out.timed_out:
        fails.append(f"hung: killed after its {spec.timeout:.0f} s limit")
    else:
        fails += _judge_exit(spec, out)
    leftover = _leftover_processes(out.pid)
    if leftover:
        fails.append(f"processes still running after edgec exited: {leftover}")
    started = out.descendants_maxrss_kib if out.descendants_maxrss_kib > out.maxrss_kib else 0
    for kib, who in ((out.maxrss_kib, "edgec"), (started, "a process edgec started")):
        if kib * 1024 > MEMORY_LIMIT:
            fails.append(f"{who} peaked at {kib / (1 << 20):.2f} GiB resident, over 2 GiB")
    after = snapshot(work, exclude)
    changes = diff(before, after)
    if changes:
        fails.append("files outside the outputs changed: " + "; ".join(changes[:12])
                     + (f"; ... {len(changes) - 12} more" if len(changes) > 12 else ""))
    failed = out.returncode != 0 or out.timed_out
    if failed:
        for p in outputs:
            ch = diff(outputs_before[p] or {}, snapshot_path(p) or {})
            if ch:
                fails.append(f"output {p.relative_to(work)} not intact after the failure: " + "; ".join(ch[:8]))
    for marker in spec.never:
        if os.path.lexists(marker):
            fails.append(f"{marker} exists: something ran or wrote what it must not")
    if not failed and spec.check is not None and not fails:
        try:
            spec.check(cd, out)
        except CaseFailure as e:
            fails.append(str(e))
    left = sorted(os.listdir(cd.tmp))
    if left:
        why = " (.ses: onnxruntime's telemetry session file)" if ".ses" in left else ""
        fails.append(f"left in TMPDIR: {left[:10]}{why}")
    return fails, out
