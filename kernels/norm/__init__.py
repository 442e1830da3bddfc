"""RMSNorm with an optional fused residual add (the pre-norm of every residual block)."""

from zoo.kernels.norm.ops import rms_norm
from zoo.kernels.norm.reference import rms_norm_ref

__all__ = ["rms_norm", "rms_norm_ref"]
