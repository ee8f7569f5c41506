"""share-tied-embedding: Gather on a table the head also reads transposed reads the transposed
copy (one stored layout); bit-exact against onnxruntime; declines on an untied table, another
perm, a Gather along axis 1."""

from edgec.passes.layout.share_tied_embedding import ShareTiedEmbedding
from edgec.rewrite.testing import check_pass

HEADER = '<ir_version: 8, opset_import: ["" : 18]>'
W = "float[4,3] w = {0.5, -1.0, 2.0, 3.5, 0.25, -0.75, 1.5, 2.5, -3.0, 0.125, 4.0, -2.25}"


def test_tied_embedding_reads_the_heads_transpose():
    text = HEADER + """
    g (int64[2,3] ids) => (float[2,3,4] y, float[2,3,3] e) <W> {
      e = Gather <axis = 0> (w, ids)
      wt = Transpose <perm = [1, 0]> (w)
      y = MatMul (e, wt)
    }""".replace("<W>", f"<{W}>")
    m = check_pass(text, ShareTiedEmbedding(), ["Transpose", "Gather", "Transpose", "MatMul"], rtol=0, atol=0)
    users = [(n.op_type, i) for n, i in m.graph.initializers["w"].uses()]
    assert users == [("Transpose", 0)]  # one reader: one stored layout
    assert m.graph.node(1).attributes["axis"].value == 1
    assert list(m.graph.node(2).attributes["perm"].value) == [1, 2, 0]


def test_symbolic_ids_rank_one():
    text = HEADER + """
    g (int64[N] ids) => (float[N,4] y) <W> {
      e = Gather (w, ids)
      wt = Transpose <perm = [1, 0]> (w)
      y = MatMul (e, wt)
    }""".replace("<W>", f"<{W}>")
    check_pass(text, ShareTiedEmbedding(), ["Transpose", "Gather", "Transpose", "MatMul"], rtol=0, atol=0)


def test_must_not_fire_untied_other_perm_or_axis():
    untied = HEADER + """
    g (int64[2,3] ids, float[3,4] v) => (float[2,3,4] y) <W> {
      e = Gather <axis = 0> (w, ids)
      y = MatMul (e, v)
    }""".replace("<W>", f"<{W}>")
    check_pass(untied, ShareTiedEmbedding(), ["Gather", "MatMul"], modified=False)
    axis1 = HEADER + """
    g (int64[2] ids) => (float[4,2] c, float[4,4] wt) <float[4,4] w = {1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16}> {
      c = Gather <axis = 1> (w, ids)
      wt = Transpose <perm = [1, 0]> (w)
    }"""
    check_pass(axis1, ShareTiedEmbedding(), ["Gather", "Transpose"], modified=False)
    cube = HEADER + """
    g (int64[2] ids) => (float[2,1,3] e, float[3,1,4] t) <float[4,1,3] w = {1,2,3,4,5,6,7,8,9,10,11,12}> {
      e = Gather (w, ids)
      t = Transpose <perm = [2, 1, 0]> (w)
    }"""
    check_pass(cube, ShareTiedEmbedding(), ["Gather", "Transpose"], modified=False)
