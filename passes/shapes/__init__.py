"""Shape passes: specialize shape-determining runtime inputs that static shapes determine.

One pass per module, named after the pass (`specialize_shape_inputs.py` defines
`specialize-shape-inputs`).
"""
