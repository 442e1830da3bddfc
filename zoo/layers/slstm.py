"""sLSTM layer of xLSTM (Beck et al. 2024, arXiv:2405.04517), as NX-AI xlstm's ``sLSTMLayer``.

Follows ``xlstm.blocks.slstm.layer.sLSTMLayer`` (xlstm 2.0.x, also vendored by Bio-xLSTM): the module
tree and the parameter names are theirs, so an NX-AI / Bio-xLSTM checkpoint maps by identity of keys
(see :data:`PARAMETER_LAYOUT` for the two cell tensors, whose layout depends on the backend there):

    conv1d.conv.{weight [d,1,W], bias [d]}      causal depthwise conv, only when conv1d_kernel_size > 0
    fgate.weight, igate.weight, zgate.weight, ogate.weight   [H, D, D] headwise projections, no bias
    slstm_cell._recurrent_kernel_ [H, D, 4*D]   slstm_cell._bias_ [H*4*D]
    group_norm.weight [d]                       per-head LayerNorm, scale 1 + weight, no bias

Tensor contract: ``x [B, T, d] -> y [B, T, d]`` with ``d = H * D``:

    xc = silu(conv1d(x))                               # x itself when conv1d_kernel_size == 0
    gates_x = (fgate(xc), igate(xc), zgate(x), ogate(x))   # the (i, f, z, o) input contributions
    h_seq = sLSTM(gates_x, R, bias)                    # zoo.kernels.slstm, [B, T, H, D]
    y = group_norm(h_seq)                              # normalised per head

Yes, the module called ``fgate`` feeds the input gate and ``igate`` the forget gate: that is how
``sLSTMLayer.forward`` wires them, and keeping it is what lets their weights load unchanged.
No pre-norm, residual, dropout or feed-forward here: the backbone adds those around every mixer.

State (``SLSTMState``, fp32): the short-conv window and the cell state ``(h, c, n, m)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from zoo.kernels.causal_conv1d import causal_conv1d_chunk, causal_conv1d_step
from zoo.kernels.slstm import slstm_chunk, slstm_step
from zoo.layers.base import Mixer

BiasInit = Literal["powerlaw_blockdependent", "small_init", "standard", "zeros"]
BIAS_INITS: tuple[str, ...] = ("powerlaw_blockdependent", "small_init", "standard", "zeros")
RecurrentInit = Literal["zeros", "standard"]
RECURRENT_INITS: tuple[str, ...] = ("zeros", "standard")

#: How our two cell tensors relate to NX-AI's. Ours are the layout of their ``cuda`` backend, the one
#: their released checkpoints were trained with; their ``vanilla`` backend stores the same parameters
#: permuted, so a vanilla state dict needs the permutation below (tests/layers/test_slstm_parity.py).
PARAMETER_LAYOUT: dict[str, str] = {
    "slstm_cell._recurrent_kernel_": "[H, D_in, 4*D_out] (gates i,f,z,o); vanilla: [H, 4*D_out, D_in]",
    "slstm_cell._bias_": "[H*4*D] flattened from [H, 4, D]; vanilla: flattened from [4, H, D]",
}


@dataclass
class SLSTMConfig:
    """NX-AI xlstm's ``sLSTMLayerConfig``; defaults are theirs."""

    num_heads: int = 4
    """Heads of the block-diagonal recurrence; must divide ``d_model``."""
    conv1d_kernel_size: int = 4
    """Width of the causal depthwise conv (+ SiLU) feeding the i and f gates; 0 disables it."""
    bias_init: BiasInit = "powerlaw_blockdependent"
    """Gate bias init: forget gate by a power law over channels (NX-AI default), linspace(3, 6)
    (``small_init``), uniform +-1/sqrt(d) (``standard``, all gates) or zeros; other gates start at 0."""
    recurrent_weight_init: RecurrentInit = "zeros"
    """Recurrent kernel init: zeros (NX-AI default) or uniform +-1/sqrt(d) (``standard``)."""
    group_norm_weight: bool = True
    """Learn a per-channel scale ``1 + weight`` in the output group norm."""
    block_idx: int = 0
    """Index of this layer in the stack; the power-law forget bias gets steeper deeper in the stack."""
    num_blocks: int = 1
    """Layers in the stack (for ``block_idx``)."""

    def __post_init__(self) -> None:
        if self.num_heads < 1:
            raise ValueError(f"num_heads={self.num_heads} must be >= 1")
        if self.conv1d_kernel_size < 0:
            raise ValueError(f"conv1d_kernel_size={self.conv1d_kernel_size} must be >= 0 (0 disables it)")
        if self.bias_init not in BIAS_INITS:
            raise ValueError(f"bias_init={self.bias_init!r} is not one of {BIAS_INITS}")
        if self.recurrent_weight_init not in RECURRENT_INITS:
            raise ValueError(
                f"recurrent_weight_init={self.recurrent_weight_init!r} is not one of {RECURRENT_INITS}"
            )
        if not 0 <= self.block_idx < max(self.num_blocks, 1):
            raise ValueError(f"block_idx={self.block_idx} must lie in [0, num_blocks={self.num_blocks})")


