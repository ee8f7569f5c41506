"""Resident memory of this process, and issue 14's bar for LLMs: peak RSS while decoding
<= 1.2 x (weight bytes + KV cache bytes).

Figures come from /proc/self/status (Linux): VmRSS (now), VmHWM (the peak since the process
started or since `reset_peak`), RssAnon / RssFile (private memory against pages of mapped files,
such as weights.bin). getrusage's ru_maxrss is not used: it keeps the parent's peak across fork
and exec. The bar's "RSS" is the growth above what the process held before the model was loaded
(Python, numpy and TVM's runtime: ~400 MiB that a C program would not have)."""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1 << 20
BAR = 1.2


def status_mib() -> dict[str, float]:
    """VmRSS, VmHWM, RssAnon, RssFile of this process in MiB (empty off Linux)."""
    out = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key = line.split(":", 1)[0]
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                    out[key] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return out


def peak_rss_mib() -> float:
    """This process's peak resident set (VmHWM) in MiB; getrusage's figure off Linux."""
    peak = status_mib().get("VmHWM")
    if peak is not None:
        return peak
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> bool:
    """Restart VmHWM from the current RSS (Linux: "5" to /proc/self/clear_refs), so a later
    `peak_rss_mib` is the peak of what ran since; False when the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def kv_cache_bytes(cache, batch: int, positions: int, itemsize: int = 4) -> int:
    """Bytes of a KV cache (edgec.llm_decode.CacheInput per past input) holding `positions`
    tokens for `batch` sequences."""
    return sum(batch * c.kv_heads * positions * c.head_dim * itemsize for c in cache)


@dataclass
class MemoryBar:
    """Peak RSS above the pre-load baseline against weight + KV cache bytes."""

    peak_mib: float        # peak RSS while decoding (absolute)
    baseline_mib: float    # RSS before the model was loaded
    weight_bytes: int
    kv_bytes: int

    @property
    def model_mib(self) -> float:
        return self.peak_mib - self.baseline_mib

    @property
    def ratio(self) -> float:
        return self.model_mib * MiB / max(self.weight_bytes + self.kv_bytes, 1)

    @property
    def met(self) -> bool:
        return self.ratio <= BAR

    def line(self) -> str:
        return (f"peak RSS while decoding {self.peak_mib:.0f} MiB, {self.model_mib:.0f} MiB above the "
                f"{self.baseline_mib:.0f} MiB before loading = {self.ratio:.2f} x (weights "
                f"{self.weight_bytes / MiB:.0f} MiB + KV cache {self.kv_bytes / MiB:.1f} MiB): "
                f"{'MET' if self.met else 'MISSED'} (bar <= {BAR} x)")
