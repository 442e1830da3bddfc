"""Bidirectional wrapper (Caduceus' BiMamba, generalised to any causal mixer).

``y = mixer_fwd(x) + flip(mixer_rev(flip(x)))`` over time. With ``tie_projections`` the reverse mixer
shares the input and output projections of the forward one (Caduceus' weight tying), so a
bidirectional layer costs little more than a causal one. A bidirectional layer sees the future: it has
no step form and no streaming state.
"""

from __future__ import annotations

from typing import Any

import torch

from zoo.layers.base import Mixer

TIED_PROJECTIONS = ("in_proj", "out_proj")


class BidirectionalMixer(Mixer):
    """Runs ``fwd`` left-to-right and ``rev`` right-to-left and adds the results."""

    causal = False

    def __init__(self, fwd: Mixer, rev: Mixer, tie_projections: bool = True):
        super().__init__()
        if not (fwd.causal and rev.causal):
            raise ValueError("BidirectionalMixer wraps causal mixers; attention is bidirectional by itself")
        self.d_model = fwd.d_model
        self.config = fwd.config
        self.fwd = fwd
        self.rev = rev
        if tie_projections:
            for name in TIED_PROJECTIONS:
                if hasattr(fwd, name) and hasattr(rev, name):
                    setattr(rev, name, getattr(fwd, name))

    def _forward(self, x: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        if state is not None:
            raise ValueError(
                "a bidirectional layer cannot continue from a state: it needs the whole sequence"
            )
        y_fwd, _ = self.fwd(x)
        y_rev, _ = self.rev(x.flip(1))
        return y_fwd + y_rev.flip(1), None

    def init_state(self, batch: int, device=None, dtype=None) -> None:
        """Bidirectional layers carry no state."""
        return None
