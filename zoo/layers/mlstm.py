"""mLSTM mixer of xLSTM-7B (Beck et al. 2025, "xLSTM 7B", arXiv:2503.13427).

Follows the ``mlstm_layer`` of NX-AI's ``xlstm.xlstm_large`` ``mLSTMBlock``, which transformers ships as
``xLSTMLayer`` (inside ``xLSTMBlock``): the module tree and parameter names are theirs (``q``, ``k``,
``v``, ``ogate_preact``, ``igate_preact``, ``fgate_preact``, ``multihead_norm``, ``out_proj``; with
``weight_mode="fused"``: ``qkv_opreact``, ``ifgate_preact``), so their ``mlstm_layer`` state dicts load by
identity. This is NOT the older xLSTM v1 ``mLSTMBlock`` (up-projection, causal conv, learnable skip and
headwise q/k/v projections) used by the first xLSTM paper and by Bio-xLSTM; that block has other
parameters and another layout.

Tensor contract: ``x [B, T, d_model] -> y [B, T, d_model]``, with ``H = num_heads`` heads,
``K = qk_dim_factor * d_model / H`` and ``V = v_dim_factor * d_model / H``:

    q, k, v, o = q(x), k(x), v(x), ogate_preact(x)       # [B,T,H*K], [B,T,H*K], [B,T,H*V], [B,T,H*V]
    i, f = soft_cap(igate_preact(x)), soft_cap(fgate_preact(x))          # [B,T,H], cap * tanh(x / cap)
    h = mlstm(q, k, v, i, f)                             # zoo.kernels.mlstm, [B,T,H,V]
    y = out_proj(sigmoid(o) * multihead_norm(h))         # LayerNorm over each head's V channels

The mixer has no pre-norm, residual or feed-forward: the backbone adds pre-norm residual blocks and an
optional MLP (xLSTM-7B: RMSNorm pre-norm and a SwiGLU FFN with factor 2.667, multiple of 64).

State (``MLSTMState``, fp32): ``C [B,H,K,V]``, ``n [B,H,K]`` and ``m [B,H]``; xlstm_large and transformers
keep ``m`` as ``[B,H,1]``.

Initialisation follows transformers' ``xLSTMPreTrainedModel._init_weights``: small-init normal
(``std = sqrt(2 / (5 d_model))``) for the projections, zero gate weights, input-gate bias ``-10`` and
forget-gate biases ``linspace(3, 6)`` over heads. transformers uses Wang init for ``out_proj``, which needs
the number of blocks; here it gets small-init (the backbone knows the depth and may rescale it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from zoo.kernels.mlstm import mlstm_chunk, mlstm_step
from zoo.layers.base import Mixer


@dataclass
class MLSTMConfig:
    """mLSTM mixer settings; names and defaults follow transformers' ``xLSTMConfig`` (xLSTM-7B)."""

    num_heads: int = 8
    """Number of heads ``H``; must divide the q/k and v widths."""
    qk_dim_factor: float = 0.5
    """Query/key width ``H*K = int(qk_dim_factor * d_model)``."""
    v_dim_factor: float = 1.0
    """Value width ``H*V = int(v_dim_factor * d_model)``."""
    gate_soft_cap: float | None = 15.0
    """Gate pre-activations are soft-capped to ``cap * tanh(x / cap)``; None for no cap."""
    norm_eps: float = 1e-6
    """Epsilon of the per-head LayerNorm of the cell output."""
    norm_reduction_force_float32: bool = True
    """Compute the per-head LayerNorm statistics in fp32 under low-precision weights."""
    use_bias: bool = False
    """Biases in the q/k/v/output-gate/out projections and the norm (the gate projections always have one)."""
    weight_mode: Literal["single", "fused"] = "single"
    """``single``: separate projections (xLSTM-7B); ``fused``: ``qkv_opreact`` and ``ifgate_preact``."""
    chunk_size: int = 64
    """Chunk length of the chunkwise-parallel cell; any input length is accepted. On CPU 32-64 are fastest."""
    eps: float = 1e-6
    """Added to the cell's normaliser ``max(|q.n|, exp(-m))``."""

    def __post_init__(self) -> None:
        for name in ("num_heads", "chunk_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 1")
        for name in ("qk_dim_factor", "v_dim_factor"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}={getattr(self, name)} must be > 0")
        if self.weight_mode not in ("single", "fused"):
            raise ValueError(f"weight_mode={self.weight_mode!r} is not one of ('single', 'fused')")
        if self.gate_soft_cap is not None and self.gate_soft_cap <= 0:
            raise ValueError(f"gate_soft_cap={self.gate_soft_cap} must be > 0 (or None for no cap)")


