"""Helpers shared by every op: implementation dispatch and input checks.

Dispatch is explicit (``impl``), never steered by environment variables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal, get_args

import torch

Impl = Literal["auto", "triton", "torch", "reference"]
IMPLS: tuple[str, ...] = get_args(Impl)


def resolve_impl(impl: str, available: Mapping[str, Callable] | tuple[str, ...], *tensors: torch.Tensor) -> str:
    """The concrete implementation ``impl`` names for these tensors, among the op's ``available`` ones.

    ``"auto"`` is the Triton kernel for CUDA tensors when the op has one, else the chunked torch form
    (the fastest CPU path). ``"triton"`` on CPU tensors runs only under Triton's interpreter (tests).
    """
    if impl not in IMPLS:
        raise ValueError(f"impl={impl!r} is not one of {IMPLS}")
    if impl == "auto":
        on_gpu = any(t.is_cuda for t in tensors)
        return "triton" if on_gpu and "triton" in available else "torch"
    if impl not in available:
        raise ValueError(f"impl={impl!r} is not available for this op (it has: {', '.join(available)})")
    return impl


def dispatch(impl: str, available: Mapping[str, Callable], *tensors: torch.Tensor) -> Callable:
    """The function of ``available`` that ``impl`` resolves to for these tensors (see ``resolve_impl``)."""
    return available[resolve_impl(impl, available, *tensors)]


def lazy(module: str, name: str) -> Callable:
    """A function that imports ``module`` on its first call and forwards to ``module.name``.

    Triton implementations are registered this way so importing an op never imports Triton (absent on
    macOS / Windows CPU installs) and ``@triton.jit`` runs only when a kernel is first used.
    """

    def call(*args, **kwargs):
        import importlib

        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = name
    return call


def check_shape(name: str, tensor: torch.Tensor, expected: tuple[int | None, ...], layout: str) -> None:
    """Raise a ValueError naming ``name`` when ``tensor`` does not have shape ``expected``.

    ``None`` in ``expected`` matches any size. ``layout`` is the human-readable layout, e.g. ``"[B,T,D]"``.
    """
    if tensor.ndim != len(expected) or any(e is not None and s != e for s, e in zip(tensor.shape, expected)):
        want = ", ".join("?" if e is None else str(e) for e in expected)
        raise ValueError(f"{name} must have shape {layout} = ({want}), got {tuple(tensor.shape)}")
