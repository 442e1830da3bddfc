"""Hyena operator as in HyenaDNA (Nguyen et al. 2023; Poli et al. 2023, arXiv:2302.10866).

Follows ``HyenaOperator`` / ``HyenaFilter`` of LongSafari's ``standalone_hyenadna.py`` and the
``*-seqlen-hf`` modeling code: the module tree and the parameter / buffer names are theirs (``in_proj``,
``short_filter``, ``filter_fn.{bias, pos_emb.{z,t}, implicit_filter.{i}, modulation.deltas}``,
``out_proj``), so an official checkpoint maps by identity.

Tensor contract: ``x [B, T, d_model] -> y [B, T, d_model]``. For ``order=2``:

    x0, x1, v = short_conv(in_proj(x))              # each [B, T, d]
    y = out_proj(x0 * long_conv(v * x1, k, bias))   # k [d, T] from the implicit filter

and for higher orders the gate / long-conv pair repeats with ``x_{order-1}, ..., x1``. The long filter
``k[:, j]`` is an MLP of positional features of ``j`` times an exponential decay, defined for
``j < l_max``; it does not depend on where a token sits, so a sequence can be continued exactly.

State (``HyenaState``): the short-conv window and, for each of the ``order-1`` long convolutions, its
last inputs, kept like a KV cache: it grows with the tokens seen and stops at ``l_max - 1`` (the filter
has ``l_max`` taps). A state therefore costs up to ``(order-1) * d * (l_max-1)`` floats per sequence.
Past ``l_max`` tokens a continued sequence keeps the last ``l_max`` inputs in view (a sliding window;
the official model truncates instead). One ``forward`` call takes at most ``l_max`` tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from zoo.kernels.causal_conv1d import causal_conv1d_chunk, causal_conv1d_step
from zoo.kernels.long_conv import long_conv_chunk, long_conv_step
from zoo.layers.base import Mixer


@dataclass
class HyenaConfig:
    """HyenaDNA's Hyena operator (``HyenaOperator`` + ``HyenaFilter``); defaults are HyenaDNA's."""

    order: int = 2
    """Depth of the Hyena recurrence: ``order + 1`` projections, ``order - 1`` long convolutions."""
    filter_order: int = 64
    """Width of the implicit filter MLP."""
    emb_dim: int = 5
    """Positional features fed to the filter MLP: time plus (emb_dim-1)/2 sine/cosine bands; odd, >= 3."""
    short_filter_order: int = 3
    """Width of the depthwise causal short convolution after ``in_proj``."""
    l_max: int = 1024
    """Filter length = the longest input one forward accepts (HF ``max_seq_len``)."""
    num_inner_mlps: int = 2
    """Hidden ``Linear -> Sin`` layers of the filter MLP after the first one."""
    modulate: bool = True
    """Multiply the filter by an exponential decay (``ExponentialModulation``)."""
    w: float = 1.0
    """Initial frequency of the filter MLP's sine activations."""
    train_freq: bool = True
    """Learn the sine frequencies (a parameter ``freq``); else a fixed buffer."""
    fast_decay_pct: float = 0.3
    """Fraction of the filter after which the fastest channel has decayed to ``target``."""
    slow_decay_pct: float = 1.5
    """Same for the slowest channel."""
    target: float = 1e-2
    """Decay level reached at ``fast_decay_pct`` / ``slow_decay_pct``."""
    shift: float = 0.05
    """Constant added to the decay window, so no tap is fully switched off."""
    bias: bool = True
    """The long convolutions' skip term ``u * filter_fn.bias`` (HyenaDNA always has it)."""
    dropout: float = 0.0
    """Dropout on each gated input of a long convolution (training only)."""

    def __post_init__(self) -> None:
        if self.order < 2:
            raise ValueError(f"order={self.order}: Hyena needs order >= 2 (at least one long convolution)")
        if self.emb_dim < 3 or self.emb_dim % 2 == 0:
            raise ValueError(f"emb_dim={self.emb_dim} must be odd and >= 3 (time, then sine/cosine pairs)")
        if self.short_filter_order < 1:
            raise ValueError(f"short_filter_order={self.short_filter_order} must be >= 1")
        if self.l_max < 1:
            raise ValueError(f"l_max={self.l_max} must be >= 1")


