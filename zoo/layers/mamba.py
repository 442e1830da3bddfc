"""Mamba-1 mixer (Gu & Dao 2023, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces",
arXiv:2312.00752).

Follows ``mamba_ssm.modules.mamba_simple.Mamba`` (and transformers' ``MambaMixer``, which mirrors it): the
module tree and parameter names are theirs (``in_proj``, ``conv1d``, ``x_proj``, ``dt_proj``, ``A_log``,
``D``, ``out_proj``), so an official checkpoint maps by identity; initialisation is mamba_ssm's.

Tensor contract: ``x [B, T, d_model] -> y [B, T, d_model]``, with ``d_inner = expand * d_model``,
``N = d_state`` and ``R = dt_rank``:

    x, z = in_proj(x)                                 # [B,T,d_inner] each
    x = silu(conv1d(x))                               # depthwise causal, width d_conv
    dt, B, C = x_proj(x)                              # [B,T,R], [B,T,N], [B,T,N]
    dt = dt_proj.weight @ dt                          # [B,T,d_inner]; the bias goes into the scan
    y = selective_scan(x, dt, -exp(A_log), B, C, D, z, delta_bias=dt_proj.bias, delta_softplus=True)
    y = out_proj(y)                                   # y * silu(z) happens inside the scan

The mixer has no norm and no residual (the backbone adds pre-norm residual blocks).

State (``MambaState``, fp32): ``conv [B, d_inner, d_conv-1]`` (the last inputs of the short
convolution; mamba_ssm and transformers keep ``d_conv`` of them, the oldest of which is never used)
and ``ssm [B, d_inner, N]`` (the same layout as mamba_ssm's ``ssm_state``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
from torch import nn

from zoo.kernels.causal_conv1d import causal_conv1d_chunk, causal_conv1d_step
from zoo.kernels.selective_scan import selective_scan_chunk, selective_scan_step
from zoo.layers.base import Mixer


@dataclass
class MambaConfig:
    """Mamba-1 mixer settings; names and defaults follow ``mamba_ssm.modules.mamba_simple.Mamba``."""

    d_state: int = 16
    """SSM state size ``N`` per channel."""
    d_conv: int = 4
    """Width of the depthwise causal convolution over ``x``."""
    expand: int = 2
    """``d_inner = expand * d_model``."""
    dt_rank: int | None = None
    """Rank ``R`` of the time-step projection; None = mamba_ssm's "auto", ``ceil(d_model / 16)``."""
    dt_min: float = 0.001
    """Smallest initial time step (``dt`` drawn log-uniformly in ``[dt_min, dt_max]``)."""
    dt_max: float = 0.1
    """Largest initial time step."""
    dt_init: Literal["random", "constant"] = "random"
    """Init of ``dt_proj.weight``: ``U[-s, s]`` or the constant ``s``, with ``s = dt_scale / sqrt(R)``."""
    dt_scale: float = 1.0
    """Scale of the ``dt_proj.weight`` init (``s`` above)."""
    dt_init_floor: float = 1e-4
    """Initial time steps are clamped to at least this."""
    conv_bias: bool = True
    """Bias in ``conv1d``."""
    bias: bool = False
    """Biases in ``in_proj`` and ``out_proj``."""
    chunk_size: int = 64
    """Chunk length of the chunked scan (any input length is accepted; memory grows with it). On CPU,
    forward alone is flat for 16..128 and training (forward + backward) favours >= 64."""

    def __post_init__(self) -> None:
        for name in ("d_state", "d_conv", "expand", "chunk_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if self.dt_rank is not None and self.dt_rank < 1:
            raise ValueError(f"dt_rank={self.dt_rank} must be >= 1, or None for ceil(d_model / 16)")
        if self.dt_init not in ("random", "constant"):
            raise ValueError(f"dt_init={self.dt_init!r} is not one of ('random', 'constant')")
        if not 0 < self.dt_min <= self.dt_max:
            raise ValueError(f"dt_min={self.dt_min}, dt_max={self.dt_max} must satisfy 0 < dt_min <= dt_max")


class MambaState(NamedTuple):
    """Streaming state of :class:`Mamba` (fp32)."""

    conv: torch.Tensor
    """``[B, d_inner, d_conv-1]``: the last inputs of the short convolution, oldest first."""
    ssm: torch.Tensor
    """``[B, d_inner, N]``: the SSM state of every channel."""


class Mamba(Mixer):
    """Mamba-1 (selective SSM) mixer as a :class:`Mixer` (see the module docstring for the math and state)."""

    def __init__(self, d_model: int, config: MambaConfig | None = None):
        super().__init__()
        config = MambaConfig() if config is None else config
        self.d_model = d_model
        self.config = config
        self.d_inner = config.expand * d_model
        self.dt_rank = math.ceil(d_model / 16) if config.dt_rank is None else config.dt_rank
        N = config.d_state

        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=config.bias)
        self.conv1d = nn.Conv1d(
            self.d_inner,
            self.d_inner,
            config.d_conv,
            groups=self.d_inner,
            padding=config.d_conv - 1,
            bias=config.conv_bias,
        )
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * N, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        self._init_dt_proj()
        # S4D-real init: A = -(1, 2, ..., N) in every channel
        A = torch.arange(1, N + 1, dtype=torch.float32).repeat(self.d_inner, 1)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(self.d_inner))
        # mamba_ssm's markers: no weight decay on A_log / D, and keep the dt bias through re-inits
        self.A_log._no_weight_decay = True
        self.D._no_weight_decay = True
        self.dt_proj.bias._no_reinit = True
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=config.bias)

    @torch.no_grad()
    def _init_dt_proj(self) -> None:
        """Weight ``U[-s, s]`` (or ``s``); bias = inverse softplus of log-uniform time steps (floored)."""
        c = self.config
        std = self.dt_rank**-0.5 * c.dt_scale
        if c.dt_init == "constant":
            self.dt_proj.weight.fill_(std)
        else:
            self.dt_proj.weight.uniform_(-std, std)
        log_dt = torch.rand(self.d_inner) * (math.log(c.dt_max) - math.log(c.dt_min)) + math.log(c.dt_min)
        dt = torch.exp(log_dt).clamp(min=c.dt_init_floor)
        # softplus^-1(dt) = dt + log(1 - exp(-dt)), written with expm1 for small dt
        self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))

    def _ssm_inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x [..., d_inner]`` -> ``(dt [..., d_inner] without bias, B [..., N], C [..., N])``."""
        N = self.config.d_state
        dt, Bm, Cm = self.x_proj(x).split([self.dt_rank, N, N], dim=-1)
        # the bias is added (in fp32) inside the scan, as mamba_ssm's delta_bias
        return dt @ self.dt_proj.weight.t(), Bm, Cm

    def _check_state(self, state: MambaState, batch: int) -> None:
        if not isinstance(state, MambaState):
            raise TypeError(f"Mamba expects a MambaState (from init_state or forward), got {type(state).__name__}")
        conv = (batch, self.d_inner, self.config.d_conv - 1)
        ssm = (batch, self.d_inner, self.config.d_state)
        if tuple(state.conv.shape) != conv:
            raise ValueError(
                f"Mamba state.conv must be [B, d_inner, W-1] = {list(conv)}, got {tuple(state.conv.shape)}"
            )
        if tuple(state.ssm.shape) != ssm:
            raise ValueError(f"Mamba state.ssm must be [B, d_inner, N] = {list(ssm)}, got {tuple(state.ssm.shape)}")

    def _forward(self, x: torch.Tensor, state: MambaState | None) -> tuple[torch.Tensor, MambaState]:
        if state is not None:
            self._check_state(state, x.shape[0])
        xs, z = self.in_proj(x).chunk(2, dim=-1)  # [B,T,d_inner] each
        xs, conv_state = causal_conv1d_chunk(
            xs, self.conv1d.weight.squeeze(1), self.conv1d.bias, "silu", None if state is None else state.conv
        )
        dt, Bm, Cm = self._ssm_inputs(xs)
        y, ssm_state = selective_scan_chunk(
            xs,
            dt,
            -torch.exp(self.A_log.float()),
            Bm,
            Cm,
            self.D,
            z,
            self.dt_proj.bias,
            delta_softplus=True,
            initial_state=None if state is None else state.ssm,
            chunk_size=self.config.chunk_size,
        )
        return self.out_proj(y), MambaState(conv_state, ssm_state)

    def _step(self, x_t: torch.Tensor, state: MambaState) -> tuple[torch.Tensor, MambaState]:
        self._check_state(state, x_t.shape[0])
        xs, z = self.in_proj(x_t).chunk(2, dim=-1)  # [B,d_inner] each
        xs, conv_state = causal_conv1d_step(xs, self.conv1d.weight.squeeze(1), self.conv1d.bias, "silu", state.conv)
        dt, Bm, Cm = self._ssm_inputs(xs)
        y, ssm_state = selective_scan_step(
            xs, dt, -torch.exp(self.A_log.float()), Bm, Cm, self.D, z, self.dt_proj.bias, True, state.ssm
        )
        return self.out_proj(y), MambaState(conv_state, ssm_state)

    def init_state(
        self, batch: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> MambaState:
        """Zero state for ``batch`` sequences. States are fp32 whatever ``dtype`` says."""
        device = self.in_proj.weight.device if device is None else device
        c = self.config
        return MambaState(
            conv=torch.zeros(batch, self.d_inner, c.d_conv - 1, device=device),
            ssm=torch.zeros(batch, self.d_inner, c.d_state, device=device),
        )
