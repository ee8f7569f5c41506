"""Decoder-only transformers with a KV cache, as `transformers` + torch.onnx export them (issue 14):
one artifact compiled with symbolic batch / sequence / past dims runs the prefill at 1, 17 and 128
tokens and 32 greedy decode steps, matching onnxruntime on the same ONNX at every step (logits and
presents within 1e-3) with identical tokens. The models are tiny random-weight GPT-2 and
Llama-style (RoPE, RMSNorm, GQA, SwiGLU) configs, committed as ONNX and written by
`python benchmarks/llm_models.py --fixtures tests/models` (torch + transformers are not needed here).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgec.api import CompileOptions, compile_model, run_artifact
from edgec.compare import assert_outputs_match
from edgec.errors import GuardError
from edgec.llm_decode import Decoded, cache_inputs, compare_decodes, describe, greedy_decode
from edgec.reference import ort_session, run_ort
from edgec.targets.tvm.execute import load

MODELS = Path(__file__).resolve().parents[1] / "models"
FIXTURES = ["tiny_gpt2_kv.onnx", "tiny_llama_kv.onnx", "tiny_llama_kv_legacy.onnx"]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=FIXTURES)
def compiled(request, tmp_path_factory):
    path = MODELS / request.param
    art = compile_model(path, tmp_path_factory.mktemp("llm") / "art", CompileOptions(target="host", symbolic_dims=True))
    return path, art


def _runners(path, art):
    sess = ort_session(str(path))
    names = [o.name for o in sess.get_outputs()]
    model = load(art)
    return model.run, lambda feed: dict(zip(names, sess.run(names, feed)))


def _decode_both(path, art, prompt, steps):
    edgec_run, ort_run = _runners(path, art)
    cache = cache_inputs({t.name: t.shape for t in art.inputs}, {t.name: t.shape for t in art.outputs})
    names = [t.name for t in art.inputs]
    return (greedy_decode(edgec_run, cache, names, prompt, steps),
            greedy_decode(ort_run, cache, names, prompt, steps))


def assert_decodes_match(path, art, prompt: np.ndarray, steps: int) -> Decoded:
    """edgec's and onnxruntime's greedy decodes of `prompt`: every step within 1e-3, tokens
    identical, the cache grown by every token; edgec's decode."""
    got, ref = _decode_both(path, art, prompt, steps)
    checks, same = compare_decodes(got, ref, atol=1e-3)
    assert len(checks) == steps + 1 and all(c.ok for c in checks) and same, describe(checks, same)
    assert got.steps[-1]["present.0.key"].shape[2] >= prompt.shape[1] + steps
    return got


def test_compiled_once_with_symbolic_dims(compiled):
    _, art = compiled
    shapes = {t.name: t.shape for t in art.inputs}
    assert shapes["input_ids"] == ("batch", "sequence_length")
    assert shapes["past_key_values.0.key"][0] == "batch" and shapes["past_key_values.0.key"][2] == "past_sequence_length"
    present = {t.name: t.shape for t in art.outputs}["present.0.key"]
    assert present[2] == "past_sequence_length + sequence_length", present
    lowering = art.metadata["lowering"]
    assert lowering["edgec"].get("GatherND", 0) + lowering["edgec"].get("Range", 0) >= 1, lowering
    assert "GatherND" not in lowering["tvm-onnx-frontend"] and "Range" not in lowering["tvm-onnx-frontend"], lowering
    # no silent fallback: the kernels running generic code are named, as many as the counts say
    generic = lowering.get("generic_kernels", {})
    for rule in ("none", "parallel-symbolic"):
        assert len(generic.get(rule, [])) == lowering["schedules"].get(rule, 0), (rule, lowering)
    assert generic.get("parallel-symbolic"), lowering  # symbolic extents do reach the schedules


