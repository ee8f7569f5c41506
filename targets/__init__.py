"""edgec.targets: target descriptions (data) and the TVM backend (`edgec.targets.tvm`, the only
package that imports tvm)."""

from edgec.targets.registry import TargetSpec, all_targets, get_target, host_target

__all__ = ["TargetSpec", "all_targets", "get_target", "host_target"]
