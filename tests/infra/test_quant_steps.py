"""--verify after quantization: each output's tolerance is in its own quantization steps
(`edgec.infra.quant_steps`), so a pass that moves an output by more steps fails and one within
them passes."""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir
import pytest

from edgec.errors import VerificationError
from edgec.infra.context import PassContext
from edgec.infra.manager import PassManager
from edgec.infra.pass_base import Pass, PassResult, register_pass
from edgec.infra.quant_steps import output_steps
from edgec.infra.verify import QUANT_STEPS, VerifyAgainstOnnxRuntime
from edgec.passes.quantization.quantize_static import QuantizeStatic
from tests.conftest import model_from_text
from tests.passes.quant_models import cnn

THREE_OUTPUTS = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[2, 6] x) => (float[3, 4] y1, uint8[2, 6] y2, float[2, 6] y3) {
    s = Constant <value = float {0.1}> ()
    zp = Constant <value = uint8 {128}> ()
    shape = Constant <value = int64[2] {3, 4}> ()
    q = QuantizeLinear (x, s, zp)
    d = DequantizeLinear (q, s, zp)
    y1 = Reshape (d, shape)
    y2 = Identity (q)
    y3 = Softmax (d)
}
"""


def test_output_steps_look_through_moves_to_the_dequantize():
    model = ir.from_proto(model_from_text(THREE_OUTPUTS))
    steps = output_steps(model)
    assert steps["y1"] == pytest.approx(0.1) and steps["y2"] == 1.0 and steps["y3"] is None


@register_pass
class ShiftOutputBySteps(Pass):
    """Deliberately moves the graph output by `steps` of its quantization step."""

    name = "shift-output-by-steps"
    options = {"steps": 1.0}

    def run(self, model, ctx):
        steps = float(self.opts["steps"])
        out = model.graph.outputs[0]
        step = output_steps(model)[out.name]
        shift = ir.Value(name="shift", const_value=ir.tensor(np.float32(steps * step)))
        model.graph.register_initializer(shift)
        node = ir.Node("", "Add", [out, shift], name="shift_output")
        model.graph.append(node)
        node.outputs[0].shape, node.outputs[0].dtype = out.shape, out.dtype
        node.outputs[0].name = out.name + "_shifted"
        model.graph.outputs[0] = node.outputs[0]
        node.outputs[0].name, out.name = out.name, out.name + "_unshifted"
        return PassResult(model, True)


QDQ_OUTPUT = """
<ir_version: 8, opset_import: ["" : 17]>
g (float[1, 2, 5, 5] x) => (float[1, 3, 5, 5] y) {
    sx = Constant <value = float {0.02}> ()
    zx = Constant <value = uint8 {128}> ()
    wq = Constant <value = int8[3, 2, 1, 1] {5, -7, 9, 11, -13, 2}> ()
    sw = Constant <value = float {0.05}> ()
    zw = Constant <value = int8 {0}> ()
    sy = Constant <value = float {0.03}> ()
    zy = Constant <value = uint8 {100}> ()
    xq = QuantizeLinear (x, sx, zx)
    xd = DequantizeLinear (xq, sx, zx)
    wd = DequantizeLinear (wq, sw, zw)
    c = Conv (xd, wd)
    cq = QuantizeLinear (c, sy, zy)
    y = DequantizeLinear (cq, sy, zy)
}
"""


@register_pass
class QuantizeNothing(Pass):
    """Stands for a quantization pass (changes numerics by design) on an already quantized model."""

    name = "quantize-nothing"
    changes_numerics = True

    def run(self, model, ctx):
        return PassResult(model, True)


@pytest.mark.parametrize("steps,ok", [(QUANT_STEPS * 0.5, True), (QUANT_STEPS * 1.5, False)])
def test_verify_bounds_a_quantized_model_in_its_output_steps(steps, ok):
    model = ir.from_proto(model_from_text(QDQ_OUTPUT))
    verify = VerifyAgainstOnnxRuntime(atol=1e-6, rtol=0.0)
    manager = PassManager([QuantizeNothing(), ShiftOutputBySteps(steps=steps)], fixpoint=False)
    if ok:
        manager.run(model, PassContext(instruments=[verify]))
        assert verify.rebaselined == ["quantize-nothing"] and verify.checked == ["shift-output-by-steps"]
    else:
        with pytest.raises(VerificationError, match=r"pass 'shift-output-by-steps\{steps=3.0\}' changed the outputs: 'y'"):
            manager.run(model, PassContext(instruments=[verify]))
    assert verify.quant_atol == {"y": pytest.approx(QUANT_STEPS * 0.03)}


def test_an_output_computed_in_float_is_bounded_by_its_magnitude():
    """edgec's quantize-static leaves graph outputs float (the last MatMul reads dequantized
    operands): no step, so 2 int8 steps of the output's largest magnitude."""
    model = ir.from_proto(onnx.shape_inference.infer_shapes(cnn(), strict_mode=True))  # typed values
    verify = VerifyAgainstOnnxRuntime()
    PassManager([QuantizeStatic()], fixpoint=False).run(
        model, PassContext(instruments=[verify], options={"quantize-static": {"samples": 4}}))
    assert output_steps(model) == {"y": None}
    assert verify.quant_atol == {"y": pytest.approx(2 * np.abs(verify.expected["y"]).max() / 127)}
