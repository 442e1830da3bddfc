"""Causal long convolution with an explicit filter (Hyena / HyenaDNA long filters)."""

from zoo.kernels.long_conv.ops import long_conv_chunk, long_conv_step
from zoo.kernels.long_conv.reference import long_conv_chunk_ref, long_conv_recurrent_ref

__all__ = ["long_conv_chunk", "long_conv_chunk_ref", "long_conv_recurrent_ref", "long_conv_step"]
