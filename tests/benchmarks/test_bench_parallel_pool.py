"""benchmarks/bench_parallel_pool.py on a small model: both pools really ran (each worker reports
the pool it ran on), their outputs match onnxruntime's and each other's bit for bit."""

from __future__ import annotations

from tests.benchmark_scripts import load_benchmark


def test_both_pools_run_the_same_artifact_with_the_same_bits(tmp_path):
    bench = load_benchmark("bench_parallel_pool.py", "bench_parallel_pool")
    rows = bench.bench(["small_block"], threads=2, rounds=2, repeat=5, out=tmp_path)
    (row,) = rows
    assert row["outputs_match"] and row["same_bits"]
    assert row["tvm_ms"] > 0 and row["edgec_ms"] > 0
    assert "| small_block |" in bench.table(rows, 2, 2, 5)
