"""Mamba-2's SSD scan (state-space duality): selective decay per head, B/C shared within groups."""

from zoo.kernels.ssd.ops import ssd_chunk, ssd_step
from zoo.kernels.ssd.reference import ssd_chunk_ref, ssd_recurrent_ref

__all__ = ["ssd_chunk", "ssd_chunk_ref", "ssd_recurrent_ref", "ssd_step"]
