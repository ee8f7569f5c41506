"""The boards this package adds (entry-point group `edgec.targets`): board files shipped as
package data. An entry point may also give TargetSpec objects."""

from pathlib import Path

BOARDS = [Path(__file__).with_name("rpi3.toml")]
