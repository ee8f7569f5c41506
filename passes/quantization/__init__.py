"""Quantization passes: calibrated QDQ insertion (static int8 / int16 activations), weight scales."""
