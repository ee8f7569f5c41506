"""--kv-cache MAX (issue 14: "the KV cache lives in buffers the runtime allocates once"): a tiny
GPT-2 compiled with caches of 64 rows that the model writes in place decodes as onnxruntime does on
the original ONNX (every step's logits within 1e-4, the buffers' valid rows against ORT's presents,
identical greedy tokens), and so do the Llama-style fixtures (grouped-query attention) and the
armv8 bundle's C program under qemu; the same buffers serve every call; a run past the 64 rows fails with one
guard message before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgec.api import CompileOptions, compile_model
from edgec.artifact import load_artifact
from edgec.errors import GuardError
from edgec.generate import generate
from edgec.llm_decode import (
    allocate_caches,
    cache_inputs,
    compare_decodes,
    describe,
    greedy_decode,
    kv_max_length,
)
from edgec.reference import ort_session
from edgec.targets.tvm.execute import load

MODELS = Path(__file__).resolve().parents[1] / "models"
GPT2 = MODELS / "tiny_gpt2_kv.onnx"
MAX = 64
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    return compile_model(GPT2, tmp_path_factory.mktemp("kv") / "art",
                         CompileOptions(target="host", symbolic_dims=True, kv_cache=MAX))


def _cache(art):
    return cache_inputs({t.name: t.shape for t in art.inputs}, {t.name: t.shape for t in art.outputs}, in_place=True)


def _ort_run(path: Path = GPT2):
    sess = ort_session(str(path))
    names = [o.name for o in sess.get_outputs()]
    return lambda feed: dict(zip(names, sess.run(names, feed)))


def test_python_api_keyword(tmp_path):
    import edgec

    art = edgec.compile(GPT2, output=tmp_path / "art", kv_cache=8)
    assert art.metadata["kv_cache"]["max_length"] == 8 and [t.name for t in art.outputs] == ["logits"]


def test_artifact_takes_cache_buffers_and_returns_logits_only(compiled):
    assert compiled.metadata["kv_cache"] == {"max_length": MAX, "requested": MAX, "caches": [
        f"past_key_values.{i}.{kv}" for i in range(2) for kv in ("key", "value")]}
    assert [t.name for t in compiled.outputs] == ["logits"]
    assert all(t.shape[1:] == (4, MAX, 8) for t in compiled.inputs if t.name.startswith("past_key_values."))


@pytest.mark.parametrize("prompt_len", [1, 17])
def test_prefill_and_decode_steps_match_onnxruntime(compiled, prompt_len):
    cache, names = _cache(compiled), [t.name for t in compiled.inputs]
    prompt = np.random.default_rng(prompt_len).integers(0, 256, (1, prompt_len))
    got = greedy_decode(load(compiled).run, cache, names, prompt, 12, kv_max=kv_max_length(compiled.metadata))
    want = greedy_decode(_ort_run(), cache, names, prompt, 12)
    checks, same = compare_decodes(got, want, atol=1e-4)
    assert len(checks) == 13 and all(c.ok for c in checks) and same, describe(checks, same)
    assert got.steps[-1]["present.1.value"].shape == (1, 4, prompt_len + 12, 8)


def test_batch_of_two(compiled):
    cache, names = _cache(compiled), [t.name for t in compiled.inputs]
    prompt = np.random.default_rng(7).integers(0, 256, (2, 5))
    got = greedy_decode(load(compiled).run, cache, names, prompt, 4, kv_max=MAX)
    want = greedy_decode(_ort_run(), cache, names, prompt, 4)
    checks, same = compare_decodes(got, want, atol=1e-4)
    assert len(checks) == 5 and all(c.ok for c in checks) and same, describe(checks, same)


@pytest.mark.parametrize("name", ["tiny_llama_kv.onnx", "tiny_llama_kv_legacy.onnx"])
def test_grouped_query_llama_decodes_as_onnxruntime(tmp_path, name):
    """Llama-style (RoPE, RMSNorm, SwiGLU, 2 kv heads for 4 query heads): the kernel reads kv head
    h // 2 of the cache buffers instead of the exporter's repeat of the heads."""
    path = MODELS / name
    art = compile_model(path, tmp_path / "art", CompileOptions(target="host", symbolic_dims=True, kv_cache=MAX))
    cache, names = _cache(art), [t.name for t in art.inputs]
    assert cache[0].kv_heads == 2
    prompt = np.random.default_rng(3).integers(0, art.outputs[0].shape[-1], (1, 17))
    got = greedy_decode(load(art).run, cache, names, prompt, 12, kv_max=MAX)
    want = greedy_decode(_ort_run(path), cache, names, prompt, 12)
    checks, same = compare_decodes(got, want, atol=1e-4)
    assert len(checks) == 13 and all(c.ok for c in checks) and same, describe(checks, same)