@pytest.mark.parametrize("prompt_len", [1, 17, 128])
def test_prefill_and_32_decode_steps_match_onnxruntime(compiled, prompt_len):
    path, art = compiled
    vocab = art.outputs[0].shape[-1]
    prompt = np.random.default_rng(prompt_len).integers(0, vocab, (1, prompt_len))
    got = assert_decodes_match(path, art, prompt, 32)
    assert got.steps[-1]["present.0.key"].shape[2] == prompt_len + 32


def test_batch_of_two(compiled):
    path, art = compiled
    assert_decodes_match(path, art, np.random.default_rng(7).integers(0, art.outputs[0].shape[-1], (2, 5)), 3)


def test_mask_shorter_than_the_cache_is_one_clear_error(compiled):
    """The exporters look the attention mask up at every cache position (GatherND, or Gather on
    the flattened mask): a mask shorter than past + new tokens would read past its end. A guard
    stops the run instead."""
    path, art = compiled
    feed = {"input_ids": np.ones((1, 3), np.int64), "attention_mask": np.ones((1, 2), np.int64),
            "position_ids": np.arange(3, dtype=np.int64)[None]}
    for t in art.inputs[3:]:
        feed[t.name] = np.zeros((1, t.shape[1], 0, t.shape[3]), np.float32)
    with pytest.raises(GuardError, match=r"\((GatherND|Gather)\): an index is out of range"):
        run_artifact(art, feed)


def test_token_id_beyond_the_vocabulary_is_one_clear_error(compiled):
    path, art = compiled
    vocab = art.outputs[0].shape[-1]
    feed = {"input_ids": np.array([[1, vocab]], np.int64), "attention_mask": np.ones((1, 2), np.int64),
            "position_ids": np.arange(2, dtype=np.int64)[None]}
    for t in art.inputs[3:]:
        feed[t.name] = np.zeros((1, t.shape[1], 0, t.shape[3]), np.float32)
    with pytest.raises(GuardError, match=r"\(Gather\): an index is out of range"):
        run_artifact(art, feed)


def test_compare_decodes_catches_a_different_token():
    """The check itself can fail: one flipped token, or one step's logits off by 2e-3."""
    steps = [{"logits": np.zeros((1, 1, 4), np.float32)} for _ in range(3)]
    ref = Decoded([dict(s) for s in steps], np.array([[1, 2, 3]]))
    checks, same = compare_decodes(Decoded([dict(s) for s in steps], np.array([[1, 2, 0]])), ref)
    assert all(c.ok for c in checks) and not same
    off = [dict(s) for s in steps]
    off[1] = {"logits": np.full((1, 1, 4), 2e-3, np.float32)}
    checks, same = compare_decodes(Decoded(off, np.array([[1, 2, 3]])), ref)
    assert same and [c.ok for c in checks] == [True, False, True]
    checks, _ = compare_decodes(Decoded(steps[:2], np.array([[1, 2, 3]])), ref)
    assert not checks[2].ok


def test_input_shape_still_specializes(tmp_path):
    """--input-shape pins every dim: a static build of the same model, checked on one decode step."""
    path = MODELS / "tiny_llama_kv.onnx"
    shapes = {"input_ids": [1, 1], "attention_mask": [1, 9], "position_ids": [1, 1]}
    shapes.update({f"past_key_values.{i}.{kv}": [1, 2, 8, 8] for i in range(2) for kv in ("key", "value")})
    art = compile_model(path, tmp_path / "art", CompileOptions(target="host", input_shapes=shapes))
    assert all(all(isinstance(d, int) for d in t.shape) for t in art.inputs)
    rng = np.random.default_rng(0)
    feed = {"input_ids": np.array([[5]], np.int64), "attention_mask": np.ones((1, 9), np.int64),
            "position_ids": np.array([[8]], np.int64)}
    feed.update({n: rng.standard_normal(s).astype(np.float32) for n, s in shapes.items() if n.startswith("past")})
    assert_outputs_match(run_artifact(art, feed), run_ort(str(path), feed), atol=1e-4)
