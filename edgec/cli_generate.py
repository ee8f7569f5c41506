"""`edgec generate ARTIFACT --prompt-ids 1,2,3 --max-new-tokens 64` (edgec/generate.py)."""

from __future__ import annotations

import json

import click


def _ids(text: str) -> list[int]:
    try:
        ids = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated token ids, got '{text}'", param_hint="--prompt-ids") from None
    if not ids:
        raise click.BadParameter("no token ids", param_hint="--prompt-ids")
    return ids


@click.command("generate")
@click.argument("artifact", type=click.Path())
@click.option("--prompt-ids", default=None, metavar="IDS", help="Prompt token ids, comma-separated.")
@click.option("--prompt", "text", default=None, help="Prompt text (needs --tokenizer).")
@click.option("--tokenizer", default=None, type=click.Path(), help="tokenizer.json (the `tokenizers` package).")
@click.option("--max-new-tokens", type=click.IntRange(1), default=32, show_default=True)
@click.option("--eos-id", type=click.IntRange(0), default=None, metavar="ID",
              help="End-of-sequence token id: stop after generating it.")
@click.option("--threads", type=click.IntRange(1), default=None, help="Runtime threads (default: the artifact's, else all cores).")
@click.option("--stats", is_flag=True, help="Also print load time and peak RSS.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def generate_cmd(artifact, prompt_ids, text, tokenizer, max_new_tokens, eos_id, threads, stats, as_json):
    """Greedy generation with a compiled decoder whose KV cache is past_key_values.* in, present.* out:
    token ids in and out, prefill latency and decode tokens/s."""
    from edgec.generate import generate
    from edgec.generate import tokenizer as load_tokenizer

    if (prompt_ids is None) == (text is None):
        raise click.UsageError("give exactly one of --prompt-ids and --prompt")
    tok = load_tokenizer(tokenizer) if tokenizer else None
    if text is not None:
        if tok is None:
            raise click.UsageError("--prompt needs --tokenizer")
        ids = tok.encode(text).ids
    else:
        ids = _ids(prompt_ids)
    g = generate(artifact, ids, max_new_tokens, threads, eos_id)
    out = g.to_json()
    if tok is not None:
        out["text"] = tok.decode(g.tokens)
    if as_json:
        click.echo(json.dumps(out))
        return
    click.echo(f"tokens: {','.join(map(str, g.tokens))}")
    if tok is not None:
        click.echo(f"text: {out['text']}")
    click.echo(f"prefill: {len(g.prompt)} tokens in {out['prefill_ms']:.1f} ms; decode: {len(g.step_s)} steps, "
               f"{g.decode_tokens_per_s:.1f} tokens/s")
    if stats:
        click.echo(f"load: {out['load_ms']:.0f} ms; peak RSS: {g.peak_rss_mib:.0f} MiB "
                   f"({g.peak_rss_mib - g.rss_before_mib:.0f} MiB above the {g.rss_before_mib:.0f} MiB before loading, "
                   "load and prefill included)")
        bar = g.memory_bar
        click.echo(bar.line() if bar else "peak RSS against weights + KV cache: the artifact does not record its "
                   "weight bytes (compiled before edgec recorded them: recompile)")
