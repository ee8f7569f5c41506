"""edgec: a compiler from trained ONNX models to fast, verified code on edge devices."""

__version__ = "0.1.0"
