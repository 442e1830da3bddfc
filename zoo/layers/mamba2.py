"""Mamba-2 mixer (Dao & Gu 2024, "Transformers are SSMs", arXiv:2405.21060).

Follows ``mamba_ssm.modules.mamba2.Mamba2`` (and transformers' ``Mamba2Mixer``, which mirrors it): the
module tree and parameter names are theirs (``in_proj``, ``conv1d``, ``dt_bias``, ``A_log``, ``D``,
``norm.weight``, ``out_proj``), so an official checkpoint maps by identity; initialisation is
mamba_ssm's. Not supported: mamba_ssm's ``d_ssm < d_inner`` (gated-MLP channels), ``D_has_hdim`` and
``rmsnorm=False``.

Tensor contract: ``x [B, T, d_model] -> y [B, T, d_model]``, with ``d_inner = expand * d_model``,
``H = d_inner / headdim`` heads of size ``P = headdim``, ``G = ngroups`` groups of ``B``/``C`` of size
``N = d_state`` and ``conv_dim = d_inner + 2 G N``:

    z, xBC, dt = in_proj(x)                          # [B,T,d_inner], [B,T,conv_dim], [B,T,H]
    x, B, C = silu(conv1d(xBC))                      # [B,T,H,P], [B,T,G,N], [B,T,G,N]
    dt = clamp(softplus(dt + dt_bias), *dt_limit);  A = -exp(A_log)
    y = ssd(x, dt, A, B, C, D)                       # zoo.kernels.ssd
    y = out_proj(norm(y, gate=z))                    # gated RMSNorm, normalised per group

The mixer has no pre-norm and no residual (the backbone adds them).

State (``Mamba2State``, fp32): ``conv [B, conv_dim, d_conv-1]`` (the last inputs of the short
convolution; mamba_ssm keeps ``d_conv`` of them) and ``ssm [B, H, N, P]`` (mamba_ssm and transformers
store the transpose, ``[B, H, P, N]``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from zoo.kernels.causal_conv1d import causal_conv1d_chunk, causal_conv1d_step
from zoo.kernels.ssd import ssd_chunk, ssd_step
from zoo.layers.base import Mixer


@dataclass
class Mamba2Config:
    """Mamba-2 mixer settings; names and defaults follow ``mamba_ssm.modules.mamba2.Mamba2``."""

    d_state: int = 128
    """SSM state size ``N`` per group (64 or 128 in the released models)."""
    d_conv: int = 4
    """Width of the depthwise causal convolution over ``x``, ``B`` and ``C``."""
    expand: int = 2
    """``d_inner = expand * d_model``."""
    headdim: int = 64
    """Head size ``P``; ``d_inner`` must be a multiple of it."""
    ngroups: int = 1
    """Groups of ``B``/``C`` (shared by ``H / ngroups`` heads each) and of the gated RMSNorm."""
    chunk_size: int = 64
    """Chunk length of the chunked SSD form; any input length is accepted. 64 is fastest on CPU."""
    A_init_range: tuple[float, float] = (1.0, 16.0)
    """``-A`` is drawn uniformly from this range at init (``A_log = log(-A)``)."""
    dt_min: float = 0.001
    """Smallest initial time step (``dt`` drawn log-uniformly in ``[dt_min, dt_max]``)."""
    dt_max: float = 0.1
    """Largest initial time step."""
    dt_init_floor: float = 1e-4
    """Initial time steps are clamped to at least this."""
    dt_limit: tuple[float, float] = (0.0, float("inf"))
    """``dt`` is clamped to this range after the softplus (mamba_ssm's default: no clamp)."""
    conv_bias: bool = True
    """Bias in ``conv1d``."""
    bias: bool = False
    """Biases in ``in_proj`` and ``out_proj``."""
    norm_before_gate: bool = False
    """Gated RMSNorm order: False = ``norm(y * silu(z))`` (Mamba-2), True = ``norm(y) * silu(z)``."""
    norm_eps: float = 1e-5
    """Epsilon of the gated RMSNorm."""

    def __post_init__(self) -> None:
        for name in ("d_state", "d_conv", "expand", "headdim", "ngroups", "chunk_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        if not 0 < self.A_init_range[0] <= self.A_init_range[1]:
            raise ValueError(f"A_init_range={self.A_init_range} must satisfy 0 < low <= high")
        if not 0 < self.dt_min <= self.dt_max:
            raise ValueError(f"dt_min={self.dt_min}, dt_max={self.dt_max} must satisfy 0 < dt_min <= dt_max")
        if not 0 <= self.dt_limit[0] < self.dt_limit[1]:
            raise ValueError(f"dt_limit={self.dt_limit} must satisfy 0 <= low < high")


#: Inputs longer than this run through the layer piece by piece, the state carried between pieces.
SEGMENT_TOKENS = 1024


class Mamba2State(NamedTuple):
    """Streaming state of :class:`Mamba2` (fp32)."""

    conv: torch.Tensor
    """``[B, conv_dim, d_conv-1]``: the last inputs of the short convolution, oldest first."""
    ssm: torch.Tensor
    """``[B, H, N, P]``: the SSM state of every head (zoo.kernels layout ``[B,H,K,V]``)."""


class RMSNormGated(nn.Module):
    """RMSNorm gated by ``silu(z)``, normalising each of ``width / group_size`` groups on its own.

    As mamba_ssm's ``RMSNormGated`` (and transformers' ``MambaRMSNormGated``): computed in fp32.
    ``x, z [..., width]`` -> ``[..., width]``.
    """

    def __init__(self, width: int, group_size: int, eps: float, norm_before_gate: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.group_size = group_size
        self.eps = eps
        self.norm_before_gate = norm_before_gate

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        h, gate = x.float(), F.silu(z.float())
        if not self.norm_before_gate:
            h = h * gate
        groups = h.unflatten(-1, (-1, self.group_size))
        h = (groups * torch.rsqrt(groups.pow(2).mean(-1, keepdim=True) + self.eps)).flatten(-2)
        h = h * self.weight.float()
        if self.norm_before_gate:
            h = h * gate
        return h.to(dtype)


class Mamba2(Mixer):
    """Mamba-2 (SSD) mixer as a :class:`Mixer` (see the module docstring for the math and state)."""

    def __init__(self, d_model: int, config: Mamba2Config | None = None):
        super().__init__()
        config = Mamba2Config() if config is None else config
        self.d_model = d_model
        self.config = config
        self.d_inner = config.expand * d_model
        if self.d_inner % config.headdim:
            raise ValueError(
                f"d_inner = expand * d_model = {self.d_inner} is not a multiple of headdim={config.headdim}"
            )
        self.nheads = self.d_inner // config.headdim
        if self.nheads % config.ngroups:
            raise ValueError(f"ngroups={config.ngroups} must divide the number of heads {self.nheads}")
        self.conv_dim = self.d_inner + 2 * config.ngroups * config.d_state

        self.in_proj = nn.Linear(d_model, self.d_inner + self.conv_dim + self.nheads, bias=config.bias)
        self.conv1d = nn.Conv1d(
            self.conv_dim,
            self.conv_dim,
            config.d_conv,
            groups=self.conv_dim,
            padding=config.d_conv - 1,
            bias=config.conv_bias,
        )
        self.dt_bias = nn.Parameter(self._init_dt_bias())
        A = torch.empty(self.nheads).uniform_(*config.A_init_range)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(self.nheads))
        # mamba_ssm's marker for optimizers that exclude these from weight decay
        for p in (self.dt_bias, self.A_log, self.D):
            p._no_weight_decay = True
        self.norm = RMSNormGated(
            self.d_inner, self.d_inner // config.ngroups, config.norm_eps, config.norm_before_gate
        )
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=config.bias)

    def _init_dt_bias(self) -> torch.Tensor:
        """Inverse softplus of time steps drawn log-uniformly in ``[dt_min, dt_max]`` (floored)."""
        c = self.config
        log_dt = torch.rand(self.nheads) * (math.log(c.dt_max) - math.log(c.dt_min)) + math.log(c.dt_min)
        dt = torch.exp(log_dt).clamp(min=c.dt_init_floor)
        return dt + torch.log(-torch.expm1(-dt))

    def _split_proj(self, zxbcdt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return zxbcdt.split([self.d_inner, self.conv_dim, self.nheads], dim=-1)

    def _split_conv(self, xbc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        gn = self.config.ngroups * self.config.d_state
        return xbc.split([self.d_inner, gn, gn], dim=-1)

    def _dt(self, dt: torch.Tensor) -> torch.Tensor:
        """``clamp(softplus(dt + dt_bias), *dt_limit)`` in fp32."""
        dt = F.softplus(dt.float() + self.dt_bias.float())
        low, high = self.config.dt_limit
        if (low, high) != (0.0, float("inf")):
            dt = dt.clamp(low, high)
        return dt

    def _check_state(self, state: Mamba2State, batch: int) -> None:
        if not isinstance(state, Mamba2State):
            raise TypeError(
                f"Mamba2 expects a Mamba2State (from init_state or forward), got {type(state).__name__}"
            )
        conv = (batch, self.conv_dim, self.config.d_conv - 1)
        ssm = (batch, self.nheads, self.config.d_state, self.config.headdim)
        if tuple(state.conv.shape) != conv:
            raise ValueError(f"Mamba2 state.conv must be {list(conv)}, got {tuple(state.conv.shape)}")
        if tuple(state.ssm.shape) != ssm:
            raise ValueError(
                f"Mamba2 state.ssm must be [B, H, N, P] = {list(ssm)}, got {tuple(state.ssm.shape)}"
            )

    def _forward(self, x: torch.Tensor, state: Mamba2State | None) -> tuple[torch.Tensor, Mamba2State]:
        B, T, _ = x.shape
        if state is not None:
            self._check_state(state, B)
        if T <= SEGMENT_TOKENS:
            return self._forward_piece(x, state)
        # Exact (the state carries everything) and faster on CPU: each piece's intermediates, up to
        # ~5 d_inner floats per token, stay cache-sized instead of being paged in afresh.
        ys = []
        for lo in range(0, T, SEGMENT_TOKENS):
            y, state = self._forward_piece(x[:, lo : lo + SEGMENT_TOKENS], state)
            ys.append(y)
        return torch.cat(ys, dim=1), state

    def _forward_piece(self, x: torch.Tensor, state: Mamba2State | None) -> tuple[torch.Tensor, Mamba2State]:
        c = self.config
        z, xbc, dt = self._split_proj(self.in_proj(x))
        xbc, conv_state = causal_conv1d_chunk(
            xbc,
            self.conv1d.weight.squeeze(1),
            self.conv1d.bias,
            "silu",
            None if state is None else state.conv,
        )
        xs, Bm, Cm = self._split_conv(xbc)
        y, ssm_state = ssd_chunk(
            xs.unflatten(-1, (self.nheads, c.headdim)),
            self._dt(dt),
            -torch.exp(self.A_log.float()),
            Bm.unflatten(-1, (c.ngroups, c.d_state)),
            Cm.unflatten(-1, (c.ngroups, c.d_state)),
            self.D,
            None if state is None else state.ssm,
            chunk_size=c.chunk_size,
        )
        y = self.out_proj(self.norm(y.flatten(-2), z))
        return y, Mamba2State(conv_state, ssm_state)

    def _step(self, x_t: torch.Tensor, state: Mamba2State) -> tuple[torch.Tensor, Mamba2State]:
        c = self.config
        self._check_state(state, x_t.shape[0])
        z, xbc, dt = self._split_proj(self.in_proj(x_t))
        xbc, conv_state = causal_conv1d_step(
            xbc, self.conv1d.weight.squeeze(1), self.conv1d.bias, "silu", state.conv
        )
        xs, Bm, Cm = self._split_conv(xbc)
        y, ssm_state = ssd_step(
            xs.unflatten(-1, (self.nheads, c.headdim)),
            self._dt(dt),
            -torch.exp(self.A_log.float()),
            Bm.unflatten(-1, (c.ngroups, c.d_state)),
            Cm.unflatten(-1, (c.ngroups, c.d_state)),
            self.D,
            state.ssm,
        )
        y_t = self.out_proj(self.norm(y.flatten(-2), z))
        return y_t, Mamba2State(conv_state, ssm_state)

    def init_state(
        self, batch: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> Mamba2State:
        """Zero state for ``batch`` sequences. States are fp32 whatever ``dtype`` says."""
        device = self.in_proj.weight.device if device is None else device
        c = self.config
        return Mamba2State(
            conv=torch.zeros(batch, self.conv_dim, c.d_conv - 1, device=device),
            ssm=torch.zeros(batch, self.nheads, c.d_state, c.headdim, device=device),
        )
