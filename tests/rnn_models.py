"""Seeded one-node ONNX LSTM / GRU / RNN models, shared by the decompose-rnn and recurrence-kernel tests."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
SEQ, BATCH, INP, HID = 4, 2, 3, 5


def rnn_model(op, direction="forward", layout=0, bias=True, initial=False, peephole=False, lbr=0,
              seq=SEQ, outputs=("Y", "Y_h"), acts=None, dynamic_inputs=False, hidden=HID, batch=BATCH, inp=INP):
    """A one-node LSTM / GRU / RNN model with seeded random weights (initializers, or graph inputs
    with `dynamic_inputs`); `initial` adds h0 (and c0) inputs."""
    HID, BATCH, INP = hidden, batch, inp  # noqa: N806 - the shapes read as in the ONNX spec
    rng = np.random.default_rng(7)
    d = 2 if direction == "bidirectional" else 1
    g = GATES[op]
    x_shape = [seq, BATCH, INP] if layout == 0 else [BATCH, seq, INP]
    state_shape = [d, BATCH, HID] if layout == 0 else [BATCH, d, HID]
    weights = {"W": rng.uniform(-0.5, 0.5, (d, g * HID, INP)), "R": rng.uniform(-0.5, 0.5, (d, g * HID, HID))}
    if bias:
        weights["B"] = rng.uniform(-0.5, 0.5, (d, 2 * g * HID))
    if peephole:
        weights["P"] = rng.uniform(-0.5, 0.5, (d, 3 * HID))
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)]
    names = ["X", "W", "R", "B" if bias else ""]
    if initial or peephole:
        names += ["", "h0" if initial else ""]
        if initial:
            inputs.append(helper.make_tensor_value_info("h0", TensorProto.FLOAT, state_shape))
    if op == "LSTM" and (initial or peephole):
        names += ["c0" if initial else "", "P" if peephole else ""]
        if initial:
            inputs.append(helper.make_tensor_value_info("c0", TensorProto.FLOAT, state_shape))
    attrs = {"hidden_size": HID, "direction": direction, "layout": layout}
    if op == "GRU":
        attrs["linear_before_reset"] = lbr
    if acts:
        attrs["activations"] = acts
    node = helper.make_node(op, names, list(outputs), name="rnn", **attrs)
    inits = [numpy_helper.from_array(w.astype(np.float32), k) for k, w in weights.items()]
    if dynamic_inputs:  # weights as graph inputs: not constant, decomposed with runtime slicing
        inputs += [helper.make_tensor_value_info(i.name, TensorProto.FLOAT, list(i.dims)) for i in inits]
    y_shape = [seq, d, BATCH, HID] if layout == 0 else [BATCH, seq, d, HID]
    outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, y_shape if o == "Y" else state_shape)
            for o in outputs if o]
    graph = helper.make_graph([node], "g", inputs, outs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
