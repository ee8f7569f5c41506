"""Differential fuzzing of random *valid* ONNX models against onnxruntime.

`generate.random_model(seed, family)` builds a model from small block builders (`blocks_*.py`);
`run.fuzz_one` compiles it with edgec at several levels and compares with onnxruntime
(`edgec.differential.check_model`); `run.Runner` does that in a worker process that survives
native crashes and hangs. `benchmarks/fuzz.py` runs thousands and prints a table.
"""
