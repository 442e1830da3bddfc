"""Helpers shared by every op: implementation dispatch and input checks.

Dispatch is explicit (``impl``), never steered by environment variables.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

Impl = Literal["auto", "torch", "reference"]
IMPLS: tuple[str, ...] = get_args(Impl)


def resolve_impl(impl: str, *tensors: torch.Tensor) -> str:
    """Return the concrete implementation for ``impl`` and the tensors' device.

    ``"auto"`` resolves to the chunked torch form on every device until the Triton kernels land.
    """
    if impl not in IMPLS:
        raise ValueError(f"impl={impl!r} is not one of {IMPLS}")
    if impl == "auto":
        return "torch"
    return impl


def check_shape(name: str, tensor: torch.Tensor, expected: tuple[int | None, ...], layout: str) -> None:
    """Raise a ValueError naming ``name`` when ``tensor`` does not have shape ``expected``.

    ``None`` in ``expected`` matches any size. ``layout`` is the human-readable layout, e.g. ``"[B,T,D]"``.
    """
    if tensor.ndim != len(expected) or any(e is not None and s != e for s, e in zip(tensor.shape, expected)):
        want = ", ".join("?" if e is None else str(e) for e in expected)
        raise ValueError(f"{name} must have shape {layout} = ({want}), got {tuple(tensor.shape)}")
