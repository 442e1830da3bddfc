"""The mixer contract shared by every sequence mixer.

Tensor contract: ``x [B, T, D] -> y [B, T, D]`` for ``forward`` and ``x_t [B, D] -> y_t [B, D]``
for ``step``. A mixer's state is a ``NamedTuple`` of tensors (so it can be mapped over, moved and
detached generically with ``torch.utils._pytree``); ``forward`` takes an optional state and always
returns the final state, so a long input can be processed chunk by chunk with constant memory.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

State = NamedTuple  # every mixer's state is a NamedTuple of tensors


class Mixer(nn.Module):
    """Base class of a sequence mixer: ``forward``, ``step`` and ``init_state``.

    Subclasses set ``d_model`` and ``config`` in ``__init__(d_model, config)`` and implement
    ``_forward``, ``_step`` and ``init_state``; the public methods check inputs once here.
    """

    d_model: int
    config: Any
    #: False for mixers that look at the future (bidirectional attention): they have no ``step``.
    causal: bool = True

    def forward(self, x: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """Mix a whole sequence. ``x [B, T, D]``; returns ``(y [B, T, D], final_state)``."""
        check_sequence_input(x, self.d_model, type(self).__name__)
        return self._forward(x, state)

    def step(self, x_t: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """Advance one token. ``x_t [B, D]``; returns ``(y_t [B, D], new_state)``."""
        name = type(self).__name__
        if not self.causal:
            raise RuntimeError(f"{name} is bidirectional: it sees the future and has no step form")
        if state is None:
            raise ValueError(f"{name}.step needs a state: call init_state(batch) first")
        if x_t.ndim != 2 or x_t.shape[-1] != self.d_model:
            raise ValueError(f"{name}.step expects x_t of shape [B, {self.d_model}], got {tuple(x_t.shape)}")
        _check_float(x_t, name)
        return self._step(x_t, state)

    def init_state(
        self, batch: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> Any:
        """Return the empty state for ``batch`` sequences (zeros, or an empty cache)."""
        raise NotImplementedError

    def _forward(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        raise NotImplementedError

    def _step(self, x_t: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        raise NotImplementedError


def _check_float(x: torch.Tensor, who: str) -> None:
    if not torch.is_floating_point(x):
        raise TypeError(
            f"{who} expects a floating-point tensor, got dtype {x.dtype}; "
            "token ids go through the model's embedding, not into a mixer"
        )


def check_sequence_input(x: torch.Tensor, d_model: int, who: str) -> None:
    """Raise a clear error unless ``x`` is a non-empty float tensor ``[B, T, d_model]``."""
    if x.ndim != 3:
        raise ValueError(f"{who} expects x of shape [B, T, {d_model}], got {x.ndim}-d shape {tuple(x.shape)}")
    if x.shape[-1] != d_model:
        raise ValueError(f"{who} expects last dimension d_model={d_model}, got shape {tuple(x.shape)}")
    if x.shape[1] == 0:
        raise ValueError(f"{who} got an empty sequence (T=0)")
    _check_float(x, who)
