"""Mamba-1's selective scan: per-channel diagonal SSMs with input-dependent step, B and C."""

from zoo.kernels.selective_scan.ops import selective_scan_chunk, selective_scan_step
from zoo.kernels.selective_scan.reference import selective_scan_chunk_ref, selective_scan_recurrent_ref

__all__ = [
    "selective_scan_chunk",
    "selective_scan_chunk_ref",
    "selective_scan_recurrent_ref",
    "selective_scan_step",
]
