"""Causal depthwise short convolution (Mamba, Mamba-2 and Hyena short filters)."""

from zoo.kernels.causal_conv1d.ops import causal_conv1d_chunk, causal_conv1d_step
from zoo.kernels.causal_conv1d.reference import causal_conv1d_chunk_ref, causal_conv1d_recurrent_ref

__all__ = [
    "causal_conv1d_chunk",
    "causal_conv1d_chunk_ref",
    "causal_conv1d_recurrent_ref",
    "causal_conv1d_step",
]
