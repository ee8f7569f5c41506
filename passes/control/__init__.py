"""Control-flow passes: RNN decomposition, If folding, Loop/Scan unrolling.

The TVM backend cannot lower LSTM/GRU/RNN, If, Loop or Scan; these passes rewrite them into
primitive ops where shapes, conditions and trip counts are static.
"""

#: Run after fold-constants (conditions and trip counts fold there), before infer-shapes.
CONTROL_PIPELINE = "fold-if,unroll-loop,decompose-rnn"
