"""store-transposed-weights: Transpose(W) of an initializer becomes the transposed initializer,
and a Gather on W (a tied embedding) reads it along axis 1; bit-exact against onnxruntime;
declines when W has another reader, another perm, or feeds a graph output through the Transpose."""

import numpy as np

from edgec.passes.layout.store_transposed_weights import StoreTransposedWeights
from edgec.rewrite.testing import check_pass

HEADER = '<ir_version: 8, opset_import: ["" : 18]>'
W = "float[4,3] w = {0.5, -1.0, 2.0, 3.5, 0.25, -0.75, 1.5, 2.5, -3.0, 0.125, 4.0, -2.25}"


def test_tied_embedding_reads_the_heads_transposed_weight():
    text = HEADER + """
    g (int64[2,3] ids) => (float[2,3,4] y, float[2,3,3] e) <W> {
      e = Gather <axis = 0> (w, ids)
      wt = Transpose <perm = [1, 0]> (w)
      y = MatMul (e, wt)
    }""".replace("<W>", f"<{W}>")
    m = check_pass(text, StoreTransposedWeights(), ["Gather", "Transpose", "MatMul"], rtol=0, atol=1e-5)
    assert len(m.graph.initializers) == 1  # one stored copy, read by both
    wt = next(iter(m.graph.initializers.values()))
    assert sorted(n.op_type for n, _ in wt.uses()) == ["Gather", "MatMul"]
    assert np.array_equal(wt.const_value.numpy(), np.array(
        [0.5, -1.0, 2.0, 3.5, 0.25, -0.75, 1.5, 2.5, -3.0, 0.125, 4.0, -2.25], np.float32).reshape(4, 3).T)
    assert m.graph.node(0).attributes["axis"].value == 1
    assert list(m.graph.node(1).attributes["perm"].value) == [1, 2, 0]


def test_untied_head_and_symbolic_ids():
    head = HEADER + """
    g (float[N,3] x) => (float[N,4] y) <W> {
      wt = Transpose <perm = [1, 0]> (w)
      y = MatMul (x, wt)
    }""".replace("<W>", f"<{W}>")
    check_pass(head, StoreTransposedWeights(), ["MatMul"], rtol=0, atol=1e-5)
    rank1 = HEADER + """
    g (int64[N] ids) => (float[N,4] y) <W> {
      e = Gather (w, ids)
      wt = Transpose <perm = [1, 0]> (w)
      y = MatMul (e, wt)
    }""".replace("<W>", f"<{W}>")
    check_pass(rank1, StoreTransposedWeights(), ["Gather", "Transpose", "MatMul"], rtol=0, atol=1e-5)


def test_must_not_fire_other_reader_perm_axis_or_output():
    cases = {
        "untied": """g (int64[2,3] ids, float[3,4] v) => (float[2,3,4] y) <W> {
                       e = Gather <axis = 0> (w, ids)
                       y = MatMul (e, v)
                     }""",
        "another reader": """g (float[4,4] x) => (float[3,4] y, float[4,3] z) <W> {
                       wt = Transpose <perm = [1, 0]> (w)
                       y = MatMul (wt, x)
                       z = Relu (w)
                     }""",
        "gather along axis 1": """g (int64[2] ids) => (float[4,2] c, float[3,4] y) <W> {
                       c = Gather <axis = 1> (w, ids)
                       y = Transpose <perm = [1, 0]> (w)
                     }""",
        "transpose is a graph output": """g (float[2,4] x) => (float[3,4] wt, float[2,3] y) <W> {
                       wt = Transpose <perm = [1, 0]> (w)
                       y = MatMul (x, w)
                     }""",
    }
    ops = {"untied": ["Gather", "MatMul"], "another reader": ["Transpose", "MatMul", "Relu"],
           "gather along axis 1": ["Gather", "Transpose"], "transpose is a graph output": ["Transpose", "MatMul"]}
    for name, body in cases.items():
        text = HEADER + "\n" + body.replace("<W>", f"<{W}>")
        if name == "gather along axis 1":  # indices in [0, 4): a table with 4 columns
            text = text.replace("float[3,4] y", "float[4,4] y").replace(
                W, "float[4,4] w = {1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16}")
        check_pass(text, StoreTransposedWeights(), ops[name], modified=False)


def test_table_whose_transpose_was_already_folded():
    """fold-constants folds Transpose(W) of a small table into its own initializer: the Gather on W
    then reads that initializer (matched by value); an initializer that is not W^T is left alone."""
    wt = "float[3,4] wt = {0.5, 3.5, 1.5, 0.125, -1.0, 0.25, 2.5, 4.0, 2.0, -0.75, -3.0, -2.25}"
    text = HEADER + """
    g (int64[2,3] ids) => (float[2,3,4] y) <W, WT> {
      e = Gather <axis = 0> (w, ids)
      y = MatMul (e, wt)
    }""".replace("W, WT", f"{W}, {wt}")
    m = check_pass(text, StoreTransposedWeights(), ["Gather", "Transpose", "MatMul"], rtol=0, atol=1e-5)
    assert list(m.graph.initializers) == ["wt"]
    other = wt.replace("0.5, 3.5", "0.5, 3.25")
    check_pass(text.replace(wt, other), StoreTransposedWeights(), ["Gather", "MatMul"], modified=False)
