"""Multi-head softmax attention (causal or bidirectional) with GQA and rotary embeddings, on SDPA.

Parameter names follow mamba_ssm's ``MHA`` (``mamba_ssm/modules/mha.py``), the attention layer of hybrid
Mamba-2 + attention models: one fused ``in_proj`` producing ``[q (H Dh) | k (Hkv Dh) | v (Hkv Dh)]`` and
``out_proj``, so such checkpoints (HybriDNA-style) map by identity. Rotary embeddings are the
non-interleaved (GPT-NeoX / flash-attn default) form on the first ``rotary_dim`` channels of each head,
computed on the fly (no buffer, as ``MHA``'s non-persistent ``inv_freq``). ``MHA``'s optional
``d_conv`` and ``mlp_dim`` extras are not supported.

Tensor contract: ``x [B, T, d_model] -> y [B, T, d_model]``.

State (``KVCache``): the keys and values of every token seen, ``[B, Hkv, S, Dh]``. Unlike the recurrent
mixers, attention is not constant-memory: the cache grows by one key and one value per token and per
layer. ``forward(x, cache)`` attends to the cache plus causally within ``x`` (rotary positions start at
the number of tokens seen); ``step`` appends one token. A bidirectional layer (``causal=False``) sees
the future: it has no ``step`` and cannot continue from a non-empty cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from zoo.layers.base import Mixer


@dataclass
class AttentionConfig:
    """Softmax attention settings (mamba_ssm ``MHA`` argument in brackets)."""

    num_heads: int = 8
    """Query heads (``num_heads``)."""
    num_kv_heads: int | None = None
    """Key/value heads for grouped-query attention; None = ``num_heads`` (``num_heads_kv``)."""
    head_dim: int | None = None
    """Channels per head; None = ``d_model // num_heads`` (``head_dim``)."""
    causal: bool = True
    """False: bidirectional (every token sees the whole sequence; no step, no streaming)."""
    rotary: bool = True
    """Rotary position embeddings on queries and keys."""
    rope_theta: float = 10000.0
    """Rotary base (``rotary_emb_base``)."""
    rotary_dim: int | None = None
    """Rotated channels per head, even; None = ``head_dim`` (``rotary_emb_dim``)."""
    qkv_bias: bool = True
    """Bias of ``in_proj`` (``qkv_proj_bias``)."""
    out_bias: bool = True
    """Bias of ``out_proj`` (``out_proj_bias``)."""
    softmax_scale: float | None = None
    """Scale of ``q k^T``; None = ``1 / sqrt(head_dim)``."""


class KVCache(NamedTuple):
    """Keys and values of the tokens seen so far; grows with ``T`` (attention is not constant memory)."""

    k: torch.Tensor
    """``[B, Hkv, S, Dh]``: rotated keys."""
    v: torch.Tensor
    """``[B, Hkv, S, Dh]``: values."""
    seen: torch.Tensor
    """``[]`` int64: tokens seen (the rotary position of the next token)."""


def apply_rotary(x: torch.Tensor, positions: torch.Tensor, rotary_dim: int, theta: float) -> torch.Tensor:
    """Rotate the first ``rotary_dim`` channels of ``x [B, H, T, Dh]`` by ``positions [T]`` (NeoX halves)."""
    exponents = torch.arange(0, rotary_dim, 2, device=x.device, dtype=torch.float32) / rotary_dim
    inv_freq = 1.0 / theta**exponents
    angles = positions.float()[:, None] * inv_freq  # [T, rotary_dim / 2]
    cos, sin = angles.cos(), angles.sin()
    rot = x[..., :rotary_dim].float()
    x1, x2 = rot.chunk(2, dim=-1)
    rotated = torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).to(x.dtype)
    return torch.cat([rotated, x[..., rotary_dim:]], dim=-1) if rotary_dim < x.shape[-1] else rotated


