"""Channel pruning against its exact oracle on random valid models (issue 15's "whatever the
differential fuzzer throws at it"): edgec.fuzz.generate's models, pruned by prune-channels with the
ends not protected, must compute what the original computes with the removed channels' consumer
weights zeroed (edgec.fuzz.prune_oracle; onnxruntime on both, seeded inputs).

    python benchmarks/fuzz_prune.py --minutes 30 --seed 100000 --ratio 0.5
    python benchmarks/fuzz_prune.py --count 2000 --findings /tmp/prune-findings

Seeds go up from --seed, families round robin (`family_of_seed`). Each model is checked in this
process (onnxruntime only, no compile); an exception is recorded as a crash with the seed. Every
failure is saved as <seed>.onnx in --findings. Prints a table per family and the failures.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import onnx

from edgec.fuzz import prune_oracle
from edgec.fuzz.dynamic_batch import batch_one_inputs, with_run_time_targets
from edgec.fuzz.generate import family_of_seed, random_model


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=None)
    ap.add_argument("--count", type=int, default=None, help="models (default 500 without --minutes)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--round-to", type=int, default=1, help="keep a multiple of this many channels per layer")
    ap.add_argument("--findings", default=None, help="save failing models here")
    ap.add_argument("--dynamic-batch", action="store_true",
                    help="a symbolic batch, Reshape targets read it back at run time (edgec.fuzz.dynamic_batch)")
    a = ap.parse_args(argv)
    count = a.count if a.count is not None else (None if a.minutes else 500)
    stop = time.monotonic() + a.minutes * 60 if a.minutes else None
    table: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    failures = []
    seed, t0 = a.seed, time.monotonic()
    while (count is None or seed - a.seed < count) and (stop is None or time.monotonic() < stop):
        family = family_of_seed(seed)
        model = random_model(seed)
        try:
            feeds = None
            if a.dynamic_batch:
                model, _ = with_run_time_targets(model)
                feeds = batch_one_inputs(model, seed)
            r = prune_oracle.check(model, ratio=a.ratio, seed=seed, round_to=a.round_to, feeds=feeds)
        except Exception as e:  # noqa: BLE001 - a crash of the pass or the oracle: a finding
            r = {"status": "crash", "detail": f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"}
        table[family][r["status"]] += 1
        if r["status"] not in ("pruned", "unchanged"):
            failures.append((seed, family, r["status"], r["detail"]))
            if a.findings:
                Path(a.findings).mkdir(parents=True, exist_ok=True)
                onnx.save(model, Path(a.findings) / f"{seed}.onnx")
        seed += 1
    n = seed - a.seed
    print(f"{n} models (seeds {a.seed}..{seed - 1}), ratio {a.ratio}, round-to {a.round_to}, "
          f"{'dynamic batch, ' if a.dynamic_batch else ''}"
          f"{time.monotonic() - t0:.0f} s\n")
    kinds = ["pruned", "unchanged", "mismatch", "invalid", "crash"]
    print("| family | " + " | ".join(kinds) + " |")
    print("|---" * (len(kinds) + 1) + "|")
    for fam in sorted(table):
        print(f"| {fam} | " + " | ".join(str(table[fam][k]) for k in kinds) + " |")
    for f in failures[:50]:
        print("FAIL seed %d (%s): %s: %s" % f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
