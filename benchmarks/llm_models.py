"""Decoder-only transformers with a KV cache, exported from `transformers` with random weights.

    python benchmarks/llm_models.py --arch gpt2 --size tiny -o tiny_gpt2.onnx [--exporter dynamo|legacy]
    python benchmarks/llm_models.py --arch llama --size 100m -o llama_100m.onnx
    python benchmarks/llm_models.py --fixtures tests/models   # the tiny test models (committed)

GPT-2 (learned positions, LayerNorm, GELU MLP, multi-head attention) and Llama-style (RoPE,
RMSNorm, grouped-query attention, SwiGLU) configs built from `transformers` classes with seeded
random weights (nothing is downloaded). The ONNX follows optimum's naming, which users have:

    inputs   input_ids[batch, sequence_length] int64, attention_mask[batch, total_sequence_length] int64, position_ids[batch, sequence_length] int64,
             past_key_values.{i}.key / .value [batch, kv_heads, past_sequence_length, head_dim]
    outputs  logits[batch, sequence_length, vocab], present.{i}.key / .value
             [batch, kv_heads, total_sequence_length, head_dim]

batch, sequence and past are symbolic. `--exporter dynamo` uses `torch.onnx.export(dynamo=True)`;
`legacy` the TorchScript exporter (`dynamo=False`), which writes the graph optimum's exporter
writes (Shape/Gather/Concat shape arithmetic, the causal mask built from Range/Less/Where).
Needs the `llm` extra (`pip install -e '.[llm]'`: torch, transformers).
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import torch

OPSET = 18
# name -> (arch, config overrides); "tiny" is for tests (seconds), "100m" for the benchmark
SIZES = {
    ("gpt2", "tiny"): dict(n_embd=32, n_layer=2, n_head=4, vocab_size=256, n_positions=256,
                           bos_token_id=0, eos_token_id=0),
    ("gpt2", "100m"): dict(n_embd=768, n_layer=12, n_head=12, vocab_size=50257, n_positions=1024),
    ("llama", "tiny"): dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                            intermediate_size=88, vocab_size=256, max_position_embeddings=256,
                            bos_token_id=0, eos_token_id=0),
    ("llama", "100m"): dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, num_key_value_heads=4,
                            intermediate_size=2048, vocab_size=32000, max_position_embeddings=2048),
}


def build(arch: str, size: str, seed: int = 0):
    """The transformers model (eval mode, fp32, eager attention) with seeded random weights."""
    import transformers as tf

    torch.manual_seed(seed)
    if arch == "gpt2":
        cfg = tf.GPT2Config(**SIZES[arch, size], resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
        cls = tf.GPT2LMHeadModel
    elif arch == "llama":
        cfg = tf.LlamaConfig(**SIZES[arch, size], rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False)
        cls = tf.LlamaForCausalLM
    else:
        raise ValueError(f"unknown arch {arch!r} (gpt2, llama)")
    cfg._attn_implementation = "eager"
    model = cls(cfg).eval()
    return model, cfg


def kv_layout(cfg) -> tuple[int, int, int]:
    """(layers, kv heads, head dim) of the cache tensors."""
    if hasattr(cfg, "n_layer"):
        return cfg.n_layer, cfg.n_head, cfg.n_embd // cfg.n_head
    return cfg.num_hidden_layers, cfg.num_key_value_heads, cfg.hidden_size // cfg.num_attention_heads


class _WithCache(torch.nn.Module):
    """forward(input_ids, attention_mask, position_ids, *past) -> (logits, *present), the cache
    passed as flat tensors (key, value per layer) the way the ONNX carries it."""

    def __init__(self, model, layers: int):
        super().__init__()
        self.model, self.layers = model, layers

    def forward(self, input_ids, attention_mask, position_ids, *past):
        from transformers import DynamicCache

        cache = DynamicCache(config=self.model.config)
        for i in range(self.layers):
            cache.update(past[2 * i], past[2 * i + 1], i)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         past_key_values=cache, use_cache=True)
        present = []
        for layer in out.past_key_values.layers:
            present += [layer.keys, layer.values]
        return (out.logits, *present)


def io_names(layers: int) -> tuple[list[str], list[str]]:
    past = [f"past_key_values.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    present = [f"present.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    return ["input_ids", "attention_mask", "position_ids", *past], ["logits", *present]


def export(arch: str, size: str, out: Path, exporter: str = "dynamo", seed: int = 0) -> Path:
    """Write the model as ONNX (weights inside the file, or beside it when over 2 GB)."""
    model, cfg = build(arch, size, seed)
    layers, kv_heads, head_dim = kv_layout(cfg)
    wrapper = _WithCache(model, layers).eval()
    batch, seq, past_len = 2, 3, 5  # sample sizes: distinct so that no two dims get tied
    ids = torch.randint(0, cfg.vocab_size, (batch, seq))
    mask = torch.ones(batch, past_len + seq, dtype=torch.int64)
    pos = torch.arange(past_len, past_len + seq).expand(batch, seq).contiguous()
    past = [torch.randn(batch, kv_heads, past_len, head_dim) for _ in range(2 * layers)]
    inputs, outputs = io_names(layers)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            B, S, P, T = (torch.export.Dim(n) for n in ("batch", "sequence_length", "past_sequence_length",
                                                         "total_sequence_length"))
            shapes = ({0: B, 1: S}, {0: B, 1: T}, {0: B, 1: S}, tuple({0: B, 2: P} for _ in past))
            prog = torch.onnx.export(wrapper, (ids, mask, pos, *past), dynamo=True, dynamic_shapes=shapes,
                                     input_names=inputs, output_names=outputs, opset_version=OPSET,
                                     optimize=True, verbose=False)
            prog.save(str(out), external_data=_big(model))
        elif exporter == "legacy":
            axes = {"input_ids": {0: "batch", 1: "sequence_length"},
                    "attention_mask": {0: "batch", 1: "total_sequence_length"},
                    "position_ids": {0: "batch", 1: "sequence_length"},
                    "logits": {0: "batch", 1: "sequence_length"}}
            axes.update({n: {0: "batch", 2: "past_sequence_length"} for n in inputs[3:]})
            axes.update({n: {0: "batch", 2: "total_sequence_length"} for n in outputs[1:]})
            torch.onnx.export(wrapper, (ids, mask, pos, *past), str(out), dynamo=False, input_names=inputs,
                              output_names=outputs, dynamic_axes=axes, opset_version=OPSET)
        else:
            raise ValueError(f"unknown exporter {exporter!r} (dynamo, legacy)")
    return out


def _big(model) -> bool:
    return sum(p.numel() for p in model.parameters()) * 4 > 1_800_000_000


def parameters(arch: str, size: str) -> int:
    model, _ = build(arch, size)
    return sum(p.numel() for p in model.parameters())


# the tiny models tests/e2e/test_llm_decode.py runs: (file name, arch, exporter)
FIXTURES = [("tiny_gpt2_kv.onnx", "gpt2", "dynamo"), ("tiny_llama_kv.onnx", "llama", "dynamo"),
            ("tiny_llama_kv_legacy.onnx", "llama", "legacy")]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixtures", type=Path, metavar="DIR", help="write the tiny test models into DIR")
    ap.add_argument("--arch", choices=["gpt2", "llama"])
    ap.add_argument("--size", choices=["tiny", "100m"], default="tiny")
    ap.add_argument("--exporter", choices=["dynamo", "legacy"], default="dynamo")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("-o", "--output", type=Path)
    args = ap.parse_args(argv)
    if args.fixtures:
        for name, arch, exporter in FIXTURES:
            print(export(arch, "tiny", args.fixtures / name, exporter, args.seed))
        return
    if not args.arch or not args.output:
        ap.error("--arch and -o are required (or --fixtures DIR)")
    path = export(args.arch, args.size, args.output, args.exporter, args.seed)
    print(f"{path}: {args.arch} {args.size}, {parameters(args.arch, args.size) / 1e6:.1f}M parameters ({args.exporter})")


if __name__ == "__main__":
    main()
