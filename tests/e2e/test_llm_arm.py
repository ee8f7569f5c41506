"""Issue 14's last done-when: a tiny decoder compiled for armv8 (symbolic batch / sequence / past
dims) runs the prefill and the decode steps under qemu through the bundle's C API -- the bundle's
C program edgec-generate, which feeds each step's presents back as the next step's pasts -- and its
logits (every step, max abs <= 1e-3) and greedy tokens match the x86 edgec artifact's and
onnxruntime's on the same ONNX. Plus the C API's contract for symbolic dims (c_api_decode_checks.c).

Needs g++-aarch64-linux-gnu and qemu-user (skipped without). armv7 is not covered: its call-plan
runtime has static shapes only (docs/bundles.md).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgec.api import CompileOptions, compile_model
from edgec.llm_decode import Decoded, cache_inputs, compare_decodes, describe, greedy_decode
from edgec.reference import ort_session
from edgec.targets.tvm import emulate
from edgec.targets.tvm.execute import load
from tests.conftest import require_target_tools

MODELS = Path(__file__).resolve().parents[1] / "models"
HERE = Path(__file__).resolve().parent
NEW_TOKENS = 10  # the prefill's token + 9 decode steps
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["tiny_gpt2_kv.onnx", "tiny_llama_kv.onnx"])
def compiled(request, tmp_path_factory):
    """(armv8 spec, model path, armv8 bundle dir, x86 artifact), compiled once per model."""
    spec = require_target_tools("armv8")
    path = MODELS / request.param
    root = tmp_path_factory.mktemp("llm-arm")
    arm = compile_model(path, root / "armv8", CompileOptions(target="armv8", symbolic_dims=True))
    host = compile_model(path, root / "host", CompileOptions(target="host", symbolic_dims=True))
    return spec, path, arm.path / arm.metadata["bundle"], host


def _logits(decoded: Decoded) -> Decoded:
    return Decoded([{"logits": s["logits"]} for s in decoded.steps], decoded.tokens, decoded.seconds)


def _reference(path, host, prompt):
    """Greedy decodes of the same prompt by onnxruntime and by the x86 artifact."""
    sess = ort_session(str(path))
    names = [o.name for o in sess.get_outputs()]
    cache = cache_inputs({t.name: t.shape for t in host.inputs}, [t.name for t in host.outputs])
    inputs = [t.name for t in host.inputs]
    ort = greedy_decode(lambda feed: dict(zip(names, sess.run(names, feed))), cache, inputs, prompt,
                        NEW_TOKENS - 1)
    x86 = greedy_decode(load(host).run, cache, inputs, prompt, NEW_TOKENS - 1)
    return _logits(ort), _logits(x86)


@pytest.mark.parametrize("prompt_len", [1, 7])
def test_generate_under_qemu_matches_x86_and_onnxruntime(compiled, prompt_len):
    spec, path, bundle, host = compiled
    vocab = host.outputs[0].shape[-1]
    prompt = np.random.default_rng(prompt_len).integers(0, vocab, (1, prompt_len))
    arm = emulate.run_generate(bundle, spec, prompt[0], NEW_TOKENS)
    assert arm.steps[0]["logits"].shape == (1, prompt_len, vocab)
    assert all(s["logits"].shape == (1, 1, vocab) for s in arm.steps[1:])
    ort, x86 = _reference(path, host, prompt)
    for name, ref in (("onnxruntime", ort), ("x86 edgec", x86)):
        checks, same = compare_decodes(arm, ref, atol=1e-3)
        assert len(checks) == NEW_TOKENS and all(c.ok for c in checks) and same, \
            f"armv8 vs {name}: {describe(checks, same)}"


def test_generate_in_the_bundle_directory(compiled):
    """The README's usage on the board: `./edgec-generate model.so ...` from inside the bundle (a
    bare library name, which dlopen alone would look up on the library path, not here)."""
    spec, _, bundle, _ = compiled
    r = subprocess.run([*emulate.command_prefix(spec), "./edgec-generate", "model.so", "--prompt-ids", "3,4",
                        "--max-new-tokens", "2", "--quiet"], cwd=bundle, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.startswith("tokens: "), r


def test_generate_token_beyond_vocabulary_is_one_line_exit_2(compiled):
    spec, _, bundle, host = compiled
    vocab = host.outputs[0].shape[-1]
    r = emulate.run_runner(bundle, spec, ["--prompt-ids", f"1,{vocab}", "--max-new-tokens", "2"],
                           program="edgec-generate")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r
    assert "run: " in lines[0] and "(Gather): an index is out of range" in lines[0], lines
    r = emulate.run_runner(bundle, spec, ["--prompt-ids", "1,x"], program="edgec-generate")
    assert r.returncode == 2 and "--prompt-ids" in r.stderr, r


@pytest.mark.parametrize("compiled", ["tiny_gpt2_kv.onnx"], indirect=True)
def test_generate_refuses_a_dim_beyond_its_bounds(compiled, tmp_path):
    """metadata.json's dim_bounds (--dim NAME=LO..HI: memory planned for HI) are checked by the C
    API at each run: the same library with bounds past_sequence_length 0..3 in its metadata."""
    spec, _, bundle, _ = compiled
    meta = json.loads((bundle / "metadata.json").read_text())
    meta["dim_bounds"] = {"past_sequence_length": [0, 3]}
    (tmp_path / "bounded.json").write_text(json.dumps(meta))
    args = ["--metadata", str(tmp_path / "bounded.json"), "--prompt-ids", "1,2", "--quiet"]
    r = emulate.run_runner(bundle, spec, [*args, "--max-new-tokens", "3"], program="edgec-generate")
    assert r.returncode == 0, r  # the last step's past is 3
    r = emulate.run_runner(bundle, spec, [*args, "--max-new-tokens", "4"], program="edgec-generate")
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r
    assert "has past_sequence_length = 4; the model was compiled for past_sequence_length in 0..3 (--dim)" in lines[0], r


@pytest.mark.parametrize("compiled", ["tiny_gpt2_kv.onnx"], indirect=True)
def test_edgec_generate_points_a_cross_artifact_to_its_bundle(compiled, run_cli):
    _, _, bundle, _ = compiled
    r = run_cli("generate", bundle.parent, "--prompt-ids", "1,2", "--max-new-tokens", "2")
    lines = r.err.strip().splitlines()
    assert r.code == 2 and len(lines) == 1 and "bundle/edgec-generate model.so --prompt-ids" in lines[0], r


@pytest.mark.parametrize("compiled", ["tiny_gpt2_kv.onnx"], indirect=True)  # its shapes are written in
def test_c_api_contract_for_symbolic_dims(compiled):
    """Declared shapes and dim names, shape checks (EDGEC_ERR_SHAPE), zero-length inputs, dims
    shared between inputs checked at run, the guard as an error code, present -> past without a
    copy, edgec_output_data: c_api_decode_checks.c on the GPT-2 bundle, under qemu."""
    spec, _, bundle, _ = compiled
    exe = bundle / "c_api_decode_checks"
    subprocess.run([spec.cross_compiler, "-x", "c", "-std=c11", "-O1", str(HERE / "c_api_decode_checks.c"),
                    "-x", "none", "-I", str(bundle), "-L", str(bundle), "-ledgec_runtime", "-Wl,-rpath,$ORIGIN",
                    "-o", str(exe)], check=True)  # C, through the target's C++ driver (as bundle.py does)
    r = subprocess.run([*emulate.command_prefix(spec), str(exe), str(bundle / "model.so")],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    out = {}
    for line in r.stdout.splitlines():
        label, _, rest = line.partition(" ")
        out.setdefault(label, []).append(rest)
    one = {k: v[0] for k, v in out.items()}
    assert one["declared"] == "4 -1 4 -1 8"
    assert one["dim_names"] == "batch NULL NULL past_sequence_length"
    assert one["present_dim2"] == "past_sequence_length + sequence_length"
    assert one["ndim_before_set"] == "-1"
    shape_err = "-7 edgec_set_input_shape: input 'past_key_values.0.key': declared float32[batch, 4, past_sequence_length, 8], got "
    assert one["rank3"] == shape_err + "float32[1, 4, 0]"
    assert one["head_dim7"] == shape_err + "float32[1, 4, 0, 7]"
    assert one["dtype"] == shape_err + "int64[1, 4, 0, 8]"
    assert one["negative"].startswith("-7 ") and "negative dim in [1, 4, -1, 8]" in one["negative"]
    assert one["unset_null"].startswith("-5 ") and "symbolic dims" in one["unset_null"]
    assert one["from_output_before_run"].startswith("-5 ")
    assert one["output_data_before_run"] == "NULL"
    assert one["empty_past"].strip() == one["empty_past_null"].strip() == "0"
    assert one["null_with_bytes"].startswith("-6 ")
    assert one["batch_mismatch"] == "-7 edgec_run: input 'attention_mask' has batch = 1, input 'input_ids' has batch = 2"
    assert one["past_mismatch"].startswith("-7 ") and "past_sequence_length = 1" in one["past_mismatch"]
    assert one["token_beyond_vocab"].startswith("-4 ") and "(Gather): an index is out of range" in one["token_beyond_vocab"]
    assert one["prefill"].strip() == "0" and one["prefill_logits"] == "3 1 3 256"
    assert one["output_data_same"] == "1"
    assert one["ids_from_logits"].startswith("-7 ") and "does not fit input 'input_ids'" in one["ids_from_logits"]
    assert [s.strip() for s in out["from_output"]] == ["0"] * 4
    assert one["past_after_feed"] == "1 4 3 8"
    assert one["decode"].strip() == "0" and one["decode_shapes"] == "1 256 4"
