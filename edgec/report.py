"""`edgec compile --report report.html`: one self-contained HTML page (inline SVG, no JavaScript)
with each pass run's time, node counts and op changes, the rewrite rules that fired and where,
and a before/after op-count bar chart. Written atomically (temporary file, then rename)."""

from __future__ import annotations

import html
import os
from collections import defaultdict
from pathlib import Path

_CSS = """body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f0f0f0}
td.n{text-align:right}.at{color:#555;font-size:12px}code{background:#f6f6f6}.dim{color:#999}"""


def _e(x) -> str:
    return html.escape(str(x))


def op_chart(before: dict[str, int], after: dict[str, int], width: int = 520) -> str:
    """Horizontal bars per op type: grey = before the passes, blue = after."""
    ops = sorted(set(before) | set(after), key=lambda o: (-max(before.get(o, 0), after.get(o, 0)), o))
    top = max([1] + [max(before.get(o, 0), after.get(o, 0)) for o in ops])
    label, bar_w, row = 190, width - 190 - 40, 22
    h = row * len(ops) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" role="img" '
             f'aria-label="op counts before and after the passes">',
             '<rect x="190" y="2" width="10" height="10" fill="#bbb"/><text x="204" y="11" font-size="11">before</text>',
             '<rect x="260" y="2" width="10" height="10" fill="#3b7dd8"/><text x="274" y="11" font-size="11">after</text>']
    for i, op in enumerate(ops):
        y = 20 + i * row
        b, a = before.get(op, 0), after.get(op, 0)
        parts.append(f'<text x="{label - 6}" y="{y + 13}" font-size="12" text-anchor="end">{_e(op)}</text>')
        parts.append(f'<rect x="{label}" y="{y + 2}" width="{bar_w * b / top:.1f}" height="8" fill="#bbb"/>')
        parts.append(f'<rect x="{label}" y="{y + 10}" width="{bar_w * a / top:.1f}" height="8" fill="#3b7dd8"/>')
        parts.append(f'<text x="{label + bar_w * max(a, b) / top + 4:.1f}" y="{y + 15}" font-size="11">{b} → {a}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _rules_cell(rules: dict) -> str:
    if not rules:
        return ""
    items = []
    for rule, r in rules.items():
        at = r.get("at", [])
        where = ", ".join(at[:12]) + (f" … (+{len(at) - 12})" if len(at) > 12 else "")
        items.append(f"<b>{_e(rule)}</b> ×{r['hits']}<div class=at>{_e(where)}</div>")
    return "".join(items)


def render(meta: dict, title: str = "edgec compile report", build_info: dict | None = None) -> str:
    """The report of an artifact's metadata; pass times come from the compile's build info
    (metadata.json holds none: artifacts are reproducible), blank without it."""
    p = meta["pipeline"]
    seconds = (build_info or {}).get("pass_seconds") or []
    runs = [{**r, "seconds": seconds[i] if len(seconds) == len(p.get("passes", [])) else float("nan")}
            for i, r in enumerate(p.get("passes", []))]
    totals: dict[str, list] = defaultdict(lambda: [0.0, 0, 0])
    for r in runs:
        t = totals[r["pass"]]
        t[0] += r["seconds"]
        t[1] += 1
        t[2] += sum(x["hits"] for x in r.get("rules", {}).values())
    rows = []
    for r in runs:
        delta = ", ".join(f"{op} {d:+d}" for op, d in r["op_delta"].items())
        cls = "" if r["modified"] else " class=dim"
        rows.append(f"<tr{cls}><td><code>{_e(r['pass'])}</code></td><td class=n>{r['iteration']}</td>"
                    f"<td class=n>{r['seconds'] * 1e3:.2f}</td><td class=n>{r['nodes_before']}</td>"
                    f"<td class=n>{r['nodes_after']}</td><td>{_e(delta)}</td><td>{_rules_cell(r.get('rules', {}))}</td></tr>")
    summary = "".join(f"<tr><td><code>{_e(name)}</code></td><td class=n>{t[1]}</td><td class=n>{t[0] * 1e3:.2f}</td>"
                      f"<td class=n>{t[2]}</td></tr>" for name, t in totals.items())
    target = meta.get("target", {}).get("name", "?")
    io = p.get("io_layout") or {}
    io_line = f"<p>Graph I/O layout changed: {_e(', '.join(f'{k}: {v}' for k, v in io.items()))}</p>" if io else ""
    total = sum(r["seconds"] for r in runs)
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{_e(title)}</title><style>{_CSS}</style></head><body>
<h1>{_e(title)}</h1>
<p>Model <code>{_e(meta.get('model', {}).get('file', '?'))}</code> for target <code>{_e(target)}</code>,
-O{p.get('opt_level')}: {p['nodes_before']} → {p['nodes_after']} nodes, {len(runs)} pass runs in {total * 1e3:.1f} ms.</p>
{io_line}<p>Pipeline: <code>{_e(p['text'])}</code></p>
<h2>Op counts</h2>{op_chart(p.get('ops_before', {}), p.get('ops_after', {}))}
<h2>Passes</h2><table><tr><th>pass</th><th>runs</th><th>total ms</th><th>rewrites</th></tr>{summary}</table>
<h2>Pass runs</h2><table><tr><th>pass</th><th>iteration</th><th>ms</th><th>nodes before</th><th>nodes after</th>
<th>op changes</th><th>rules fired (where)</th></tr>{''.join(rows)}</table>
</body></html>
"""


def write_report(path: str | os.PathLike, meta: dict, build_info: dict | None = None) -> Path:
    """Render and write the report atomically; an unwritable path is a one-line OutputPathError
    (the CLI checks it with `check_output_file` before compiling)."""
    from edgec.output_paths import write_file_atomic

    write_file_atomic(path, render(meta, build_info=build_info), "report")
    return Path(path)