class HyenaState(NamedTuple):
    """Streaming state of :class:`Hyena` (fp32)."""

    conv: torch.Tensor
    """``[B, (order+1) d, W-1]``: the last inputs of the short convolution."""
    history: torch.Tensor
    """``[B, order-1, d, S]``: the last ``S <= l_max - 1`` inputs of each long convolution, oldest first."""


class Sin(nn.Module):
    """``sin(freq * x)`` with a per-feature frequency ``freq [1, dim]``."""

    def __init__(self, dim: int, w: float, train_freq: bool):
        super().__init__()
        freq = w * torch.ones(1, dim)
        if train_freq:
            self.freq = nn.Parameter(freq)
        else:
            self.register_buffer("freq", freq, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.freq * x)


class PositionalEmbedding(nn.Module):
    """Features of tap ``j < seq_len``: ``z [1, seq_len, emb_dim]`` (learned) and time ``t [1, seq_len, 1]``.

    ``z = [t, cos(f w), -sin(f w)]`` with ``t = j / (seq_len-1)``, ``w = 2 pi j / seq_len`` and
    ``(emb_dim-1)/2`` frequencies ``f`` from 1e-4 to ``bands-1``, as HyenaDNA.
    """

    def __init__(self, emb_dim: int, seq_len: int):
        super().__init__()
        self.seq_len = seq_len
        bands = (emb_dim - 1) // 2
        t = torch.linspace(0, 1, seq_len)[None, :, None]
        w = 2 * math.pi * torch.linspace(0, seq_len - 1, seq_len)[None, :, None] / seq_len
        f = torch.linspace(1e-4, bands - 1, bands)[None, None]
        self.z = nn.Parameter(torch.cat([t, torch.cos(f * w), -torch.sin(f * w)], dim=-1))
        self.register_buffer("t", t)

    def forward(self, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z [1, length, emb_dim], t [1, length, 1])``."""
        return self.z[:, :length], self.t[:, :length]


class ExponentialModulation(nn.Module):
    """Decay window ``h * (exp(-t |deltas|) + shift)``; ``deltas [1, 1, channels]`` spread the decay rates."""

    def __init__(self, channels: int, config: HyenaConfig):
        super().__init__()
        self.modulate = config.modulate
        self.shift = config.shift
        max_decay = math.log(config.target) / config.fast_decay_pct
        min_decay = math.log(config.target) / config.slow_decay_pct
        self.register_buffer("deltas", torch.linspace(min_decay, max_decay, channels)[None, None])

    def forward(self, t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        if not self.modulate:
            return h
        return h * (torch.exp(-t * self.deltas.abs()) + self.shift)


class HyenaFilter(nn.Module):
    """Implicit long filter: ``MLP(z_j) * decay(t_j)`` for taps ``j < l_max``, plus the skip ``bias``."""

    def __init__(self, channels: int, config: HyenaConfig):
        super().__init__()
        self.channels = channels
        self.register_parameter("bias", nn.Parameter(torch.randn(channels)) if config.bias else None)
        self.pos_emb = PositionalEmbedding(config.emb_dim, config.l_max)
        # one Sin module shared by every layer, as HyenaDNA: its freq appears under each index
        act = Sin(config.filter_order, config.w, config.train_freq)
        layers: list[nn.Module] = [nn.Linear(config.emb_dim, config.filter_order), act]
        for _ in range(config.num_inner_mlps):
            layers += [nn.Linear(config.filter_order, config.filter_order), act]
        layers.append(nn.Linear(config.filter_order, channels, bias=False))
        self.implicit_filter = nn.Sequential(*layers)
        self.modulation = ExponentialModulation(channels, config)

    def filter(self, length: int) -> torch.Tensor:
        """Taps ``0..length-1``: ``[length, channels]`` in the parameters' dtype."""
        z, t = self.pos_emb(length)
        h = self.implicit_filter(z.to(self.implicit_filter[0].weight.dtype))
        return self.modulation(t, h)[0]


def _left_pad(history: torch.Tensor, length: int) -> torch.Tensor:
    """``history [..., S]`` with zeros in front up to ``length >= S`` (the inputs before the start)."""
    return F.pad(history, (length - history.shape[-1], 0))


