"""The pattern-built backbone: one letter per layer, pre-norm residual blocks, optional MLP.

``pattern="SSSASSSA"`` builds eight blocks: Mamba-2 (``S``) with attention (``A``) every fourth layer.
Letters map to mixers through the explicit ``LAYER_KINDS`` table. Module names follow transformers'
``MambaModel`` / ``Mamba2Model`` (``embeddings``, ``layers.{i}.norm``, ``layers.{i}.mixer``, ``norm_f``),
so their checkpoints load by identity.

Tensor contract: ``x [B, T, D] -> h [B, T, D]``; the state is a list with one mixer state per layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch
from torch import nn

from zoo.layers.attention import Attention, AttentionConfig
from zoo.layers.base import Mixer
from zoo.layers.bidirectional import BidirectionalMixer
from zoo.layers.hyena import Hyena, HyenaConfig
from zoo.layers.mamba import Mamba, MambaConfig
from zoo.layers.mamba2 import Mamba2, Mamba2Config
from zoo.layers.mlp import MLP, MLPConfig
from zoo.layers.mlstm import MLSTM, MLSTMConfig
from zoo.layers.norm import RMSNorm
from zoo.layers.slstm import SLSTM, SLSTMConfig

#: Pattern letter -> mixer kind. Lower-case letters are the xLSTM cells.
LAYER_KINDS: dict[str, str] = {
    "A": "attention",
    "H": "hyena",
    "M": "mamba",
    "S": "mamba2",
    "m": "mlstm",
    "s": "slstm",
}

MIXER_CLASSES: dict[str, type[Mixer]] = {
    "attention": Attention,
    "hyena": Hyena,
    "mamba": Mamba,
    "mamba2": Mamba2,
    "mlstm": MLSTM,
    "slstm": SLSTM,
}


@dataclass
class MixerConfigs:
    """One config per mixer kind; every layer of that kind in the pattern uses it."""

    attention: AttentionConfig = field(default_factory=AttentionConfig)
    hyena: HyenaConfig = field(default_factory=HyenaConfig)
    mamba: MambaConfig = field(default_factory=MambaConfig)
    mamba2: Mamba2Config = field(default_factory=Mamba2Config)
    mlstm: MLSTMConfig = field(default_factory=MLSTMConfig)
    slstm: SLSTMConfig = field(default_factory=SLSTMConfig)


@dataclass
class BackboneConfig:
    """A stack of pre-norm residual blocks described by a layer pattern."""

    d_model: int = 256
    """Width of the residual stream."""
    pattern: str = "MMMM"
    """One letter per layer: A attention, H hyena, M mamba, S mamba2 (SSD), m mLSTM, s sLSTM."""
    mixers: MixerConfigs = field(default_factory=MixerConfigs)
    """Per-kind mixer settings."""
    mlp: MLPConfig | None = None
    """Feed-forward after each mixer; None for mixer-only blocks (Mamba, Caduceus)."""
    norm: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    """Normalisation before each mixer / MLP and after the last block."""
    norm_eps: float = 1e-5
    """Epsilon of every norm."""
    residual_in_fp32: bool = True
    """Keep the residual stream in fp32 under low-precision weights (as mamba_ssm)."""
    bidirectional: bool = False
    """Wrap every causal mixer so it also reads right-to-left (Caduceus BiMamba)."""
    tie_bidirectional_projections: bool = True
    """In bidirectional layers, share in/out projections between the two directions."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.pattern) - set(LAYER_KINDS))
        if not self.pattern or unknown:
            raise ValueError(
                f"pattern {self.pattern!r} has unknown letters {unknown}; use "
                + ", ".join(f"{k}={v}" for k, v in LAYER_KINDS.items())
            )
        if self.d_model <= 0:
            raise ValueError(f"d_model must be positive, got {self.d_model}")

    @property
    def kinds(self) -> list[str]:
        """The mixer kind of each layer, in order."""
        return [LAYER_KINDS[letter] for letter in self.pattern]


def make_norm(kind: str, width: int, eps: float) -> nn.Module:
    """RMSNorm (on the fused kernel) or LayerNorm over the last dimension."""
    return RMSNorm(width, eps=eps) if kind == "rmsnorm" else nn.LayerNorm(width, eps=eps)


