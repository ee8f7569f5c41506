"""An example edgec plugin package: one pass (recognize-mish) and one board (rpi3-plugin)."""
