"""benchmarks/bench_prune.py's per-round spread: each round's pruned median over its original
median, summarized as median and interquartile range; too few or unpaired rounds give nothing."""

from __future__ import annotations

import pytest

from tests.benchmark_scripts import load_benchmark


def _script():
    return load_benchmark("bench_prune.py", "edgec_bench_prune")


def test_per_round_ratios_are_paired_and_summarized():
    orig = [2.0, 4.0, 2.0, 8.0, 2.0]
    pruned = [1.0, 2.4, 1.2, 4.0, 1.4]  # ratios 0.5, 0.6, 0.6, 0.5, 0.7
    (line,) = _script().paired_spread(orig, pruned)
    assert "over 5 rounds" in line and "median 0.600" in line
    assert "interquartile range 0.500-0.600" in line


@pytest.mark.parametrize("orig, pruned", [([1.0] * 3, [0.5] * 3), ([1.0] * 5, [0.5] * 4)])
def test_too_few_or_unpaired_rounds_give_no_spread(orig, pruned):
    assert _script().paired_spread(orig, pruned) == []


def test_warmup_goes_on_for_the_asked_seconds_before_timing():
    """bench_prune's processes warm up for `--warmup` calls and at least `--warmup-s` seconds (a
    fresh process's first 0.1-0.3 s ran slow on the 2-core guest): the timed calls start after both."""
    import time

    calls = []

    def run():
        calls.append(time.perf_counter())
        time.sleep(0.001)

    t0 = time.perf_counter()
    ts = load_benchmark("bench_models.py", "edgec_bench_models").time_calls(run, 2, 5, warmup_s=0.05)
    assert len(ts) == 5 and all(t >= 0.001 for t in ts)
    assert calls[-5] - t0 >= 0.05 and len(calls) >= 2 + 5 + 10  # untimed calls filled the 50 ms
    calls.clear()
    load_benchmark("bench_models.py", "edgec_bench_models").time_calls(run, 2, 5)
    assert len(calls) == 7  # no time asked: the count alone
