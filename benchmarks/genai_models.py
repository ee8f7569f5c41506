"""Llama-style decoders written by onnxruntime-genai's model builder, with seeded random weights
(nothing is downloaded): a `transformers` Llama built from a config (`llm_models.SIZES`, the tiny
one widened to head_dim 16, which onnxruntime's GroupQueryAttention kernel needs with rotary) is
saved with `save_pretrained` next to a word-level tokenizer.json, and the builder runs on that
local directory, offline:

    python -m onnxruntime_genai.models.builder -i HF_DIR -o OUT_DIR -p fp32|int4 -e cpu -c CACHE_DIR

(with HF_HUB_OFFLINE=1 and TRANSFORMERS_OFFLINE=1; the builder loads the tokenizer from HF_DIR, so
one must exist there). The written model uses com.microsoft GroupQueryAttention (packed QKV, rotary
inside, BNSH cache), SkipSimplifiedLayerNormalization, SimplifiedLayerNormalization and, for int4,
MatMulNBits; its inputs are `input_ids`, `attention_mask`, `past_key_values.{i}.key/.value`
[batch_size, kv_heads, past_sequence_length, kv_cache_dim] (no position_ids).

    python benchmarks/genai_models.py --size tiny --precision fp32 -o tiny.onnx
    python benchmarks/genai_models.py --fixtures tests/models    # the committed test models
    python benchmarks/genai_models.py --size 100m --precision int4 -o llama_100m_int4.onnx

Needs the `llm` extra and `onnxruntime-genai`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import llm_models  # noqa: E402

# the builder's models: llm_models' Llama configs; tiny with head_dim 16 (onnxruntime's CPU GQA
# refuses rotary with a head size that is no multiple of 16)
SIZES = {"tiny": dict(llm_models.SIZES["llama", "tiny"], hidden_size=64, intermediate_size=96),
         "100m": llm_models.SIZES["llama", "100m"]}
FIXTURES = [("tiny_genai_llama_fp32.onnx", "tiny", "fp32"), ("tiny_genai_llama_int4.onnx", "tiny", "int4")]


def save_hf(size: str, out_dir: Path, seed: int = 0) -> Path:
    """The random-weight Llama and a word-level tokenizer (t0..t{vocab-1}) in `out_dir`."""
    import torch
    import transformers as tf
    from tokenizers import Tokenizer, models, pre_tokenizers

    torch.manual_seed(seed)
    cfg = tf.LlamaConfig(**SIZES[size], rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False)
    tf.LlamaForCausalLM(cfg).eval().save_pretrained(out_dir)
    tok = Tokenizer(models.WordLevel({f"t{i}": i for i in range(cfg.vocab_size)}, unk_token="t0"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tf.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="t0", bos_token="t0",
                               eos_token="t0").save_pretrained(out_dir)
    return out_dir


def builder_command(hf_dir: Path, out_dir: Path, precision: str, cache_dir: Path) -> list[str]:
    return [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf_dir), "-o", str(out_dir),
            "-p", precision, "-e", "cpu", "-c", str(cache_dir)]


def build(size: str, precision: str, out: Path, seed: int = 0) -> Path:
    """Write the builder's model for `size` / `precision` to `out` (one file: the weights are
    moved inside unless over 2 GB, then they stay beside it as `out`.data)."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        hf = save_hf(size, tmp / "hf", seed)
        env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        cmd = builder_command(hf, tmp / "onnx", precision, tmp / "cache")
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"the model builder failed ({' '.join(cmd)}):\n{done.stderr[-4000:]}")
        model = onnx.load(str(tmp / "onnx" / "model.onnx"))
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        big = model.ByteSize() > 1_800_000_000
        onnx.save(model, str(out), save_as_external_data=big, location=out.name + ".data" if big else None)
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixtures", type=Path, metavar="DIR", help="write the tiny test models into DIR")
    ap.add_argument("--size", choices=sorted(SIZES), default="tiny")
    ap.add_argument("--precision", choices=["fp32", "int4"], default="fp32")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", type=Path)
    args = ap.parse_args(argv)
    if args.fixtures:
        for name, size, precision in FIXTURES:
            print(build(size, precision, args.fixtures / name, args.seed))
        return
    if not args.output:
        ap.error("-o is required (or --fixtures DIR)")
    print(build(args.size, args.precision, args.output, args.seed))


if __name__ == "__main__":
    main()
