"""Layout passes: transpose/reshape algebra, transpose sinking, NCHW → NHWC conversion.

`to-nhwc` rewrites Conv/pool/BatchNormalization to channel-last edgec ops (each with a model-local
function, see docs/edgec-ops.md) wrapped in Transposes, then sinks and cancels those Transposes
(the `sink-transposes` and `fold-transposes` rules) so that at most one remains at each graph
input and output; with `io_layout=nhwc` those go too and the graph's I/O becomes NHWC.
"""

#: Run after fusion on targets whose `TargetSpec.layout` is "NHWC".
LAYOUT_PIPELINE = "to-nhwc"
