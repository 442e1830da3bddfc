"""``PatchForecaster``: RevIN + tokens (patches or variates) + a zoo backbone + a point or quantile head.

Shapes (letters as in ``zoo.domains.forecasting.layers``): ``forward(x [B, L, C])`` returns ``[B, H, C]`` (point)
or ``[B, H, C, Q]`` (quantile), on the scale of ``x`` (the protocol's z-scored scale). NaN in ``x`` marks a missing
value (see ``RevIN``); infinite values are rejected.

Two ways to read the channels, chosen by ``channel_mode``:

* ``independent`` (PatchTST): every channel is its own sequence of ``N`` patches; the ``B * C`` sequences share
  the backbone, and a flatten head maps each channel's ``N * D`` hidden values to its ``H`` forecasts. A
  channel's forecast depends on that channel only.
* ``mixing`` (iTransformer): each channel's whole look-back (values and observed mask) is embedded as one
  token, the backbone runs over the ``C`` variate tokens, and a linear head maps each token to ``H`` forecasts.
  Attention without a causal mask and without rotary positions (the forecasting entries) treats the channels
  as a set; recurrent and convolutional backbones (Hyena, Mamba-2, xLSTM) read them in column order, so their
  forecasts depend on how the columns are ordered.

Quantile heads are made monotone by sorting the ``Q`` values of each forecast after denormalising. Sorting
(the "rearrangement" of Chernozhukov, Fernandez-Val and Galichon, 2010) never increases the pinball loss of a
set of quantile estimates, so it fixes crossings at no cost in accuracy, and it stays monotone whatever sign
the learned RevIN scale takes (a cumulative-softplus head built before denormalising would not).
"""

from __future__ import annotations

from typing import Literal

import torch
from einops import rearrange
from torch import nn

from zoo.domains.forecasting.layers import PatchEmbedding, Patching, PositionKind, RevIN, num_patches
from zoo.model import ModelConfig, SeqModel

ChannelMode = Literal["independent", "mixing"]
HeadKind = Literal["point", "quantile"]
CHANNEL_MODES: tuple[str, ...] = ("independent", "mixing")
HEADS: tuple[str, ...] = ("point", "quantile")


def build_backbone(backbone: str | ModelConfig | SeqModel, pretrained: bool = False) -> SeqModel:
    """A continuous-input ``SeqModel`` from an entry name, a ``ModelConfig`` or a built model."""
    if isinstance(backbone, str):
        import zoo  # imported here: zoo's top level imports the registry, which is heavy for a layer module

        model = zoo.load(backbone, pretrained=pretrained)
    elif isinstance(backbone, ModelConfig):
        model = SeqModel(backbone)
    elif isinstance(backbone, SeqModel):
        model = backbone
    else:
        raise TypeError(f"backbone must be an entry name, a ModelConfig or a SeqModel, got {type(backbone).__name__}")
    if model.config.vocab is not None:
        raise ValueError(
            f"backbone has the {model.config.vocab!r} vocabulary; forecasting needs a continuous-input model "
            "(vocab=None), e.g. zoo.list_models(domain='forecasting')"
        )
    return model


def _check_quantiles(quantiles: tuple[float, ...]) -> tuple[float, ...]:
    quantiles = tuple(float(q) for q in quantiles)
    if not quantiles or any(not 0.0 < q < 1.0 for q in quantiles):
        raise ValueError(f"quantiles must be levels strictly between 0 and 1, got {quantiles}")
    if list(quantiles) != sorted(set(quantiles)):
        raise ValueError(f"quantiles must be strictly increasing, got {quantiles}")
    return quantiles


