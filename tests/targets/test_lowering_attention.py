"""Attention (opset 23): 3-D inputs with grouped-query heads, causal masking, KV cache, masks."""

from __future__ import annotations

import numpy as np

from tests.targets.lowering_util import check, model, rand


def test_attention_gqa_causal_3d(tmp_path):
    proto = model(23, """
        agraph (float[2, 4, 16] q, float[2, 6, 8] k, float[2, 6, 8] v) => (float[2, 4, 16] y)
        { y = Attention <q_num_heads: int = 4, kv_num_heads: int = 2, is_causal: int = 1> (q, k, v) }""")
    check(proto, {"q": rand(2, 4, 16), "k": rand(2, 6, 8, seed=1), "v": rand(2, 6, 8, seed=2)}, tmp_path,
          owned={"Attention"})


def test_attention_past_cache_bool_mask_qk_output(tmp_path):
    proto = model(23, """
        agraph (float[1, 2, 3, 4] q, float[1, 2, 3, 4] k, float[1, 2, 3, 4] v, bool[3, 5] m,
                float[1, 2, 2, 4] pk, float[1, 2, 2, 4] pv)
            => (float[1, 2, 3, 4] y, float[1, 2, 5, 4] ok, float[1, 2, 5, 4] ov, float[1, 2, 3, 5] qk)
        { y, ok, ov, qk = Attention <qk_matmul_output_mode: int = 3, scale: float = 0.3> (q, k, v, m, pk, pv) }""")
    mask = np.array([[1, 1, 0, 1, 1], [1, 0, 1, 1, 0], [0, 0, 0, 0, 0]], bool)  # last row fully masked
    ins = {"q": rand(1, 2, 3, 4), "k": rand(1, 2, 3, 4, seed=1), "v": rand(1, 2, 3, 4, seed=2), "m": mask,
           "pk": rand(1, 2, 2, 4, seed=3), "pv": rand(1, 2, 2, 4, seed=4)}
    check(proto, ins, tmp_path, owned={"Attention"}, engine="reference")
