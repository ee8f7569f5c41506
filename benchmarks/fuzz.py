"""Differential fuzzer: random valid ONNX models (edgec.fuzz.generate) compiled at -O0 and -O2,
run and compared with onnxruntime, in a worker process that survives crashes and hangs.

    python benchmarks/fuzz.py --minutes 20 --targets x86-64,armv8 --out docs/fuzz.md --findings fuzz-findings

Seeds go up from --seed; the family is round robin over the seed (`family_of_seed`). Targets after
the first (e.g. armv8 under qemu) compile every --sample-every'th model. Every failure (mismatch,
internal error, crash, hang) is saved to --findings with a JSON line in findings.jsonl.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from edgec.fuzz.generate import FAMILY_NAMES, describe, random_model
from edgec.fuzz.report import render
from edgec.fuzz.run import FAILURE_KINDS, Runner, save_finding


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=None, help="Stop starting new models after this long.")
    p.add_argument("--count", type=int, default=None, help="Number of models (default: 50 without --minutes).")
    p.add_argument("--seed", type=int, default=0, help="First seed.")
    p.add_argument("--targets", default="x86-64", help="Comma-separated; the first runs every model.")
    p.add_argument("--sample-every", type=int, default=10, help="Other targets run every N-th model.")
    p.add_argument("--levels", default="0,2", help="Optimization levels to compile at.")
    p.add_argument("--families", default=",".join(FAMILY_NAMES), help="Comma-separated families.")
    p.add_argument("--timeout", type=float, default=300.0, help="Seconds before a compile counts as a hang.")
    p.add_argument("--out", default=None, help="Write the markdown table here (e.g. docs/fuzz.md).")
    p.add_argument("--findings", default="fuzz-findings", help="Directory for failing models.")
    p.add_argument("--records", default=None, help="Also write every record as JSON lines here.")
    return p.parse_args(argv)


def jobs_for(index: int, seed: int, targets: list[str], levels: list[int], every: int):
    for i, target in enumerate(targets):
        if i == 0 or index % every == 0:
            for level in levels:
                yield target, level


def main(argv=None) -> int:
    args = parse_args(argv)
    count = args.count if args.count is not None else (None if args.minutes else 50)
    deadline = time.monotonic() + args.minutes * 60 if args.minutes else float("inf")
    targets, levels = args.targets.split(","), [int(v) for v in args.levels.split(",")]
    families = args.families.split(",")
    models, records, start, index = [], [], time.monotonic(), 0
    with Runner(timeout=args.timeout) as runner:
        while (count is None or index < count) and time.monotonic() < deadline:
            seed = args.seed + index
            family = families[seed % len(families)]
            models.append({"seed": seed, **describe(random_model(seed, family))})
            for target, level in jobs_for(index, seed, targets, levels, args.sample_every):
                rec = runner.run(seed, family, target, level)
                records.append(rec)
                if rec["kind"] in FAILURE_KINDS:
                    save_finding(args.findings, rec)
                    print(f"FAIL seed {seed} {family} {target} -O{level}: {rec['signature']}", flush=True)
            index += 1
            if index % 25 == 0:
                print(f"{index} models, {len(records)} compiles, {(time.monotonic() - start) / 60:.1f} min",
                      file=sys.stderr, flush=True)
    if args.records:
        Path(args.records).write_text("".join(json.dumps(r) + "\n" for r in records))
    meta = {"argv": " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
            "first_seed": args.seed, "last_seed": args.seed + index - 1, "targets": ", ".join(targets),
            "minutes": (time.monotonic() - start) / 60}
    text = render(models, records, meta)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 1 if any(r["kind"] in FAILURE_KINDS for r in records) else 0


if __name__ == "__main__":
    sys.exit(main())