class SLSTMState(NamedTuple):
    """Streaming state of :class:`SLSTM` (fp32)."""

    conv: torch.Tensor
    """``[B, d, W-1]``: the last inputs of the short conv (``W-1 = 0`` without it)."""
    h: torch.Tensor
    """``[B, H, D]``: the last output of the cell (before the group norm)."""
    c: torch.Tensor
    """``[B, H, D]``: the cell state, scaled by ``exp(-m)``."""
    n: torch.Tensor
    """``[B, H, D]``: the normaliser, scaled by ``exp(-m)``; 0 marks an empty state."""
    m: torch.Tensor
    """``[B, H, D]``: the log-space stabiliser."""


class CausalConv1d(nn.Module):
    """Depthwise causal conv holding an ``nn.Conv1d`` as ``conv`` (NX-AI's module tree); run by the kernel."""

    def __init__(self, width: int, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv1d(width, width, kernel_size, groups=width, bias=True)

    def forward(
        self, x: torch.Tensor, state: torch.Tensor | None, activation: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, T, d]``, ``state [B, d, W-1]?`` -> ``(act(conv(x)) [B, T, d], state)``."""
        return causal_conv1d_chunk(x, self.conv.weight[:, 0], self.conv.bias, activation, state)

    def step(
        self, x_t: torch.Tensor, state: torch.Tensor, activation: str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x_t [B, d]`` -> ``(act(conv(x))_t [B, d], state)``."""
        return causal_conv1d_step(x_t, self.conv.weight[:, 0], self.conv.bias, activation, state)


class LinearHeadwise(nn.Module):
    """Per-head square projection (NX-AI's ``LinearHeadwiseExpand``, factor 1, no bias).

    ``weight [H, D_out, D_in]``: ``y[..., h, :] = weight[h] @ x[..., h, :]``; ``x [..., H*D] -> [..., H, D]``.
    """

    def __init__(self, width: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        head_dim = width // num_heads
        self.weight = nn.Parameter(torch.empty(num_heads, head_dim, head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unflatten(-1, (self.num_heads, -1))
        return torch.einsum("...hd,hod->...ho", x, self.weight)


class SLSTMCell(nn.Module):
    """The cell's parameters, in the layout of NX-AI's CUDA backend (see :data:`PARAMETER_LAYOUT`)."""

    def __init__(self, num_heads: int, head_dim: int):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        self._recurrent_kernel_ = nn.Parameter(torch.empty(num_heads, head_dim, 4 * head_dim))
        self._bias_ = nn.Parameter(torch.empty(num_heads * 4 * head_dim))

    @property
    def recurrent_kernel(self) -> torch.Tensor:
        """``R [H, D_in, 4, D_out]``, the kernel's layout (a view)."""
        return self._recurrent_kernel_.view(self.num_heads, self.head_dim, 4, self.head_dim)

    @property
    def bias(self) -> torch.Tensor:
        """``[4, H, D]``, the kernel's layout (a view)."""
        return self._bias_.view(self.num_heads, 4, self.head_dim).transpose(0, 1)


class MultiHeadLayerNorm(nn.Module):
    """LayerNorm of each head over its ``D`` channels, scale ``1 + weight [H*D]``, no bias (NX-AI's)."""

    def __init__(self, num_heads: int, head_dim: int, weight: bool, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.zeros(num_heads * head_dim)) if weight else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [..., H, D] -> [..., H*D]``."""
        y = F.layer_norm(x, x.shape[-1:], eps=self.eps)
        if self.weight is not None:
            y = y * (1 + self.weight).view(x.shape[-2:])
        return y.flatten(-2)


class SLSTM(Mixer):
    """NX-AI xlstm's ``sLSTMLayer`` as a :class:`Mixer` (see the module docstring for math and names)."""

    def __init__(self, d_model: int, config: SLSTMConfig | None = None):
        super().__init__()
        config = SLSTMConfig() if config is None else config
        if d_model % config.num_heads != 0:
            raise ValueError(f"num_heads={config.num_heads} must divide d_model={d_model}")
        self.d_model = d_model
        self.config = config
        self.num_heads = config.num_heads
        self.head_dim = d_model // config.num_heads
        if config.conv1d_kernel_size > 0:
            self.conv1d = CausalConv1d(d_model, config.conv1d_kernel_size)
        self.fgate = LinearHeadwise(d_model, config.num_heads)
        self.igate = LinearHeadwise(d_model, config.num_heads)
        self.zgate = LinearHeadwise(d_model, config.num_heads)
        self.ogate = LinearHeadwise(d_model, config.num_heads)
        self.slstm_cell = SLSTMCell(config.num_heads, self.head_dim)
        self.group_norm = MultiHeadLayerNorm(config.num_heads, self.head_dim, config.group_norm_weight)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """NX-AI's ``sLSTMLayer.reset_parameters`` (the conv keeps ``nn.Conv1d``'s default init)."""
        cfg, d, heads, hd = self.config, self.d_model, self.num_heads, self.head_dim
        if cfg.conv1d_kernel_size > 0:
            self.conv1d.conv.reset_parameters()
        for gate in (self.fgate, self.igate, self.zgate, self.ogate):
            nn.init.normal_(gate.weight, std=math.sqrt(2 / (5 * d)))
        if cfg.recurrent_weight_init == "zeros":
            nn.init.zeros_(self.slstm_cell._recurrent_kernel_)
        else:
            nn.init.uniform_(self.slstm_cell._recurrent_kernel_, -1 / math.sqrt(d), 1 / math.sqrt(d))
        bias = torch.zeros(heads, 4, hd)  # gate slot 1 is the forget gate of the cell
        if cfg.bias_init == "powerlaw_blockdependent":
            ratio = cfg.block_idx / (cfg.num_blocks - 1) if cfg.num_blocks > 1 else 0.0
            # max(., 1): a single channel would otherwise divide by zero
            x = torch.arange(hd) / max(hd - 1, 1)
            bias[:, 1] = 5.0 - 12.0 * x ** (0.3 + 1.3 * ratio)
        elif cfg.bias_init == "small_init":
            bias[:, 1] = torch.linspace(3.0, 6.0, hd)
        elif cfg.bias_init == "standard":
            bias.uniform_(-1 / math.sqrt(d), 1 / math.sqrt(d))
        self.slstm_cell._bias_.copy_(bias.flatten())
        if self.group_norm.weight is not None:
            nn.init.zeros_(self.group_norm.weight)

    def _gates(self, x: torch.Tensor, xc: torch.Tensor) -> torch.Tensor:
        """Input contributions ``[..., 4, H, D]`` of the gates (i, f, z, o); see the module docstring."""
        return torch.stack([self.fgate(xc), self.igate(xc), self.zgate(x), self.ogate(x)], dim=-3)

    def init_state(
        self, batch: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> SLSTMState:
        """Empty state: all zeros (``n = 0`` marks the cell empty). States are fp32 whatever ``dtype``."""
        device = self.fgate.weight.device if device is None else device
        width = max(self.config.conv1d_kernel_size - 1, 0)

        def cell() -> torch.Tensor:
            return torch.zeros(batch, self.num_heads, self.head_dim, device=device)

        conv = torch.zeros(batch, self.d_model, width, device=device)
        return SLSTMState(conv, cell(), cell(), cell(), cell())

    def _check_state(self, state: SLSTMState, batch: int) -> None:
        if not isinstance(state, SLSTMState):
            raise TypeError(
                f"SLSTM expects an SLSTMState (from init_state or forward), got {type(state).__name__}"
            )
        if state.h.shape[0] != batch:
            raise ValueError(f"the state is for batch {state.h.shape[0]}, the input has batch {batch}")

    def _forward(self, x: torch.Tensor, state: SLSTMState | None) -> tuple[torch.Tensor, SLSTMState]:
        batch = x.shape[0]
        if state is not None:
            self._check_state(state, batch)
        if self.config.conv1d_kernel_size > 0:
            xc, conv_state = self.conv1d(x, None if state is None else state.conv, "silu")
        else:
            xc, conv_state = x, x.new_zeros(batch, self.d_model, 0, dtype=torch.float32)
        cell = self.slstm_cell
        h_seq, (h, c, n, m) = slstm_chunk(
            self._gates(x, xc), cell.recurrent_kernel, cell.bias, None if state is None else tuple(state[1:])
        )
        y = self.group_norm(h_seq)  # [B, T, d]
        return y, SLSTMState(conv_state, h, c, n, m)

    def _step(self, x_t: torch.Tensor, state: SLSTMState) -> tuple[torch.Tensor, SLSTMState]:
        self._check_state(state, x_t.shape[0])
        if self.config.conv1d_kernel_size > 0:
            xc_t, conv_state = self.conv1d.step(x_t, state.conv, "silu")
        else:
            xc_t, conv_state = x_t, state.conv
        cell = self.slstm_cell
        h_t, (h, c, n, m) = slstm_step(
            self._gates(x_t, xc_t), cell.recurrent_kernel, cell.bias, tuple(state[1:])
        )
        return self.group_norm(h_t), SLSTMState(conv_state, h, c, n, m)
