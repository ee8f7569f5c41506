"""`edgec generate`: greedy generation with a compiled decoder-only model that carries its KV cache
as inputs and outputs (optimum's naming: `past_key_values.{i}.key/.value` in, `present.{i}...` out;
edgec.llm_decode). Token ids in, token ids out; a `tokenizers` tokenizer.json optionally turns text
into ids and back. Reports the prefill latency, the decode rate and, with stats, the peak RSS
against issue 14's bar (edgec.memory: peak while decoding <= 1.2 x (weights + KV cache)).

The cache goes from one step's outputs to the next step's inputs without a copy on the host (the
runtime hands arrays to TVM through DLPack); inside the model, present = Concat(past, new) still
writes the whole cache once per token, as the ONNX interface defines it. An artifact compiled with
`--kv-cache MAX` instead takes cache buffers allocated once here and writes each token's rows
into them in place (no per-token reallocation or copy of the cache); a prompt plus new tokens
beyond MAX is refused before the first call."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from edgec.errors import ArtifactError, EdgecError
from edgec.memory import MemoryBar, kv_cache_bytes, peak_rss_mib, reset_peak, status_mib


@dataclass
class Generation:
    prompt: list[int]
    tokens: list[int]                       # the new tokens, the prefill's first
    prefill_s: float
    step_s: list[float] = field(default_factory=list)  # each decode step's call
    load_s: float = 0.0
    peak_rss_mib: float = 0.0               # of this process, after generating
    rss_before_mib: float = 0.0             # before the artifact was loaded (Python, numpy, TVM's runtime)
    decode_peak_rss_mib: float = 0.0        # the peak over the decode steps (the whole run's where the peak cannot be reset)
    weight_bytes: int = 0                   # the model's initializers (0: an artifact that does not record them)
    kv_bytes: int = 0                       # the KV cache at the last step

    @property
    def memory_bar(self) -> MemoryBar | None:
        if not self.weight_bytes:
            return None
        return MemoryBar(self.decode_peak_rss_mib, self.rss_before_mib, self.weight_bytes, self.kv_bytes)

    @property
    def decode_tokens_per_s(self) -> float:
        return 1.0 / float(np.median(self.step_s)) if self.step_s else float("nan")

    def to_json(self) -> dict:
        bar = self.memory_bar
        return {"prompt": self.prompt, "tokens": self.tokens, "prefill_ms": self.prefill_s * 1e3,
                "decode_tokens_per_s": self.decode_tokens_per_s, "decode_steps": len(self.step_s),
                "load_ms": self.load_s * 1e3, "peak_rss_mib": self.peak_rss_mib, "rss_before_mib": self.rss_before_mib,
                "decode_peak_rss_mib": self.decode_peak_rss_mib, "weight_bytes": self.weight_bytes,
                "kv_cache_bytes": self.kv_bytes, "rss_ratio": bar.ratio if bar else None}


def generate(artifact, prompt_ids, max_new_tokens: int, threads: int | None = None,
             eos_id: int | None = None) -> Generation:
    """Greedy generation of `max_new_tokens` tokens after `prompt_ids` (batch 1) with a host
    artifact, stopping after `eos_id` when it is given; raises ArtifactError when the artifact is
    not a decoder with a KV cache."""
    from edgec.artifact import load_artifact
    from edgec.artifact_run import artifact_threads
    from edgec.llm_decode import cache_inputs, greedy_decode, kv_max_length
    from edgec.targets.tvm.execute import load_on_host

    art = load_artifact(artifact) if not hasattr(artifact, "metadata") else artifact
    prompt = [int(t) for t in prompt_ids]
    if not prompt or max_new_tokens < 1:
        raise EdgecError("generate needs at least one prompt token and --max-new-tokens >= 1")
    names = [t.name for t in art.inputs]
    kv_max = kv_max_length(art.metadata)
    if kv_max is not None and len(prompt) + max_new_tokens - 1 > kv_max:
        raise EdgecError(f"{art.path}: the prompt ({len(prompt)} tokens) and {max_new_tokens} new tokens need "
                         f"{len(prompt) + max_new_tokens - 1} cache rows; the artifact's KV cache has {kv_max} (--kv-cache)")
    try:
        cache = cache_inputs({t.name: t.shape for t in art.inputs}, {t.name: t.shape for t in art.outputs},
                             in_place=kv_max is not None)
    except ValueError as e:
        raise ArtifactError(f"{art.path}: not a decoder with a KV cache ({e})") from None
    if "input_ids" not in names or "logits" not in [t.name for t in art.outputs]:
        raise ArtifactError(f"{art.path}: not a decoder with a KV cache (needs input 'input_ids' and output 'logits')")
    vocab = art.outputs[[t.name for t in art.outputs].index("logits")].shape[-1]
    if isinstance(vocab, int) and max(prompt) >= vocab or min(prompt) < 0:
        raise EdgecError(f"prompt token ids must be in [0, {vocab}), got {min(prompt)}..{max(prompt)}")
    _refuse_cross_artifact(art)
    before = status_mib().get("VmRSS") or peak_rss_mib()  # TVM's runtime is loaded (load_on_host's module imports it)
    t0 = time.perf_counter()
    model = load_on_host(art, artifact_threads(art, threads), "`edgec generate` runs")
    load_s = time.perf_counter() - t0
    run, peaks = peak_after_first_call(model.run)
    res = greedy_decode(run, cache, names, np.array([prompt], np.int64), max_new_tokens - 1, keep_steps=False,
                        eos=eos_id, kv_max=kv_max)
    peak = peak_rss_mib()
    itemsize = np.dtype(art.inputs[names.index(cache[0].name)].dtype).itemsize
    return Generation(prompt, [int(t) for t in res.tokens[0]], res.seconds[0], res.seconds[1:], load_s,
                      max([peak, *peaks]), before, peak,
                      int((art.metadata.get("model") or {}).get("weight_bytes") or 0),
                      kv_cache_bytes(cache, 1, kv_max or len(prompt) + len(res.seconds) - 1, itemsize))


def _refuse_cross_artifact(art) -> None:
    """An artifact for another architecture generates on its device, through its bundle's C
    program edgec-generate (the C API's decode loop); qemu would give tokens but no speed."""
    from edgec.errors import TargetError
    from edgec.targets.tvm.emulate import host_arch
    from edgec.targets.tvm.execute import spec_for

    spec = spec_for(art)
    bundle = art.metadata.get("bundle")
    if spec.arch != host_arch() and bundle:
        emulator = " ".join(spec.emulator) + " " if spec.emulator else ""
        raise TargetError(f"{art.path}: compiled for {spec.name} ({spec.arch}), it generates on its device: {bundle}/edgec-generate "
                          f"model.so --prompt-ids ... (on this host, for tokens but not speed: {emulator}"
                          f"{bundle}/edgec-generate ...)")


def peak_after_first_call(run):
    """`run` wrapped so that its first call (the prefill) ends by recording the peak RSS so far
    and restarting the peak (edgec.memory.reset_peak): the peak read after the loop is then the
    decode steps' alone. The list receives the recorded peak (empty when no reset was possible,
    or before the first call)."""
    peaks: list[float] = []
    state = {"first": True}

    def wrapped(feed):
        out = run(feed)
        if state["first"]:
            state["first"] = False
            before_reset = peak_rss_mib()
            if reset_peak():
                peaks.append(before_reset)
        return out
    return wrapped, peaks


def tokenizer(path: str):
    """A `tokenizers` Tokenizer from tokenizer.json (the `llm` extra installs the package)."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise EdgecError("--tokenizer needs the 'tokenizers' package: pip install 'edgec[llm]'") from None
    try:
        return Tokenizer.from_file(path)
    except Exception as e:  # noqa: BLE001 - the file's problem, in one line
        raise EdgecError(f"{path}: not a tokenizer.json ({' '.join(str(e).split())[:200]})") from None