def test_the_same_buffers_are_written_in_place(compiled):
    """Two calls on the same arrays: the first call's rows stay, the second's land after them,
    rows beyond T are untouched."""
    model, cache = load(compiled), _cache(compiled)
    buffers = allocate_caches(cache, 1, MAX)
    for b in buffers.values():
        b[...] = 7.0
    addresses = {n: b.ctypes.data for n, b in buffers.items()}
    feed = {"input_ids": np.array([[3, 4, 5]]), "attention_mask": np.ones((1, 3), np.int64),
            "position_ids": np.arange(3)[None], **buffers}
    model.run(feed)
    first = buffers["past_key_values.0.key"][:, :, :3].copy()
    feed.update(input_ids=np.array([[6]]), attention_mask=np.ones((1, 4), np.int64), position_ids=np.array([[3]]))
    model.run(feed)
    k = buffers["past_key_values.0.key"]
    assert {n: b.ctypes.data for n, b in buffers.items()} == addresses
    np.testing.assert_array_equal(k[:, :, :3], first)
    assert not np.any(k[:, :, 3] == 7.0) and np.all(k[:, :, 4:] == 7.0)


def test_past_the_cache_is_one_clear_error(compiled):
    model, cache = load(compiled), _cache(compiled)
    buffers = allocate_caches(cache, 1, MAX)
    before = {n: b.copy() for n, b in buffers.items()}
    feed = {"input_ids": np.array([[1, 2]]), "attention_mask": np.ones((1, MAX + 1), np.int64),
            "position_ids": np.array([[MAX - 1, MAX]]), **buffers}
    with pytest.raises(GuardError, match=rf"edgec.KVCacheWrite: past \+ new tokens exceed the KV cache's {MAX} rows"):
        model.run(feed)
    assert all(np.array_equal(buffers[n], before[n]) for n in buffers)


def test_mask_shorter_than_the_new_tokens_is_one_clear_error(compiled):
    """A negative past (attention_mask shorter than input_ids) would write before row 0."""
    model, cache = load(compiled), _cache(compiled)
    buffers = allocate_caches(cache, 1, MAX)
    feed = {"input_ids": np.array([[1, 2, 3]]), "attention_mask": np.ones((1, 2), np.int64),
            "position_ids": np.array([[0, 1, 2]]), **buffers}
    with pytest.raises(GuardError, match="attention_mask is shorter than input_ids"):
        model.run(feed)
    assert not any(b.any() for b in buffers.values())


def test_generate_uses_the_buffers_and_refuses_a_run_past_them(compiled):
    prompt = [5, 9, 2]
    gen = generate(compiled, prompt, 6)
    want = greedy_decode(_ort_run(), _cache(compiled), [t.name for t in compiled.inputs], np.array([prompt]), 5)
    assert gen.tokens == [int(t) for t in want.tokens[0]]
    with pytest.raises(Exception, match=rf"KV cache has {MAX} \(--kv-cache\)"):
        generate(compiled, prompt, MAX)