class Attention(Mixer):
    """Multi-head attention mixer (see the module docstring for layout and cache)."""

    def __init__(self, d_model: int, config: AttentionConfig):
        super().__init__()
        self.d_model = d_model
        self.config = config
        self.causal = config.causal
        self.num_heads = config.num_heads
        self.num_kv_heads = config.num_kv_heads if config.num_kv_heads is not None else config.num_heads
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_heads={self.num_heads} must be a multiple of num_kv_heads={self.num_kv_heads}"
            )
        if config.head_dim is None and d_model % self.num_heads:
            raise ValueError(
                f"d_model={d_model} is not divisible by num_heads={self.num_heads}; set head_dim"
            )
        self.head_dim = config.head_dim if config.head_dim is not None else d_model // self.num_heads
        self.rotary_dim = config.rotary_dim if config.rotary_dim is not None else self.head_dim
        if config.rotary and (self.rotary_dim % 2 or not 0 < self.rotary_dim <= self.head_dim):
            raise ValueError(
                f"rotary_dim={self.rotary_dim} must be even and in (0, head_dim={self.head_dim}]"
            )
        qkv_dim = self.head_dim * (self.num_heads + 2 * self.num_kv_heads)
        self.in_proj = nn.Linear(d_model, qkv_dim, bias=config.qkv_bias)
        self.out_proj = nn.Linear(self.head_dim * self.num_heads, d_model, bias=config.out_bias)

    def _forward(self, x: torch.Tensor, state: KVCache | None) -> tuple[torch.Tensor, KVCache]:
        B, T, _ = x.shape
        H, Hkv, Dh = self.num_heads, self.num_kv_heads, self.head_dim
        if state is not None:
            self._check_state(state, B)
        cached = 0 if state is None else state.k.shape[2]
        if cached and not self.causal:
            raise ValueError("bidirectional attention cannot continue from a cache: pass the whole sequence")
        seen = torch.zeros((), dtype=torch.long, device=x.device) if state is None else state.seen
        q, k, v = self.project_qkv(x, seen)
        if cached:
            k = torch.cat([state.k.to(k.dtype), k], dim=2)
            v = torch.cat([state.v.to(v.dtype), v], dim=2)
        new_state = KVCache(k, v, seen + T)
        if Hkv != H:
            # query head h reads kv head h // (H / Hkv), as repeat_interleave in mamba_ssm
            k = k.repeat_interleave(H // Hkv, dim=1)
            v = v.repeat_interleave(H // Hkv, dim=1)
        mask, is_causal = None, self.causal and cached == 0 and T > 1
        if self.causal and cached and T > 1:
            # query i (absolute position cached + i) sees keys 0..cached + i
            keys = torch.arange(cached + T, device=x.device)
            mask = keys <= keys[cached:, None]
        o = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=is_causal, scale=self.config.softmax_scale
        )
        y = self.out_proj(o.transpose(1, 2).reshape(B, T, H * Dh))
        return y, new_state

    def project_qkv(
        self, x: torch.Tensor, first_position: torch.Tensor | int = 0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x [B, T, d_model]`` -> ``q [B, H, T, Dh]``, ``k, v [B, Hkv, T, Dh]``; q and k rotated for the
        positions ``first_position + 0..T-1`` (an int or a ``[]`` tensor)."""
        B, T, _ = x.shape
        H, Hkv, Dh = self.num_heads, self.num_kv_heads, self.head_dim
        q, k, v = self.in_proj(x).split([H * Dh, Hkv * Dh, Hkv * Dh], dim=-1)
        q = q.view(B, T, H, Dh).transpose(1, 2)  # [B, H, T, Dh]
        k = k.view(B, T, Hkv, Dh).transpose(1, 2)  # [B, Hkv, T, Dh]
        v = v.view(B, T, Hkv, Dh).transpose(1, 2)
        if self.config.rotary:
            # positions stay on the device: no host sync per decode step
            positions = first_position + torch.arange(T, device=x.device)
            q = apply_rotary(q, positions, self.rotary_dim, self.config.rope_theta)
            k = apply_rotary(k, positions, self.rotary_dim, self.config.rope_theta)
        return q, k, v

    def _step(self, x_t: torch.Tensor, state: KVCache) -> tuple[torch.Tensor, KVCache]:
        y, state = self._forward(x_t.unsqueeze(1), state)
        return y.squeeze(1), state

    def _check_state(self, state: KVCache, batch: int) -> None:
        if not isinstance(state, KVCache):
            raise TypeError(
                f"Attention expects a KVCache (from init_state / forward), got {type(state).__name__}"
            )
        want = (batch, self.num_kv_heads, None, self.head_dim)
        for name, t in (("k", state.k), ("v", state.v)):
            if t.ndim != 4 or any(w is not None and s != w for s, w in zip(t.shape, want)):
                raise ValueError(
                    f"Attention cache.{name} must be [{batch}, {self.num_kv_heads}, S, {self.head_dim}], "
                    f"got {tuple(t.shape)}"
                )

    def init_state(
        self, batch: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> KVCache:
        """An empty cache (``S = 0``) in ``dtype`` (default: the weights' dtype)."""
        weight = self.in_proj.weight
        device = weight.device if device is None else device
        dtype = weight.dtype if dtype is None else dtype
        empty = torch.zeros(batch, self.num_kv_heads, 0, self.head_dim, device=device, dtype=dtype)
        return KVCache(empty, empty.clone(), torch.zeros((), dtype=torch.long, device=device))
