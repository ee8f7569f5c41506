"""The contrib ops onnxruntime-genai's model builder writes (ops/gqa.py, ops/rotary.py,
ops/ort_norm.py), each against onnxruntime on seeded inputs, compiled once with symbolic dims:
GroupQueryAttention (packed and separate Q/K/V, rotary inside — halves and interleaved, partial
rotary — grouped heads, a sliding window, softcap, custom scale) on a first prompt, a right-padded
first prompt, a ragged batch decode step, a past buffer longer than the total (shared-buffer
style) and a chunked prefill, and without past inputs; RotaryEmbedding (3-D / 4-D, per-token
positions or one offset); SimplifiedLayerNormalization and SkipSimplifiedLayerNormalization with
their optional outputs; the guards, and what the lowering refuses."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP
from onnx import helper as h

from edgec.api import CompileOptions, compile_model, run_artifact
from edgec.compare import assert_outputs_match
from edgec.errors import GuardError, UnsupportedOpError
from edgec.reference import run_ort

MS = "com.microsoft"


def _save(model, tmp_path):
    model.ir_version = 8
    onnx.save(model, tmp_path / "m.onnx")
    return tmp_path / "m.onnx"


def _compile(path, tmp_path):
    return compile_model(path, tmp_path / "art", CompileOptions(target="host", symbolic_dims=True))


def _gqa_model(heads, kv_heads, head, packed=True, rotary_half=0, past=True, **attrs):
    """GroupQueryAttention fed the way the builder feeds it: seqlens_k = ReduceSum(mask) - 1 and
    total_sequence_length = Shape(mask)[1], both int32; cos/sin caches as constants."""
    rng = np.random.default_rng(1)
    width = (heads + 2 * kv_heads) * head if packed else heads * head
    inputs = [h.make_tensor_value_info("qkv" if packed else "q", TP.FLOAT, ["batch", "seq", width])]
    if not packed:
        inputs += [h.make_tensor_value_info(n, TP.FLOAT, ["batch", "seq", kv_heads * head]) for n in ("k", "v")]
    if past:
        inputs += [h.make_tensor_value_info(n, TP.FLOAT, ["batch", kv_heads, "past", head]) for n in ("past_k", "past_v")]
    inputs.append(h.make_tensor_value_info("mask", TP.INT64, ["batch", "total"]))
    inits = [h.make_tensor("one", TP.INT64, [1], [1]), h.make_tensor("axis1", TP.INT64, [], [1])]
    nodes = [h.make_node("ReduceSum", ["mask", "one"], ["msum"]), h.make_node("Sub", ["msum", "one"], ["sl64"]),
             h.make_node("Cast", ["sl64"], ["seqlens_k"], to=TP.INT32), h.make_node("Shape", ["mask"], ["mshape"]),
             h.make_node("Gather", ["mshape", "axis1"], ["tot64"]),
             h.make_node("Cast", ["tot64"], ["total"], to=TP.INT32)]
    rot = ["", ""]
    if rotary_half:
        for n in ("cos", "sin"):
            inits.append(onnx.numpy_helper.from_array(rng.uniform(-1, 1, (64, rotary_half)).astype(np.float32), n))
        rot = ["cos", "sin"]
    qkv = ["qkv", "", ""] if packed else ["q", "k", "v"]
    cache = ["past_k", "past_v"] if past else ["", ""]
    nodes.append(h.make_node("GroupQueryAttention", qkv + cache + ["seqlens_k", "total"] + rot,
                             ["y", "present_k", "present_v"], domain=MS, num_heads=heads, kv_num_heads=kv_heads,
                             do_rotary=int(bool(rotary_half)), **attrs))
    outputs = [h.make_tensor_value_info("y", TP.FLOAT, ["batch", "seq", heads * head])]
    outputs += [h.make_tensor_value_info(n, TP.FLOAT, ["batch", kv_heads, "present", head])
                for n in ("present_k", "present_v")]
    g = h.make_graph(nodes, "gqa", inputs, outputs, inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", 18), h.make_opsetid(MS, 1)])


def _feeds(model, batch, seq, past, mask_rows, rng):
    """Inputs for one call: `mask_rows` ones per batch entry, right-padded to the longest."""
    feeds = {}
    for vi in model.graph.input:
        dims = [d.dim_value or {"batch": batch, "seq": seq, "past": past, "kv_cache_dim": 8}.get(d.dim_param)
                for d in vi.type.tensor_type.shape.dim]
        if vi.name == "mask":
            total = max(mask_rows)
            feeds["mask"] = (np.arange(total)[None, :] < np.array(mask_rows)[:, None]).astype(np.int64)
        else:
            feeds[vi.name] = rng.standard_normal(dims).astype(np.float32)
    return feeds


# (batch, seq, past buffer, tokens per entry after the call)
CALLS = {"first prompt": (2, 5, 0, [5, 5]), "right-padded first prompt": (2, 5, 0, [3, 5]),
         "ragged decode": (2, 1, 5, [4, 6]),
         "past buffer longer than total": (1, 1, 12, [7]), "chunked prefill": (1, 3, 4, [7])}
CONFIGS = {
    "packed, rotary halves": dict(heads=4, kv_heads=2, head=16, rotary_half=8),
    "separate, interleaved partial rotary, window, softcap": dict(heads=4, kv_heads=1, head=32, packed=False,
                                                                  rotary_half=8, rotary_interleaved=1,
                                                                  local_window_size=3, softcap=5.0),
    "packed, no rotary, scale": dict(heads=2, kv_heads=2, head=8, scale=0.2),
}


def test_group_query_attention_without_a_past_matches_onnxruntime(tmp_path):
    """No past inputs: a prompt only (present holds its keys/values)."""
    model = _gqa_model(heads=4, kv_heads=2, head=16, rotary_half=8, past=False)
    path = _save(model, tmp_path)
    art = _compile(path, tmp_path)
    rng = np.random.default_rng(0)
    for batch, seq in ((1, 1), (2, 5)):
        feeds = _feeds(model, batch, seq, 0, [seq] * batch, rng)
        assert_outputs_match(run_artifact(art, feeds), run_ort(str(path), feeds), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("config", CONFIGS)
def test_group_query_attention_matches_onnxruntime(tmp_path, config):
    model = _gqa_model(**CONFIGS[config])
    path = _save(model, tmp_path)
    art = _compile(path, tmp_path)
    assert art.metadata["lowering"]["edgec"].get("GroupQueryAttention") == 1
    rng = np.random.default_rng(0)
    for call, (batch, seq, past, rows) in CALLS.items():
        feeds = _feeds(model, batch, seq, past, rows, rng)
        got, want = run_artifact(art, feeds), run_ort(str(path), feeds)
        assert want["present_k"].shape[2] == max(past, max(rows)), call
        assert_outputs_match(got, want, atol=1e-5, rtol=1e-5)


def test_cache_head_size_other_than_the_query_fails_the_run(tmp_path):
    """The builder's past inputs leave the head size symbolic (`kv_cache_dim`): a cache of another
    size is refused at run time, not read out of range."""
    model = _gqa_model(heads=2, kv_heads=2, head=8)
    for vi in model.graph.input:
        if vi.name.startswith("past"):
            vi.type.tensor_type.shape.dim[3].dim_param = "kv_cache_dim"
    art = _compile(_save(model, tmp_path), tmp_path)
    rng = np.random.default_rng(0)
    feeds = _feeds(model, 1, 1, 3, [4], rng)
    run_artifact(art, feeds)  # the right size runs
    feeds["past_k"] = rng.standard_normal((1, 2, 3, 4)).astype(np.float32)
    feeds["past_v"] = rng.standard_normal((1, 2, 3, 4)).astype(np.float32)
    with pytest.raises(Exception, match="(?i)shape|match|dim"):
        run_artifact(art, feeds)


@pytest.mark.parametrize("attrs,detail", [({"smooth_softmax": 1}, "smooth_softmax"),
                                          ({"qk_output": 1}, "qk_output")])
def test_group_query_attention_refuses_what_it_does_not_implement(tmp_path, attrs, detail):
    path = _save(_gqa_model(heads=2, kv_heads=2, head=8, **attrs), tmp_path)
    with pytest.raises(UnsupportedOpError, match=detail):
        _compile(path, tmp_path)


def _norm_model(op, domain, inputs, outputs, **attrs):
    x_shape = ["batch", "seq", 24]
    vis = [h.make_tensor_value_info(n, TP.FLOAT, x_shape) for n in inputs if n in ("x", "skip")]
    rng = np.random.default_rng(2)
    inits = [onnx.numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
             for n, s in (("gamma", [24]), ("bias", [24])) if n in inputs]
    shapes = {"y": x_shape, "sum": x_shape, "inv_std": ["batch", "seq", 1]}
    outs = [h.make_tensor_value_info(n, TP.FLOAT, shapes[n]) for n in outputs if n]
    g = h.make_graph([h.make_node(op, inputs, outputs, domain=domain, **attrs)], "norm", vis, outs, inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", 18), h.make_opsetid(MS, 1)])


NORMS = {
    "SimplifiedLayerNormalization": ("SimplifiedLayerNormalization", "", ["x", "gamma"], ["y", "inv_std"],
                                     {"epsilon": 1e-4}),
    "Skip...: sum output, bias": ("SkipSimplifiedLayerNormalization", MS, ["x", "skip", "gamma", "bias"],
                                  ["y", "", "inv_std", "sum"], {"epsilon": 1e-5}),
    "Skip...: output only": ("SkipSimplifiedLayerNormalization", MS, ["x", "skip", "gamma"], ["y"], {}),
}


@pytest.mark.parametrize("case", NORMS)
def test_rms_norms_match_onnxruntime(tmp_path, case):
    op, domain, inputs, outputs, attrs = NORMS[case]
    path = _save(_norm_model(op, domain, inputs, outputs, **attrs), tmp_path)
    art = _compile(path, tmp_path)
    assert art.metadata["lowering"]["edgec"].get(op) == 1
    rng = np.random.default_rng(3)
    for batch, seq in ((1, 1), (2, 7)):
        feeds = {n: (3 * rng.standard_normal((batch, seq, 24))).astype(np.float32) for n in inputs if n in ("x", "skip")}
        got, want = run_artifact(art, feeds), run_ort(str(path), feeds)
        assert_outputs_match(got, want, atol=1e-5, rtol=1e-5)


def _rotary_model(rank, pos_rank, heads, head, half, **attrs):
    x_shape = ["batch", "seq", heads * head] if rank == 3 else ["batch", heads, "seq", head]
    pos_shape = ["batch", "seq"] if pos_rank == 2 else [1]
    rng = np.random.default_rng(4)
    inits = [onnx.numpy_helper.from_array(rng.uniform(-1, 1, (32, half)).astype(np.float32), n) for n in ("cos", "sin")]
    g = h.make_graph([h.make_node("RotaryEmbedding", ["x", "pos", "cos", "sin"], ["y"], domain=MS, **attrs)], "rope",
                     [h.make_tensor_value_info("x", TP.FLOAT, x_shape), h.make_tensor_value_info("pos", TP.INT64, pos_shape)],
                     [h.make_tensor_value_info("y", TP.FLOAT, x_shape)], inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", 18), h.make_opsetid(MS, 1)])


ROTARY = {
    "3-D, positions per token, halves": dict(rank=3, pos_rank=2, heads=2, head=16, half=8, num_heads=2),
    "3-D, one offset, interleaved, partial": dict(rank=3, pos_rank=1, heads=2, head=32, half=8, num_heads=2,
                                                  rotary_embedding_dim=16, interleaved=1),
    "4-D, positions per token, interleaved": dict(rank=4, pos_rank=2, heads=3, head=16, half=8, interleaved=1),
}


@pytest.mark.parametrize("case", ROTARY)
def test_rotary_embedding_matches_onnxruntime(tmp_path, case):
    cfg = dict(ROTARY[case])
    model = _rotary_model(**cfg)
    path = _save(model, tmp_path)
    art = _compile(path, tmp_path)
    assert art.metadata["lowering"]["edgec"].get("RotaryEmbedding") == 1
    rng = np.random.default_rng(5)
    for batch, seq in ((1, 1), (2, 6)):
        shape = ([batch, seq, cfg["heads"] * cfg["head"]] if cfg["rank"] == 3 else [batch, cfg["heads"], seq, cfg["head"]])
        pos = rng.integers(0, 32, (batch, seq)) if cfg["pos_rank"] == 2 else np.array([32 - seq - 3])
        feeds = {"x": rng.standard_normal(shape).astype(np.float32), "pos": pos.astype(np.int64)}
        assert_outputs_match(run_artifact(art, feeds), run_ort(str(path), feeds), atol=1e-5, rtol=1e-5)


def test_rotary_position_outside_the_caches_is_one_clear_error(tmp_path):
    path = _save(_rotary_model(rank=3, pos_rank=2, heads=2, head=16, half=8, num_heads=2), tmp_path)
    art = _compile(path, tmp_path)
    feeds = {"x": np.zeros((1, 2, 32), np.float32), "pos": np.array([[3, 32]], np.int64)}
    with pytest.raises(GuardError, match=r"RotaryEmbedding.*outside the 32 rows"):
        run_artifact(art, feeds)


def test_gqa_total_beyond_the_rotary_caches_is_one_clear_error(tmp_path):
    model = _gqa_model(heads=4, kv_heads=2, head=16, rotary_half=8)  # caches of 64 rows
    art = _compile(_save(model, tmp_path), tmp_path)
    rng = np.random.default_rng(6)
    run_artifact(art, _feeds(model, 1, 1, 63, [64], rng))  # the last row runs
    with pytest.raises(GuardError, match=r"GroupQueryAttention: total_sequence_length .* exceeds the 64 rows"):
        run_artifact(art, _feeds(model, 1, 1, 64, [65], rng))
