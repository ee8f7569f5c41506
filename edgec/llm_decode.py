"""Greedy decoding of a decoder-only ONNX model with a KV cache, and the check that edgec's
compiled artifact decodes as onnxruntime does on the same ONNX.

The model takes optimum's inputs (`input_ids`, `attention_mask`, optional `position_ids`,
`past_key_values.{i}.key/.value` [batch, kv_heads, past, head_dim]) and returns `logits` and
`present.{i}.key/.value`. A step feeds the new tokens and the previous step's presents as the
pasts; the prefill starts from an empty cache (past 0). Each runtime decodes on its own (its own
greedy tokens, its own cache), so the check covers the whole loop, not one call.

An artifact compiled with `--kv-cache MAX` (metadata "kv_cache"; passes/shapes/kv_cache_in_place.py)
takes the past inputs as cache buffers [batch, kv_heads, MAX, head_dim] that it writes in place
and returns no presents: `greedy_decode(..., kv_max=MAX)` allocates them once (64-byte aligned,
handed to TVM without a copy) and passes the same arrays on every call; a kept step records the
cache's valid rows [0, T) under the present names, to be compared with another runtime's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edgec.aligned import aligned_zeros
from edgec.compare import OutputDiff, Tolerance, all_match, compare_outputs, summary, worst_error

Runner = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass(frozen=True)
class CacheInput:
    """One past_key_values input: its name, the present output feeding it next step, its layout."""

    name: str
    present: str
    kv_heads: int
    head_dim: int


def cache_inputs(input_shapes: dict[str, tuple], output_names: list[str] | dict[str, tuple],
                 in_place: bool = False) -> list[CacheInput]:
    """The model's past inputs paired with their present outputs (`past_key_values.0.key` ->
    `present.0.key`); the layout is read from the static dims of the input's shape, or of the
    present's when the input leaves them symbolic (onnxruntime-genai's builder names the head size
    `kv_cache_dim`; pass `output_names` as a name -> shape dict then). `in_place`: a --kv-cache
    artifact, whose presents are the cache inputs themselves (not outputs)."""
    out = []
    for name, shape in input_shapes.items():
        if not name.startswith("past_key_values."):
            continue
        present = "present." + name[len("past_key_values."):]
        if not in_place and present not in output_names:
            raise ValueError(f"input '{name}' has no output '{present}' to feed it on the next step")
        if isinstance(output_names, dict) and present in output_names and len(shape) == 4 and len(output_names[present]) == 4:
            shape = [d if isinstance(d, int) else o for d, o in zip(shape, output_names[present])]
        if len(shape) != 4 or not isinstance(shape[1], int) or not isinstance(shape[3], int):
            raise ValueError(f"input '{name}' has shape {list(shape)}; expected [batch, kv_heads, past, head_dim]")
        out.append(CacheInput(name, present, shape[1], shape[3]))
    if not out:
        raise ValueError("the model has no past_key_values.* inputs")
    return out


@dataclass
class Decoded:
    """What one runtime produced: per step (prefill first) all outputs, the greedy tokens, and
    the seconds of each step's call."""

    steps: list[dict[str, np.ndarray]] = field(default_factory=list)
    tokens: np.ndarray | None = None  # [batch, new tokens]
    seconds: list[float] = field(default_factory=list)


def step_feed(input_names, ids: np.ndarray, past: dict[str, np.ndarray], past_len: int) -> dict[str, np.ndarray]:
    """The inputs of one call: new tokens `ids` [batch, n] after `past_len` cached ones."""
    batch, n = ids.shape
    feed = {"input_ids": ids.astype(np.int64), "attention_mask": np.ones((batch, past_len + n), np.int64), **past}
    if "position_ids" in input_names:
        feed["position_ids"] = np.broadcast_to(np.arange(past_len, past_len + n, dtype=np.int64), (batch, n)).copy()
    return feed


def is_decoder(input_names) -> bool:
    """Whether a model takes this module's decoder inputs (input_ids and past_key_values.*)."""
    names = list(input_names)
    return "input_ids" in names and any(n.startswith("past_key_values.") for n in names)


def prefill_feed(input_shapes: dict[str, tuple], ids: np.ndarray) -> dict[str, np.ndarray]:
    """The inputs of a prefill of `ids` [batch, n] from an empty cache (past length 0)."""
    past = {name: np.zeros((ids.shape[0], shape[1], 0, shape[3]), np.float32)
            for name, shape in input_shapes.items() if name.startswith("past_key_values.")}
    return step_feed(list(input_shapes), ids, past, 0)