def build_mixer(kind: str, config: BackboneConfig, layer_index: int = 0) -> Mixer:
    """The mixer of layer ``layer_index``, wrapped bidirectionally when the backbone asks for it."""
    mixer_cls = MIXER_CLASSES[kind]
    mixer_config = getattr(config.mixers, kind)
    if kind == "slstm":
        # NX-AI's sLSTM forget-gate bias init depends on the block's depth in the stack.
        mixer_config = replace(mixer_config, block_idx=layer_index, num_blocks=len(config.pattern))
    mixer = mixer_cls(config.d_model, mixer_config)
    if config.bidirectional and mixer.causal:
        rev = mixer_cls(config.d_model, mixer_config)
        return BidirectionalMixer(mixer, rev, tie_projections=config.tie_bidirectional_projections)
    return mixer


class Block(nn.Module):
    """``x + mixer(norm(x))``, then ``+ mlp(norm_mlp(x))`` when the block has an MLP."""

    def __init__(self, kind: str, config: BackboneConfig, layer_index: int = 0):
        super().__init__()
        self.kind = kind
        self.residual_in_fp32 = config.residual_in_fp32
        self.norm = make_norm(config.norm, config.d_model, config.norm_eps)
        self.mixer = build_mixer(kind, config, layer_index)
        if config.mlp is not None:
            self.norm_mlp = make_norm(config.norm, config.d_model, config.norm_eps)
            self.mlp = MLP(config.d_model, config.mlp)
        else:
            self.norm_mlp = self.mlp = None

    def _residual(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x.float() + y.float() if self.residual_in_fp32 else x + y

    def _add_mixer_output(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``x + y``, then ``+ mlp(norm_mlp(x + y))`` when the block has an MLP."""
        if self.mlp is None:
            return self._residual(x, y)
        if isinstance(self.norm_mlp, RMSNorm):
            # One pass: the residual add fused into the MLP's pre-norm.
            h, r = self.norm_mlp.add_and_norm(y, x, residual_in_fp32=self.residual_in_fp32)
        else:
            r = self._residual(x, y)
            h = self.norm_mlp(r.to(self.norm_mlp.weight.dtype))
        return self._residual(r, self.mlp(h))

    def forward(self, x: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """``x [B, T, D] -> (x' [B, T, D], mixer state)``."""
        y, state = self.mixer(self.norm(x.to(self.norm.weight.dtype)), state)
        return self._add_mixer_output(x, y), state

    def step(self, x_t: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """``x_t [B, D] -> (x_t' [B, D], new mixer state)``."""
        y_t, state = self.mixer.step(self.norm(x_t.to(self.norm.weight.dtype)), state)
        return self._add_mixer_output(x_t, y_t), state


class Backbone(nn.Module):
    """Blocks from ``config.pattern`` and a final norm; ``embeddings`` is set by the model when it has a vocabulary."""

    def __init__(self, config: BackboneConfig, vocab_size: int | None = None):
        super().__init__()
        self.config = config
        self.embeddings = nn.Embedding(vocab_size, config.d_model) if vocab_size else None
        self.layers = nn.ModuleList(Block(kind, config, i) for i, kind in enumerate(config.kinds))
        self.norm_f = make_norm(config.norm, config.d_model, config.norm_eps)

    def forward(self, x: torch.Tensor, state: list | None = None) -> tuple[torch.Tensor, list]:
        """``x [B, T, D]`` -> ``(h [B, T, D], per-layer states)``; pass ``state`` to continue a sequence."""
        states = state if state is not None else [None] * len(self.layers)
        if len(states) != len(self.layers):
            raise ValueError(f"state has {len(states)} layers, the backbone has {len(self.layers)}")
        new_states = []
        for layer, layer_state in zip(self.layers, states):
            x, layer_state = layer(x, layer_state)
            new_states.append(layer_state)
        return self.norm_f(x.to(self.norm_f.weight.dtype)), new_states

    def step(self, x_t: torch.Tensor, state: list) -> tuple[torch.Tensor, list]:
        """One token through every layer: ``x_t [B, D]`` -> ``(h_t [B, D], new states)``."""
        new_states = []
        for layer, layer_state in zip(self.layers, state):
            x_t, layer_state = layer.step(x_t, layer_state)
            new_states.append(layer_state)
        return self.norm_f(x_t.to(self.norm_f.weight.dtype)), new_states

    def init_state(self, batch: int, device=None, dtype=None) -> list:
        """Empty per-layer states for ``batch`` sequences."""
        return [layer.mixer.init_state(batch, device=device, dtype=dtype) for layer in self.layers]

    @property
    def causal(self) -> bool:
        """True when every layer only looks at the past (the model has a step form)."""
        return all(layer.mixer.causal for layer in self.layers)
