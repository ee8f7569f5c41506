"""`edgec generate`: greedy tokens of a compiled KV-cache decoder (the tiny GPT-2 fixture, symbolic
dims) equal onnxruntime's greedy decode of the same ONNX; text in and out through a tokenizer.json;
misuse is one line, exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgec.api import CompileOptions, compile_model
from edgec.llm_decode import cache_inputs, greedy_decode
from edgec.reference import ort_session

MODEL = Path(__file__).resolve().parents[1] / "models" / "tiny_gpt2_kv.onnx"


@pytest.fixture(scope="module")
def art(tmp_path_factory):
    return compile_model(MODEL, tmp_path_factory.mktemp("gen") / "art", CompileOptions(target="host", symbolic_dims=True))


def _ort_tokens(prompt: list[int], new: int) -> list[int]:
    sess = ort_session(str(MODEL))
    outs = [o.name for o in sess.get_outputs()]
    ins = {i.name: tuple(i.shape) for i in sess.get_inputs()}
    res = greedy_decode(lambda f: dict(zip(outs, sess.run(outs, f))), cache_inputs(ins, outs), list(ins),
                        np.array([prompt]), new - 1, keep_steps=False)
    return [int(t) for t in res.tokens[0]]


def test_generate_matches_onnxruntime_greedy(run_cli, art):
    prompt = [5, 17, 200, 3]
    r = run_cli("generate", art.path, "--prompt-ids", ",".join(map(str, prompt)), "--max-new-tokens", "12",
                "--threads", "2", "--json")
    assert r.code == 0, r
    res = json.loads(r.out)
    assert res["tokens"] == _ort_tokens(prompt, 12)
    assert res["decode_steps"] == 11 and res["decode_tokens_per_s"] > 0 and res["prefill_ms"] > 0
    r = run_cli("generate", art.path, "--prompt-ids", "1,2", "--max-new-tokens", "3", "--stats")
    assert r.code == 0 and "tokens/s" in r.out and "peak RSS" in r.out, r


def test_generate_stops_after_the_eos_id(run_cli, art):
    prompt = [5, 17, 200, 3]
    want = _ort_tokens(prompt, 12)
    eos = want[4]
    stop = want.index(eos) + 1  # the first time it comes
    r = run_cli("generate", art.path, "--prompt-ids", ",".join(map(str, prompt)), "--max-new-tokens", "12",
                "--eos-id", str(eos), "--json")
    assert r.code == 0, r
    res = json.loads(r.out)
    assert res["tokens"] == want[:stop] and res["decode_steps"] == stop - 1


def test_generate_text_through_a_tokenizer(run_cli, art, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {f"w{i}": i for i in range(256)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="w0"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    r = run_cli("generate", art.path, "--prompt", "w5 w17 w200 w3", "--tokenizer", path, "--max-new-tokens", "6", "--json")
    assert r.code == 0, r
    res = json.loads(r.out)
    assert res["prompt"] == [5, 17, 200, 3] and res["tokens"] == _ort_tokens([5, 17, 200, 3], 6)
    assert res["text"] == " ".join(f"w{t}" for t in res["tokens"])


def test_misuse_is_one_line_exit_2(run_cli, art, tmp_path):
    import onnx

    from tests.targets.test_symbolic_dims import mlp_model

    onnx.save(mlp_model(), tmp_path / "mlp.onnx")
    other = compile_model(tmp_path / "mlp.onnx", tmp_path / "mlp", CompileOptions(target="host", symbolic_dims=True))
    cases = [(("generate", other.path, "--prompt-ids", "1"), "not a decoder with a KV cache"),
             (("generate", art.path, "--prompt-ids", "1,999"), "must be in [0, 256)"),
             (("generate", art.path, "--prompt-ids", "1,x"), "comma-separated"),
             (("generate", art.path, "--prompt", "hello"), "--prompt needs --tokenizer"),
             (("generate", art.path), "exactly one of"),
             (("generate", art.path, "--prompt", "a", "--tokenizer", tmp_path / "mlp.onnx"), "not a tokenizer.json")]
    for args, msg in cases:
        r = run_cli(*args)
        assert r.code == 2 and msg in r.err and "Traceback" not in r.err, (args, r)