def _stack(histories: list[torch.Tensor]) -> torch.Tensor:
    """``order-1`` histories ``[B, d, S]`` -> ``[B, order-1, d, S]``; order 2 (HyenaDNA) needs no copy."""
    return histories[0].unsqueeze(1) if len(histories) == 1 else torch.stack(histories, dim=1)


class Hyena(Mixer):
    """HyenaDNA's Hyena operator as a :class:`Mixer` (see the module docstring for the math and state)."""

    def __init__(self, d_model: int, config: HyenaConfig):
        super().__init__()
        self.d_model = d_model
        self.config = config
        self.order = config.order
        self.l_max = config.l_max
        inner_width = d_model * (config.order + 1)
        self.in_proj = nn.Linear(d_model, inner_width)
        self.out_proj = nn.Linear(d_model, d_model)
        width = config.short_filter_order
        self.short_filter = nn.Conv1d(inner_width, inner_width, width, padding=width - 1, groups=inner_width)
        self.filter_fn = HyenaFilter(d_model * (config.order - 1), config)
        self.dropout = nn.Dropout(config.dropout)
        # (key, filter): reused while no filter tensor changed; never in the state_dict
        self._filter_cache: tuple[tuple, torch.Tensor] | None = None

    def long_filters(self, length: int, grow: bool = False) -> torch.Tensor:
        """Taps ``0..length-1`` of every long filter: ``k [order-1, d_model, length]``.

        Without autograd through the filter, the result is cached and reused until a filter parameter
        or buffer changes (in place, by ``load_state_dict`` or an optimizer, or by moving the module).
        ``grow`` rounds the cached length up to a power of two, so decoding token by token recomputes
        the filter only ``log2(l_max)`` times. The cache holds one filter, ``(order-1) d_model`` by the
        longest length asked for, and is never saved in the state_dict.
        """
        if not 1 <= length <= self.l_max:
            raise ValueError(f"the long filter has l_max={self.l_max} taps, asked for {length}")
        fn = self.filter_fn
        filter_tensors = [p for name, p in fn.named_parameters() if name != "bias"] + list(fn.buffers())
        if torch.is_grad_enabled() and any(p.requires_grad for p in filter_tensors):
            return self._shape_filter(fn.filter(length), length)
        key = (torch.is_inference_mode_enabled(), *((p.data_ptr(), p._version) for p in filter_tensors))
        cached = self._filter_cache
        if cached is None or cached[0] != key or cached[1].shape[-1] < length:
            n = min(self.l_max, 1 << (length - 1).bit_length()) if grow else length
            self._filter_cache = cached = (key, self._shape_filter(fn.filter(n), n))
        return cached[1][..., :length]

    def _shape_filter(self, h: torch.Tensor, length: int) -> torch.Tensor:
        # [L, (o d)] -> [o, d, L], HyenaDNA's channel order
        return h.transpose(0, 1).reshape(self.order - 1, self.d_model, length)

    def long_conv_biases(self) -> list[torch.Tensor | None]:
        """The skip term of each long convolution: ``order-1`` tensors ``[d_model]`` (None without bias)."""
        if self.filter_fn.bias is None:
            return [None] * (self.order - 1)
        return list(self.filter_fn.bias.view(self.order - 1, self.d_model).unbind(0))

    def in_projection(self, x: torch.Tensor) -> torch.Tensor:
        """``in_proj``: ``x [B, T, d_model] -> u [B, T, (order+1) d_model]``, stored channels-first."""
        # written channels-first, so the convolutions read contiguous rows of time instead of copying a
        # transpose (the CPU forward is memory-bound at long T)
        weight = self.in_proj.weight.expand(x.shape[0], -1, -1)
        return torch.baddbmm(self.in_proj.bias[:, None], weight, x.transpose(1, 2)).transpose(1, 2)

    def short_convolution(
        self, u: torch.Tensor, conv_state: torch.Tensor | None = None
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Depthwise causal conv of ``u [B, T, (order+1) d]``, continuing ``conv_state [B, (order+1) d, W-1]``.

        ``conv_state`` holds the inputs just before ``u`` (None: zeros, the start of a sequence). Returns
        ``([x0, ..., x_{order-1}, v], new conv state)``, each of the ``order+1`` pieces ``[B, T, d]``.
        """
        weight, bias = self._short_filter_weight(), self.short_filter.bias
        uc, conv_state = causal_conv1d_chunk(u, weight, bias, None, conv_state)
        return list(uc.split(self.d_model, dim=-1)), conv_state

    def _short_filter_weight(self) -> torch.Tensor:
        return self.short_filter.weight.squeeze(1)  # [(o+1) d, W]

    def _check_state(self, state: HyenaState, batch: int) -> None:
        width = self.config.short_filter_order - 1
        inner = self.d_model * (self.order + 1)
        if not isinstance(state, HyenaState):
            raise TypeError(
                f"Hyena expects a HyenaState (from init_state / forward), got {type(state).__name__}"
            )
        conv_shape = tuple(state.conv.shape)
        if conv_shape != (batch, inner, width):
            raise ValueError(f"Hyena state.conv must be [{batch}, {inner}, {width}], got {conv_shape}")
        h = state.history
        heads = (batch, self.order - 1, self.d_model)
        if h.ndim != 4 or tuple(h.shape[:3]) != heads or h.shape[3] >= self.l_max:
            raise ValueError(
                f"Hyena state.history must be [{batch}, {self.order - 1}, {self.d_model}, S < {self.l_max}], "
                f"got {tuple(h.shape)}"
            )

    def _forward(self, x: torch.Tensor, state: HyenaState | None) -> tuple[torch.Tensor, HyenaState]:
        B, T, _ = x.shape
        if T > self.l_max:
            raise ValueError(
                f"Hyena got T={T} tokens but its filter has l_max={self.l_max} taps; "
                "split the input and pass the state on, or build the layer with a larger l_max"
            )
        if state is not None:
            self._check_state(state, B)
        seen = 0 if state is None else state.history.shape[-1]
        u = self.in_projection(x)
        (*xs, v), conv_state = self.short_convolution(u, None if state is None else state.conv)
        # Lk-1 = the history kept afterwards: all tokens seen, at most l_max-1
        taps = min(seen + T + 1, self.l_max)
        k = self.long_filters(taps)
        histories = []
        last = self.order - 2
        for o, (x_i, bias) in enumerate(zip(reversed(xs[1:]), self.long_conv_biases())):
            v = self.dropout(v * x_i)
            h0 = None if state is None else _left_pad(state.history[:, o], taps - 1)
            # the output gate x0 rides in the last convolution: one fused multiply in the Triton kernel
            v, h = long_conv_chunk(v, k[o], bias, h0, gate=xs[0] if o == last else None)
            histories.append(h)
        y = self.out_proj(v)
        return y, HyenaState(conv_state, _stack(histories))

    def _step(self, x_t: torch.Tensor, state: HyenaState) -> tuple[torch.Tensor, HyenaState]:
        d = self.d_model
        self._check_state(state, x_t.shape[0])
        seen = state.history.shape[-1]
        u = self.in_proj(x_t)  # [B, (o+1) d]
        weight, bias = self._short_filter_weight(), self.short_filter.bias
        uc, conv_state = causal_conv1d_step(u, weight, bias, None, state.conv)
        *xs, v = uc.split(d, dim=-1)
        taps = min(seen + 2, self.l_max)
        k = self.long_filters(taps, grow=True)
        histories = []
        for o, (x_i, bias) in enumerate(zip(reversed(xs[1:]), self.long_conv_biases())):
            v = self.dropout(v * x_i)
            v, h = long_conv_step(v, k[o], bias, _left_pad(state.history[:, o], taps - 1))
            histories.append(h)
        y_t = self.out_proj(v * xs[0])
        return y_t, HyenaState(conv_state, _stack(histories))

    def init_state(
        self, batch: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> HyenaState:
        """Empty state: a zero short-conv window and no long-conv history (``S = 0``). States are fp32."""
        device = self.in_proj.weight.device if device is None else device
        inner = self.d_model * (self.order + 1)
        return HyenaState(
            conv=torch.zeros(batch, inner, self.config.short_filter_order - 1, device=device),
            history=torch.zeros(batch, self.order - 1, self.d_model, 0, device=device),
        )
