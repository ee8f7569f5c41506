"""Pruning passes: unstructured magnitude, 2:4 semi-structured masks, structured channel removal."""
