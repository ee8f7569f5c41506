"""Where candidates are built and timed: MetaSchedule's LocalBuilder with edgec's build function,
and either a LocalRunner (this machine) or an RPCRunner (a device behind a TVM RPC tracker)."""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass

import tvm
from tvm.s_tir import meta_schedule as ms

from edgec.errors import EdgecError
from edgec.targets.tvm.runtime import default_threads


class TuneError(EdgecError):
    """Tuning cannot start: no tasks, an unsupported target, an unreachable RPC tracker."""


@dataclass
class MeasureConfig:
    threads: int | None = None        # runtime threads of the timed kernels (local runner)
    rpc_tracker: str | None = None    # "host:port"
    rpc_key: str | None = None
    number: int = 5                   # runs per timing
    repeat: int = 3                   # timings per candidate (median is kept)
    min_repeat_ms: int = 20
    build_timeout: float = 120.0      # this machine is shared: builds can take tens of seconds
    run_timeout: float = 60.0


def build_kernel(mod, target, _params):
    """MetaSchedule's default build minus `import tvm.s_tir.tensor_intrin`, which registers every
    GPU/Hexagon intrinsic by parsing TVMScript and takes ~27 s per builder worker here (the
    default 30 s build timeout then fails every candidate). CPU fp32 kernels need none. CPU
    kernels go through edgec's CPU pipeline, as `edgec compile` builds them (stack_allocations)."""
    from tvm.driver import build as tvm_build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    from edgec.targets.tvm.stack_allocations import cpu_pipeline

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    cpu = tvm.target.Target(target).get_target_device_type() == 1  # kDLCPU
    return tvm_build(mod, target=target, pipeline=cpu_pipeline() if cpu else "default")


def parse_tracker(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise TuneError(f"--rpc-tracker '{text}' must look like host:port")
    return host, int(port)


def make_builder(cfg: MeasureConfig) -> ms.builder.Builder:
    return ms.builder.LocalBuilder(max_workers=max(1, min(cfg.threads or os.cpu_count() or 1, 2)),
                                   timeout_sec=cfg.build_timeout, f_build=build_kernel)


def make_runner(cfg: MeasureConfig) -> ms.runner.Runner:
    ev = ms.runner.EvaluatorConfig(number=cfg.number, repeat=cfg.repeat, min_repeat_ms=cfg.min_repeat_ms,
                                   enable_cpu_cache_flush=False)
    if cfg.rpc_tracker:
        if not cfg.rpc_key:
            raise TuneError("--rpc-tracker needs --rpc-key (the device key the RPC servers registered)")
        host, port = parse_tracker(cfg.rpc_tracker)
        _check_reachable(host, port)
        rpc = ms.runner.RPCConfig(tracker_host=host, tracker_port=port, tracker_key=cfg.rpc_key,
                                  session_timeout_sec=int(cfg.run_timeout))
        try:
            n = rpc.count_num_servers(allow_missing=False)
        except Exception as e:  # noqa: BLE001 - any failure to reach the tracker is the user's setup
            raise TuneError(f"RPC tracker {host}:{port} key '{cfg.rpc_key}': "
                            f"{' '.join(str(e).split())[:160]}") from None
        return ms.runner.RPCRunner(rpc_config=rpc, evaluator_config=ev, max_workers=max(1, n))
    # timed kernels run in popen workers forked from here: they read the thread pool settings
    # from the environment, as edgec's runtime does (N threads, TVM's default spinning)
    # (TVM's own x86 default, half the logical CPUs, timed every kernel single-threaded on a
    # 2-core VM: `default_threads` is what `edgec run/bench` use)
    os.environ["TVM_NUM_THREADS"] = str(cfg.threads or default_threads())
    return ms.runner.LocalRunner(evaluator_config=ev, timeout_sec=cfg.run_timeout)


def _check_reachable(host: str, port: int, timeout: float = 5.0) -> None:
    """Fail in seconds, not after TVM's 60 s of connection retries."""
    import socket

    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        raise TuneError(f"cannot reach the RPC tracker at {host}:{port} ({e.strerror or e})") from None


def rpc_server_count(tracker: str, key: str) -> int:
    """Servers registered under `key` with the tracker "host:port" (0 if unreachable)."""
    host, port = parse_tracker(tracker)
    try:
        _check_reachable(host, port, 2.0)
        return ms.runner.RPCConfig(tracker_host=host, tracker_port=port, tracker_key=key).count_num_servers()
    except Exception:  # noqa: BLE001 - not up yet
        return 0


def tuning_target(target: tvm.target.Target, threads: int | None) -> tvm.target.Target:
    """The target MetaSchedule searches for: the compile target plus `num-cores` (its rules size
    parallel loops by it)."""
    cfg = dict(target.export())
    cfg["num-cores"] = int(threads or os.cpu_count() or 1)
    host = cfg.pop("host", None)
    return tvm.target.Target(cfg, host=host) if host else tvm.target.Target(cfg)


def latency_us(run_secs) -> float | None:
    secs = [float(s) for s in run_secs or []]
    if not secs or min(secs) >= 1e9:  # MetaSchedule marks failed runs with 1e10 s
        return None
    return statistics.median(secs) * 1e6


def measure_module(mod: tvm.IRModule, target, builder, runner) -> tuple[float | None, str | None]:
    """Build and time one scheduled one-kernel module; (latency in us, error)."""
    return measure_modules([mod], target, builder, runner)[0]


def measure_modules(mods: list[tvm.IRModule], target, builder, runner) -> list[tuple[float | None, str | None]]:
    """Build a batch of scheduled one-kernel modules (in parallel), then time them one after the
    other with the same runner; (latency in us, error) per module, in order."""
    brs = builder.build([ms.builder.BuilderInput(m, target) for m in mods])
    dev = "cpu" if target.kind.name in ("llvm", "c") else target.kind.name
    out: list[tuple[float | None, str | None]] = [(None, None)] * len(mods)
    todo = []
    for i, (m, br) in enumerate(zip(mods, brs)):
        if br.error_msg:
            out[i] = (None, "build: " + _short(br.error_msg))
        else:
            todo.append((i, br, ms.arg_info.ArgInfo.from_prim_func(m["main"])))
    try:
        if todo:
            futs = runner.run([ms.runner.RunnerInput(br.artifact_path, dev, args) for _, br, args in todo])
            for (i, _, _), fut in zip(todo, futs):
                rr = fut.result()
                out[i] = (None, "run: " + _short(rr.error_msg)) if rr.error_msg else (latency_us(rr.run_secs), None)
    finally:
        for _, br, _ in todo:
            _remove(br.artifact_path)
    return out


def _short(msg: str) -> str:
    lines = [ln for ln in str(msg).strip().splitlines() if ln.strip()]
    return " ".join((lines[-1] if lines else "").split())[:200]


def _remove(path: str) -> None:
    import shutil

    if path and os.path.exists(path):
        shutil.rmtree(os.path.dirname(path), ignore_errors=True)
