import pytest

from edgec.errors import ModelValidationError, PipelineError
from edgec.infra.context import PassContext
from edgec.passes.cleanup import CLEANUP_PIPELINE
from edgec.rewrite.testing import assert_model_outputs_match, op_types, parse_proto, run_pipeline

HEADER = '<ir_version: 8, opset_import: ["" : 17]>\n'
MODEL = HEADER + """
g (float[N,3,4] x, int64[B,L] mask) => (float[N,12] y, int64[B,L] m) {
  sh = Shape(x)
  i0 = Constant<value = int64[1] {0}>()
  d0 = Gather<axis=0>(sh, i0)
  k = Constant<value = int64[1] {12}>()
  s = Concat<axis=0>(d0, k)
  y = Reshape(x, s)
  m = Identity(mask)
}"""


def dims(v):
    return [d if isinstance(d, int) else d.value for d in v.shape]


def test_fixes_dims_and_lets_the_shape_chain_fold():
    proto = parse_proto(MODEL)
    model, modified = run_pipeline(proto, "fix-input-shapes{shapes=x=2x3x4;mask=1x128}")
    assert modified
    assert dims(model.graph.inputs[0]) == [2, 3, 4] and dims(model.graph.inputs[1]) == [1, 128]
    assert model.graph.node(0).outputs[0].shape is None  # stale intermediate shapes cleared

    ctx = PassContext(options={"fix-input-shapes": {"shapes": {"x": "2,3,4"}}})
    model, modified = run_pipeline(proto, CLEANUP_PIPELINE, ctx, fixpoint=True)
    assert modified
    assert op_types(model) == ["Reshape", "Identity"]
    assert model.graph.node(0).inputs[1].const_value.numpy().tolist() == [2, 12]
    assert dims(model.graph.outputs[0]) == [2, 12]
    assert_model_outputs_match(proto, model, atol=0, rtol=0)


def test_no_shapes_is_a_noop():
    proto = parse_proto(MODEL)
    model, modified = run_pipeline(proto, "fix-input-shapes")
    assert not modified
    assert dims(model.graph.inputs[0]) == ["N", 3, 4]
    # already-fixed dims: nothing to do
    model, modified = run_pipeline(proto, "fix-input-shapes{shapes=x=5x3x4}")
    assert modified
    from edgec.infra.manager import PassManager
    from edgec.infra.pipeline import parse_pipeline
    again = PassManager(parse_pipeline("fix-input-shapes{shapes=x=5x3x4}")).run(model, PassContext())
    assert not again.modified


@pytest.mark.parametrize("spec,message", [
    ("y=1x3x4", "no graph input 'y'"),
    ("x=1x3", "has rank 3, given 2"),
    ("x=1x5x4", "dim 1 is 3, given 5"),
])
def test_errors(spec, message):
    proto = parse_proto(MODEL)
    with pytest.raises(ModelValidationError, match=message) as e:
        run_pipeline(proto, f"fix-input-shapes{{shapes={spec}}}")
    assert "\n" not in str(e.value)


def test_unparsable_shape():
    with pytest.raises(PipelineError, match="cannot parse shape"):
        run_pipeline(parse_proto(MODEL), "fix-input-shapes{shapes=x=1xAx4}")