class MLSTMState(NamedTuple):
    """Streaming state of :class:`MLSTM` (fp32)."""

    C: torch.Tensor
    """``[B, H, K, V]``: the matrix memory of every head."""
    n: torch.Tensor
    """``[B, H, K]``: the normaliser state."""
    m: torch.Tensor
    """``[B, H]``: the running max of the log gates (stabiliser); xlstm_large keeps ``[B, H, 1]``."""


def soft_cap(x: torch.Tensor, cap: float | None) -> torch.Tensor:
    """``cap * tanh(x / cap)`` (identity when ``cap`` is None)."""
    return x if cap is None else cap * torch.tanh(x / cap)


class MultiHeadLayerNorm(nn.Module):
    """LayerNorm over each head's ``V`` channels, then one weight (and bias) over all ``H*V``.

    As xlstm_large's ``MultiHeadLayerNorm``: ``x [B, T, H, V] -> [B, T, H*V]``.
    """

    def __init__(self, num_heads: int, head_dim: int, eps: float, use_bias: bool, force_float32_reductions: bool):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, head_dim
        self.eps = eps
        self.force_float32_reductions = force_float32_reductions
        self.weight = nn.Parameter(torch.ones(num_heads * head_dim))
        self.bias = nn.Parameter(torch.zeros(num_heads * head_dim)) if use_bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        if self.force_float32_reductions:
            x = x.float()
        # the fused kernel is 5x faster on CPU than mean / var / rsqrt written out (same biased variance)
        x = F.layer_norm(x, (self.head_dim,), eps=self.eps)
        x = x.to(dtype).flatten(-2) * self.weight
        return x if self.bias is None else x + self.bias


