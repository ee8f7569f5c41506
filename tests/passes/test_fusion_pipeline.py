import numpy as np

from edgec.infra.context import PassContext
from edgec.infra.manager import PassManager
from edgec.infra.pipeline import parse_pipeline
from edgec.infra.registry import builtin_registry
from edgec.passes.fusion import FUSION_PIPELINE
from edgec.rewrite import RewriteTrace
from edgec.rewrite.testing import assert_same_outputs, inputs_for, op_list, parse, run


def test_fusion_pipeline_parses_and_runs_end_to_end():
    r = np.random.default_rng(0)
    w = ", ".join(f"{v:.5f}" for v in r.uniform(-1, 1, 4 * 3 * 9))
    text = f"""<ir_version: 8, opset_import: ["" : 18]>
    g (float[1,3,6,6] x) => (float[1,4,6,6] y) <float[4,3,3,3] w = {{{w}}}, float[4] s = {{1.0, 0.5, 2.0, 1.5}},
        float[4] b = {{0.1, 0.2, 0.3, 0.4}}, float[4] m = {{0.0, 0.1, -0.1, 0.2}}, float[4] v = {{1.0, 0.5, 2.0, 1.0}},
        float[4,1,1] k = {{0.9, 1.1, 1.2, 0.8}}> {{
      c = Conv <pads = [1,1,1,1]> (x, w)
      n = BatchNormalization (c, s, b, m, v)
      z = Mul (n, k)
      sg = Sigmoid (z)
      y = Mul (z, sg)
    }}"""
    model = parse(text)
    feeds = inputs_for(model)
    expected = run(model, feeds)
    pipeline = parse_pipeline(FUSION_PIPELINE, builtin_registry())
    assert pipeline.text() == FUSION_PIPELINE
    trace = RewriteTrace()
    PassManager(pipeline).run(model, PassContext(instruments=[trace]))
    assert op_list(model) == ["edgec.FusedConv"]
    assert model.graph.node(0).attributes["activation"].value == "Silu"
    assert trace.hits["fold-batchnorm/ConvBatchNorm"] == 1 and trace.hits["fold-scale-bias/ConvMul"] == 1
    assert_same_outputs(expected, run(model, feeds), rtol=1e-4, atol=1e-4)