@pytest.mark.parametrize("name", ["tiny_gpt2_kv.onnx", "tiny_llama_kv.onnx"])
def test_armv8_bundle_generates_with_the_buffers_under_qemu(tmp_path, name):
    """The bundle's C program edgec-generate sets each cache input once (zeroed) and never again:
    the C API keeps input tensors across runs, the model writes its rows in place. Logits of every
    step within 1e-3 of onnxruntime's and identical tokens; a run past the cache is one line, exit 2."""
    from edgec.targets.tvm import emulate
    from tests.conftest import require_target_tools

    spec = require_target_tools("armv8")
    path = MODELS / name
    art = compile_model(path, tmp_path / "arm", CompileOptions(target="armv8", symbolic_dims=True, kv_cache=16))
    bundle = art.path / art.metadata["bundle"]
    prompt = np.random.default_rng(5).integers(0, art.outputs[0].shape[-1], (1, 7))
    arm = emulate.run_generate(bundle, spec, prompt[0], 10)
    want = greedy_decode(_ort_run(path), _cache(art), [t.name for t in art.inputs], prompt, 9)
    want.steps = [{"logits": s["logits"]} for s in want.steps]
    checks, same = compare_decodes(arm, want, atol=1e-3)
    assert len(checks) == 10 and all(c.ok for c in checks) and same, describe(checks, same)
    r = emulate.run_runner(bundle, spec, ["--prompt-ids", "1,2,3", "--max-new-tokens", "15"], program="edgec-generate")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "need 17 cache rows" in lines[0] and "KV cache has 16 (--kv-cache)" in lines[0], r


def test_cli_compiles_the_mode_and_refuses_what_it_cannot_prove(run_cli, tmp_path):
    """`edgec compile --kv-cache`: at -O1 attention is not recognized, the present feeds a
    Transpose: one line naming the node, exit 2, nothing written."""
    r = run_cli("compile", GPT2, "-o", tmp_path / "o1", "--kv-cache", "16", "-O1", "--no-cache")
    assert r.code == 2 and not (tmp_path / "o1").exists(), r
    line = r.err.strip()
    assert "\n" not in line and "--kv-cache: node 'node_transpose_3' (Transpose) reads the cache 'present.0.key'" in line
    r = run_cli("compile", GPT2, "-o", tmp_path / "kv", "--kv-cache", "16", "--no-cache")
    assert r.code == 0, r
    r = run_cli("generate", tmp_path / "kv", "--prompt-ids", "5,9,2", "--max-new-tokens", "4", "--json")
    assert r.code == 0, r
    art = load_artifact(tmp_path / "kv")
    want = greedy_decode(_ort_run(), _cache(art), [t.name for t in art.inputs], np.array([[5, 9, 2]]), 3)
    assert json.loads(r.out)["tokens"] == [int(t) for t in want.tokens[0]]


def test_verify_checks_a_decoder_and_refuses_the_in_place_mode(run_cli, tmp_path):
    """--verify feeds a decoder consistent inputs (total length = past + new, mask of ones,
    positions after the past): every pass and the artifact are checked against onnxruntime. With
    --kv-cache the interface changes under the verifier: one line saying what to run instead."""
    r = run_cli("compile", GPT2, "-o", tmp_path / "v", "--symbolic-dims", "--verify", "--no-cache")
    assert r.code == 0 and "the compiled artifact matches" in r.out, r
    r = run_cli("compile", GPT2, "-o", tmp_path / "kv", "--kv-cache", "16", "--verify", "--no-cache")
    assert r.code == 2 and "llm_decode_check.py --kv-cache" in r.err and not (tmp_path / "kv").exists(), r


def test_seeded_decoder_inputs_are_consistent():
    from edgec.reference import seeded_inputs
    from edgec.tensor_info import TensorInfo

    infos = [TensorInfo("input_ids", ("batch", "seq"), "int64"), TensorInfo("attention_mask", ("batch", "total"), "int64"),
             TensorInfo("position_ids", ("batch", "seq"), "int64"),
             TensorInfo("past_key_values.0.key", ("batch", 2, "past", 4), "float32")]
    feed = seeded_inputs(infos, dims={"seq": 3, "past": 5})
    assert feed["attention_mask"].shape == (1, 8) and (feed["attention_mask"] == 1).all()
    assert feed["position_ids"].tolist() == [[5, 6, 7]] and feed["past_key_values.0.key"].shape == (1, 2, 5, 4)
    buffers = [TensorInfo("past_key_values.0.key", ("batch", 2, 16, 4), "float32")]  # --kv-cache: total is free
    feed = seeded_inputs(infos[:3] + buffers, dims={"seq": 3})
    assert feed["attention_mask"].shape == (1, 3) and feed["position_ids"].tolist() == [[0, 1, 2]]
