"""kv-cache-in-place (--kv-cache MAX): past_key_values become cache buffers written in place.

The rewritten graph keeps the ONNX meaning through edgec.KVCacheWrite's reference body, so
onnxruntime runs it: fed cache buffers whose first P rows are a past (and garbage beyond), it must
give the original model's logits for that past. Cases where the pass must refuse (a present read by
another op, a Concat on another axis, a repeat of the kv heads read elsewhere) name the node in one
line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx_ir as ir
import pytest

from edgec.api import CompileOptions, optimize
from edgec.errors import ModelValidationError
from edgec.ir import load_model
from edgec.passes.shapes.kv_cache_in_place import KVCacheInPlace, cache_rows
from edgec.reference import run_ort, run_ort_ir
from edgec.targets import get_target

MODELS = Path(__file__).resolve().parents[1] / "models"
GPT2 = MODELS / "tiny_gpt2_kv.onnx"
LLAMAS = [MODELS / "tiny_llama_kv.onnx", MODELS / "tiny_llama_kv_legacy.onnx"]


def _fused(path: Path) -> ir.Model:
    """The model after the host's default pipeline (attention recognized), without the mode."""
    model, _ = optimize(load_model(path), get_target("host"), CompileOptions(symbolic_dims=True))
    return model


def _kv(path: Path, max_length: int = 16) -> ir.Model:
    model, _ = optimize(load_model(path), get_target("host"), CompileOptions(symbolic_dims=True, kv_cache=max_length))
    return model


@pytest.mark.parametrize("path", [GPT2, *LLAMAS], ids=lambda p: p.stem)
def test_rewritten_graph_means_the_same_in_onnxruntime(path):
    """GPT-2 (4 heads) and Llama-style with grouped-query attention (2 kv heads for 4 query
    heads: the repeat of the heads is gone, edgec.Attention's _g2 overload reads the cache)."""
    model = _kv(path, 16)
    assert [v.name for v in model.graph.outputs] == ["logits"]
    pasts = [v for v in model.graph.inputs if v.name.startswith("past_key_values.")]
    heads = pasts[0].shape[1]
    assert len(pasts) == 4 and all(list(v.shape)[1:] == [heads, 16, 8] for v in pasts)
    ops = [n.op_type for n in model.graph]
    assert ops.count("KVCacheWrite") == 4 and "Concat" not in [n.op_type for n in model.graph
                                                                  if any(i in pasts for i in n.inputs)]
    attention = [n for n in model.graph if n.op_type == "Attention"]
    assert len(attention) == 2 and all(n.overload.endswith("_g2") == (heads == 2) for n in attention)
    writes = [n.outputs[0] for n in model.graph if n.op_type == "KVCacheWrite"]
    assert all(u.op_type == "Attention" for w in writes for u, _ in w.uses())  # the repeat of the heads is gone
    assert model.metadata_props["edgec.kv_cache"] == "16"
    rng = np.random.default_rng(0)
    past_len, new = 5, 3
    ids = rng.integers(0, 256, (1, new))
    feed = {"input_ids": ids, "attention_mask": np.ones((1, past_len + new), np.int64),
            "position_ids": np.arange(past_len, past_len + new)[None]}
    pasts_ref = {v.name: rng.standard_normal((1, heads, past_len, 8)).astype(np.float32) for v in pasts}
    want = run_ort(str(path), {**feed, **pasts_ref})
    buffers = {}
    for name, p in pasts_ref.items():
        b = np.full((1, heads, 16, 8), 1e6, np.float32)  # rows past P must not be read
        b[:, :, :past_len] = p
        buffers[name] = b
    got = run_ort_ir(model, {**feed, **buffers})
    np.testing.assert_allclose(got["logits"], want["logits"], atol=1e-4)


def test_a_head_slice_of_whole_pages_gets_one_more_row():
    """GPT-2's head_dim 64 float32: 256 rows are 64 KiB per head (every head's row j in the same
    cache sets): 257 rows; 250 rows stay."""
    assert cache_rows(256, 64, 4) == 257 and cache_rows(250, 64, 4) == 250 and cache_rows(16, 8, 4) == 16
    model = _kv(GPT2, 128)  # 128 rows x 8 x 4 bytes = 4 KiB
    assert all(v.shape[2] == 129 for v in model.graph.inputs if v.name.startswith("past_key_values."))


def test_a_present_read_by_another_op_is_refused():
    model = _fused(GPT2)
    present = next(v for v in model.graph.outputs if v.name == "present.0.key")
    node = ir.Node("", "ReduceSum", [present], name="extra_reader")
    node.outputs[0].name = "extra"
    model.graph.append(node)
    model.graph.outputs.append(node.outputs[0])
    with pytest.raises(ModelValidationError, match=r"node 'extra_reader' \(ReduceSum\) reads the cache 'present.0.key'"):
        KVCacheInPlace(max_length=16)(model, None)


def test_a_concat_on_another_axis_is_refused():
    model = _fused(GPT2)
    cat = next(n for n in model.graph if n.op_type == "Concat" and n.inputs[0].name == "past_key_values.0.key")
    cat.attributes["axis"] = ir.AttrInt64("axis", 1)
    with pytest.raises(ModelValidationError, match=rf"node '{cat.name}' \(Concat\) reads the past cache "
                                                   r"'past_key_values.0.key' \(axis 1\)"):
        KVCacheInPlace(max_length=16)(model, None)


def test_a_repeat_of_kv_heads_read_by_another_op_is_refused():
    model = _fused(LLAMAS[0])
    unsqueeze = next(n for n in model.graph if n.op_type == "Unsqueeze" and n.inputs[0].name == "present.0.key")
    expand = next(u for u, _ in unsqueeze.outputs[0].uses())
    reshape = next(u for u, _ in expand.outputs[0].uses())
    node = ir.Node("", "ReduceSum", [reshape.outputs[0]], name="extra_reader")
    node.outputs[0].name = "extra"
    model.graph.append(node)
    model.graph.outputs.append(node.outputs[0])
    with pytest.raises(ModelValidationError, match=r"node 'extra_reader' \(ReduceSum\) reads the repeated heads"):
        KVCacheInPlace(max_length=16)(model, None)


def test_a_model_without_past_inputs_is_refused():
    model = _fused(GPT2)
    for v in [v for v in model.graph.inputs if v.name.startswith("past_key_values.")]:
        v.name = "cache_" + v.name
    with pytest.raises(ModelValidationError, match="no past_key_values"):
        KVCacheInPlace(max_length=16)(model, None)