class PatchForecaster(nn.Module):
    """Multivariate forecaster on a zoo backbone; see the module docstring for the two channel modes."""

    def __init__(
        self,
        backbone: str | ModelConfig | SeqModel,
        seq_len: int,
        pred_len: int,
        num_channels: int,
        patch_len: int = 16,
        stride: int = 8,
        channel_mode: ChannelMode = "independent",
        head: HeadKind = "point",
        quantiles: tuple[float, ...] = (0.1, 0.5, 0.9),
        revin: bool = True,
        revin_affine: bool = True,
        position: PositionKind | None = None,
        dropout: float = 0.1,
        head_dropout: float = 0.0,
        pretrained: bool = False,
    ):
        """
        Args:
            backbone: a forecasting zoo entry (``zoo.list_models(domain="forecasting")``), a ``ModelConfig`` with
                ``vocab=None``, or a built ``SeqModel``.
            seq_len: ``L``, look-back steps the model reads.
            pred_len: ``H``, steps it forecasts.
            num_channels: ``C``, series per sample (columns of a wide table).
            patch_len: ``P`` (``independent`` mode only).
            stride: steps between patch starts (``independent`` mode only).
            channel_mode: ``independent`` (PatchTST) or ``mixing`` (iTransformer variate tokens).
            head: ``point`` (one value per step) or ``quantile`` (``Q`` sorted values per step).
            quantiles: the levels of a quantile head, strictly increasing in (0, 1).
            revin: normalise each window by its own statistics (off: the inputs must have no NaN).
            revin_affine: learn RevIN's per-channel scale and shift.
            position: position code added to the tokens: ``learned``, ``sinusoidal`` or ``none``; None picks
                ``learned`` over patches and ``none`` over variate tokens (iTransformer: a channel is known by its
                values, not its column number, so attention treats the channels as a set).
            dropout: dropout on the token embeddings.
            head_dropout: dropout before the head's linear layer.
            pretrained: load the entry's published backbone weights (``backbone`` given by name).
        """
        super().__init__()
        if channel_mode not in CHANNEL_MODES:
            raise ValueError(f"channel_mode={channel_mode!r} is not one of {CHANNEL_MODES}")
        if head not in HEADS:
            raise ValueError(f"head={head!r} is not one of {HEADS}")
        for name, value in (("seq_len", seq_len), ("pred_len", pred_len), ("num_channels", num_channels)):
            if value < 1:
                raise ValueError(f"{name} must be positive, got {value}")
        self.seq_len, self.pred_len, self.num_channels = seq_len, pred_len, num_channels
        self.channel_mode, self.head_kind = channel_mode, head
        self.quantiles = _check_quantiles(quantiles) if head == "quantile" else ()
        self.backbone = build_backbone(backbone, pretrained)
        d_model = self.backbone.d_model
        if channel_mode == "independent":
            self.patching = Patching(patch_len, stride)
            self.num_tokens = num_patches(seq_len, patch_len, stride)
            in_features = 2 * patch_len  # a patch of values and its observed mask
        else:
            self.patching = None
            self.num_tokens = num_channels
            in_features = 2 * seq_len  # a whole look-back of values and its observed mask
        if self.num_tokens > self.backbone.config.max_seq_len:
            raise ValueError(
                f"{self.num_tokens} tokens exceed the backbone's context of {self.backbone.config.max_seq_len}; "
                "use longer patches, a larger stride or a backbone with a longer context"
            )
        self.revin = RevIN(num_channels, affine=revin_affine) if revin else None
        if position is None:
            position = "learned" if channel_mode == "independent" else "none"
        self.embedding = PatchEmbedding(in_features, d_model, self.num_tokens, position=position, dropout=dropout)
        self.num_outputs = len(self.quantiles) or 1
        # independent: flatten all patches of a channel (PatchTST's FlattenHead); mixing: one token per channel
        head_in = self.num_tokens * d_model if channel_mode == "independent" else d_model
        self.head = nn.Sequential(nn.Dropout(head_dropout), nn.Linear(head_in, pred_len * self.num_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, L, C]`` (NaN = missing) -> ``[B, H, C]`` (point) or ``[B, H, C, Q]`` (quantile)."""
        self._check(x)
        if self.revin is not None:
            z, observed, stats = self.revin.normalise(x)
        else:
            z, observed, stats = x, torch.ones_like(x, dtype=torch.bool), None
        batch = x.shape[0]
        if self.channel_mode == "independent":
            values = self.patching(rearrange(z, "b l c -> (b c) l"))  # [B C, N, P]
            mask = self.patching(rearrange(observed.to(z.dtype), "b l c -> (b c) l"))  # [B C, N, P]
            tokens = torch.cat([values, mask], dim=-1)  # [B C, N, 2P]
            hidden = self.backbone(inputs_embeds=self.embedding(tokens)).hidden  # [B C, N, D]
            out = self.head(rearrange(hidden, "bc n d -> bc (n d)"))  # [B C, H Q]
            out = rearrange(out, "(b c) (h q) -> b h c q", b=batch, q=self.num_outputs)
        else:
            tokens = torch.cat([z, observed.to(z.dtype)], dim=1).transpose(1, 2)  # [B, C, 2L]
            hidden = self.backbone(inputs_embeds=self.embedding(tokens)).hidden  # [B, C, D]
            out = rearrange(self.head(hidden), "b c (h q) -> b h c q", q=self.num_outputs)
        out = out.float()
        if stats is not None:
            out = self.revin.denormalise(out, stats)
        if self.head_kind == "point":
            return out.squeeze(-1)
        return out.sort(dim=-1).values

    def point_forecast(self, output: torch.Tensor) -> torch.Tensor:
        """``[B, H, C]`` point forecasts from ``forward``'s output: itself, or the quantile closest to the median."""
        if self.head_kind == "point":
            return output
        median = min(range(len(self.quantiles)), key=lambda i: abs(self.quantiles[i] - 0.5))
        return output[..., median]

    def _check(self, x: torch.Tensor) -> None:
        expected = f"[B, {self.seq_len}, {self.num_channels}]"
        if x.ndim != 3:
            raise ValueError(f"x must have shape {expected} (batch, look-back, channels), got {tuple(x.shape)}")
        if x.shape[1] != self.seq_len:
            raise ValueError(f"x has a look-back of {x.shape[1]} steps; this model reads seq_len={self.seq_len}")
        if x.shape[2] != self.num_channels:
            raise ValueError(f"x has {x.shape[2]} channels; this model was built for num_channels={self.num_channels}")
        if not torch.is_floating_point(x):
            raise TypeError(f"x must be floating point, got dtype {x.dtype}")
        if self.revin is None and torch.isnan(x).any():
            raise ValueError("x contains NaN but revin=False: missing values are masked only with revin=True")