class MLSTM(Mixer):
    """xLSTM-7B mLSTM layer as a :class:`Mixer` (see the module docstring for the math and state)."""

    def __init__(self, d_model: int, config: MLSTMConfig | None = None):
        super().__init__()
        config = MLSTMConfig() if config is None else config
        self.d_model = d_model
        self.config = config
        self.qk_dim = int(d_model * config.qk_dim_factor)
        self.v_dim = int(d_model * config.v_dim_factor)
        H = config.num_heads
        if self.qk_dim % H or self.v_dim % H or self.qk_dim == 0 or self.v_dim == 0:
            raise ValueError(
                f"num_heads={H} must divide the q/k width int(qk_dim_factor * d_model) = {self.qk_dim} "
                f"and the v width int(v_dim_factor * d_model) = {self.v_dim} (both > 0)"
            )
        bias = config.use_bias
        if config.weight_mode == "single":
            self.q = nn.Linear(d_model, self.qk_dim, bias=bias)
            self.k = nn.Linear(d_model, self.qk_dim, bias=bias)
            self.v = nn.Linear(d_model, self.v_dim, bias=bias)
            self.ogate_preact = nn.Linear(d_model, self.v_dim, bias=bias)
            self.igate_preact = nn.Linear(d_model, H, bias=True)
            self.fgate_preact = nn.Linear(d_model, H, bias=True)
        else:
            self.qkv_opreact = nn.Linear(d_model, 2 * self.qk_dim + 2 * self.v_dim, bias=bias)
            self.ifgate_preact = nn.Linear(d_model, 2 * H, bias=True)
        self.multihead_norm = MultiHeadLayerNorm(
            H, self.v_dim // H, config.norm_eps, bias, config.norm_reduction_force_float32
        )
        self.out_proj = nn.Linear(self.v_dim, d_model, bias=bias)
        self._init_weights()

    @torch.no_grad()
    def _init_weights(self) -> None:
        std = math.sqrt(2 / (5 * self.d_model))
        H = self.config.num_heads
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=std)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        fgate_bias = torch.linspace(3.0, 6.0, H)
        if self.config.weight_mode == "single":
            nn.init.zeros_(self.igate_preact.weight)
            nn.init.zeros_(self.fgate_preact.weight)
            self.igate_preact.bias.fill_(-10.0)
            self.fgate_preact.bias.copy_(fgate_bias)
        else:
            nn.init.zeros_(self.ifgate_preact.weight)
            self.ifgate_preact.bias[:H] = -10.0
            self.ifgate_preact.bias[H:] = fgate_bias

    def _project(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``x [..., D]`` -> ``q, k [..., H, K]``, ``v [..., H, V]``, ``o [..., H*V]``, ``i, f [..., H]``."""
        H, cap = self.config.num_heads, self.config.gate_soft_cap
        if self.config.weight_mode == "single":
            q, k, v, o = self.q(x), self.k(x), self.v(x), self.ogate_preact(x)
            i, f = soft_cap(self.igate_preact(x), cap), soft_cap(self.fgate_preact(x), cap)
        else:
            q, k, v, o = self.qkv_opreact(x).split([self.qk_dim, self.qk_dim, self.v_dim, self.v_dim], dim=-1)
            i, f = soft_cap(self.ifgate_preact(x), cap).split([H, H], dim=-1)
        return q.unflatten(-1, (H, -1)), k.unflatten(-1, (H, -1)), v.unflatten(-1, (H, -1)), o, i, f

    def _output(self, h: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        return self.out_proj(torch.sigmoid(o) * self.multihead_norm(h))

    def _check_state(self, state: MLSTMState, batch: int) -> None:
        if not isinstance(state, MLSTMState):
            raise TypeError(f"MLSTM expects an MLSTMState (from init_state or forward), got {type(state).__name__}")
        H = self.config.num_heads
        K, V = self.qk_dim // H, self.v_dim // H
        for name, want in (("C", (batch, H, K, V)), ("n", (batch, H, K)), ("m", (batch, H))):
            got = tuple(getattr(state, name).shape)
            if got != want:
                raise ValueError(f"MLSTM state.{name} must have shape {list(want)}, got {got}")

    def _forward(self, x: torch.Tensor, state: MLSTMState | None) -> tuple[torch.Tensor, MLSTMState]:
        if state is not None:
            self._check_state(state, x.shape[0])
        q, k, v, o, i, f = self._project(x)
        h, final = mlstm_chunk(q, k, v, i, f, state, eps=self.config.eps, chunk_size=self.config.chunk_size)
        return self._output(h, o), MLSTMState(*final)

    def _step(self, x_t: torch.Tensor, state: MLSTMState) -> tuple[torch.Tensor, MLSTMState]:
        self._check_state(state, x_t.shape[0])
        q, k, v, o, i, f = self._project(x_t)
        h, new = mlstm_step(q, k, v, i, f, state, eps=self.config.eps)
        return self._output(h, o), MLSTMState(*new)

    def init_state(
        self, batch: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> MLSTMState:
        """Zero state (``m = 0`` too, as xlstm_large) for ``batch`` sequences; fp32 whatever ``dtype``."""
        device = self.out_proj.weight.device if device is None else device
        H = self.config.num_heads
        K, V = self.qk_dim // H, self.v_dim // H
        return MLSTMState(
            C=torch.zeros(batch, H, K, V, device=device),
            n=torch.zeros(batch, H, K, device=device),
            m=torch.zeros(batch, H, device=device),
        )