def kv_max_length(metadata: dict) -> int | None:
    """The cache length of an artifact compiled with --kv-cache (its metadata), else None."""
    kv = metadata.get("kv_cache") or {}
    return int(kv["max_length"]) if kv.get("max_length") else None


def allocate_caches(cache: list[CacheInput], batch: int, max_length: int, dtype=np.float32) -> dict[str, np.ndarray]:
    """A --kv-cache artifact's cache buffers, zeroed, allocated once for a whole decode."""
    return {c.name: aligned_zeros((batch, c.kv_heads, max_length, c.head_dim), dtype) for c in cache}


def greedy_decode(run: Runner, cache: list[CacheInput], input_names: list[str], prompt: np.ndarray,
                  decode_steps: int, keep_steps: bool = True, eos: int | None = None,
                  kv_max: int | None = None) -> Decoded:
    """Prefill `prompt` [batch, n] from an empty cache, then `decode_steps` calls of one token
    each, every one fed the previous call's greedy token and presents. `tokens` holds the
    decode_steps + 1 greedy tokens (the prefill's and every step's), fewer when every row has
    produced `eos` (the end-of-sequence id, kept as the last token). `kv_max`: the model writes
    its cache in place (--kv-cache): buffers of kv_max rows allocated here once, the same arrays
    fed to every call (a kept step gets copies of their valid rows under the present names)."""
    batch = prompt.shape[0]
    in_place = kv_max is not None
    past = (allocate_caches(cache, batch, kv_max) if in_place
            else {c.name: np.zeros((batch, c.kv_heads, 0, c.head_dim), np.float32) for c in cache})
    ids, past_len = prompt.astype(np.int64), 0
    res, tokens = Decoded(), []
    for _ in range(decode_steps + 1):
        n = ids.shape[1]
        feed = step_feed(input_names, ids, past, past_len)
        t0 = time.perf_counter()
        out = run(feed)
        res.seconds.append(time.perf_counter() - t0)
        if keep_steps:  # in place: the valid rows, copied (the buffers change on the next call)
            res.steps.append({**out, **{c.present: past[c.name][:, :, :past_len + n].copy() for c in cache}}
                             if in_place else out)
        ids = np.argmax(out["logits"][:, -1, :], axis=-1).astype(np.int64)[:, None]
        tokens.append(ids[:, 0])
        if eos is not None and np.any(np.stack(tokens, axis=1) == eos, axis=1).all():
            break
        if not in_place:
            past = {c.name: out[c.present] for c in cache}
        past_len += n
    res.tokens = np.stack(tokens, axis=1)
    return res


@dataclass
class StepCheck:
    step: int  # 0: the prefill
    diffs: list[OutputDiff]

    @property
    def ok(self) -> bool:
        return all_match(self.diffs)

    @property
    def max_abs(self) -> float:
        return worst_error(self.diffs)


def compare_decodes(actual: Decoded, reference: Decoded, atol: float = 1e-3) -> tuple[list[StepCheck], bool]:
    """Per step, every output (logits and presents) within `atol`; and whether the greedy tokens
    are identical. A step missing on one side is a mismatch."""
    checks = []
    for i in range(max(len(actual.steps), len(reference.steps))):
        if i >= len(actual.steps) or i >= len(reference.steps):
            checks.append(StepCheck(i, [OutputDiff("step", float("nan"), float("nan"), atol, ["step missing"])]))
            continue
        checks.append(StepCheck(i, compare_outputs(actual.steps[i], reference.steps[i], Tolerance(atol))))
    same = (actual.tokens is not None and reference.tokens is not None
            and actual.tokens.shape == reference.tokens.shape and bool(np.array_equal(actual.tokens, reference.tokens)))
    return checks, same


def describe(checks: list[StepCheck], same_tokens: bool) -> str:
    bad = [c for c in checks if not c.ok]
    worst = max((c.max_abs for c in checks), default=float("nan"))
    text = f"{len(checks)} steps, max abs {worst:.3g}, tokens {'identical' if same_tokens else 'DIFFER'}"
    if bad:
        text += f"; step {bad[0].step}: {summary(bad[0].diffs)}"
    return text
