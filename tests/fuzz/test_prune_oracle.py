"""Channel pruning against its exact oracle (edgec.fuzz.prune_oracle) on the fuzzer's generated
models: the pruned model computes what the original does with the removed channels' consumer
weights zeroed. A fixed sample here; `python benchmarks/fuzz_prune.py --minutes 30` for a sweep."""

from __future__ import annotations

import collections

from edgec.fuzz import prune_oracle
from edgec.fuzz.generate import random_model
from edgec.passes.pruning import prune_channels

SEEDS = range(0, 600)


def test_generated_models_prune_exactly():
    status = collections.Counter()
    bad = []
    for seed in SEEDS:
        r = prune_oracle.check(random_model(seed), seed=seed)
        status[r["status"]] += 1
        if r["status"] not in ("pruned", "unchanged"):
            bad.append((seed, r["status"], r["detail"]))
    assert not bad, bad[:5]
    assert status["pruned"] >= 80, status  # the CNN and transformer families have prunable layers


def test_the_oracle_sees_a_wrong_channel(monkeypatch):
    """If the pass removed other channels than it says (here: the record shifted by one), the
    zeroed original and the pruned model differ, and the check says so."""
    call = prune_channels.PruneChannels.__call__

    def shifted(self, *a, **k):
        r = call(self, *a, **k)
        self.last_removed_inputs = {key: [i - 1 if i > 0 else i + 1 for i in idx]
                                    for key, idx in self.last_removed_inputs.items()}
        return r

    monkeypatch.setattr(prune_channels.PruneChannels, "__call__", shifted)
    found = collections.Counter(prune_oracle.check(random_model(seed), seed=seed)["status"] for seed in range(0, 200))
    assert found["mismatch"] >= 10, found


def test_run_time_targets_prune_what_constant_ones_do():
    """The same generated models with a symbolic batch read back by their Reshape targets at run
    time (edgec.fuzz.dynamic_batch): every one passes the exact check at batch 1, and prunes as
    many groups as its static twin (a target built at run time must not end a group)."""
    from edgec.fuzz.dynamic_batch import batch_one_inputs, with_run_time_targets

    rewritten = pruned = 0
    for seed in range(300):
        static = random_model(seed)
        model, n = with_run_time_targets(static)
        if not n:
            continue
        rewritten += 1
        got = prune_oracle.check(model, seed=seed, feeds=batch_one_inputs(model, seed))
        assert got["status"] in ("pruned", "unchanged"), (seed, got)
        assert got["pruned_groups"] == prune_oracle.check(static, seed=seed)["pruned_groups"], seed
        pruned += got["status"] == "pruned"
    assert rewritten >= 20 and pruned >= 15, (rewritten, pruned)
