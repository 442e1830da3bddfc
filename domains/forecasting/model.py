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

Exogenous inputs (``hist_exog``, ``futr_exog``, ``static_exog`` feature counts; all 0 builds exactly the model
without them: same submodules, parameter order and state-dict keys). ``forward(x, hist, futr, static)`` takes
``hist [B, L, C, Fh]`` (known over the look-back), ``futr [B, L + H, C, Ff]`` (known over the look-back and the
horizon) and ``static [B, C, Fs]``, on a scale of their own (the caller standardises them) and without NaN:

* the look-back exogenous (``hist`` and the first ``L`` steps of ``futr``) join the value and mask features of
  each token: a patch of each feature beside the value patch (``independent``), or each feature's whole look-back
  in the variate token (``mixing``); they are not RevIN-normalised (their scale does not depend on the window);
* ``static`` goes through ``static_exog_proj`` (``Fs -> D``), added to every token of its channel;
* the horizon part of ``futr`` goes through ``futr_exog_proj`` (``H Ff -> H Q``, per channel), added to the forecasts
  *after* RevIN's denormalisation. Added before it (in the window-normalised space), an effect would be scaled by
  each look-back's standard deviation: a promotion would add little after a flat look-back and much after a
  volatile one. After it, the effect is fixed on the scale of ``x`` (the series' training z-score).

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
        hist_exog: int = 0,
        futr_exog: int = 0,
        static_exog: int = 0,
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
            hist_exog: ``Fh``, historical exogenous features per channel (known over the look-back only).
            futr_exog: ``Ff``, future exogenous features per channel (known over the look-back and the horizon).
            static_exog: ``Fs``, static features per channel.
        """
        super().__init__()
        if channel_mode not in CHANNEL_MODES:
            raise ValueError(f"channel_mode={channel_mode!r} is not one of {CHANNEL_MODES}")
        if head not in HEADS:
            raise ValueError(f"head={head!r} is not one of {HEADS}")
        for name, value in (("seq_len", seq_len), ("pred_len", pred_len), ("num_channels", num_channels)):
            if value < 1:
                raise ValueError(f"{name} must be positive, got {value}")
        for name, value in (("hist_exog", hist_exog), ("futr_exog", futr_exog), ("static_exog", static_exog)):
            if value < 0:
                raise ValueError(f"{name} must be a feature count >= 0, got {value}")
        self.seq_len, self.pred_len, self.num_channels = seq_len, pred_len, num_channels
        self.hist_exog, self.futr_exog, self.static_exog = int(hist_exog), int(futr_exog), int(static_exog)
        lookback_exog = self.hist_exog + self.futr_exog  # features read over the look-back
        self.channel_mode, self.head_kind = channel_mode, head
        self.quantiles = _check_quantiles(quantiles) if head == "quantile" else ()
        self.backbone = build_backbone(backbone, pretrained)
        d_model = self.backbone.d_model
        if channel_mode == "independent":
            self.patching = Patching(patch_len, stride)
            self.num_tokens = num_patches(seq_len, patch_len, stride)
            in_features = (2 + lookback_exog) * patch_len  # a patch of values, its observed mask, its exogenous
        else:
            self.patching = None
            self.num_tokens = num_channels
            in_features = (2 + lookback_exog) * seq_len  # a whole look-back of values, mask and exogenous
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
        # Created last and only when used: with no exogenous the modules, their creation order (hence the weights a
        # seed gives) and the state-dict keys are those of the model without exogenous support.
        if self.static_exog:
            self.static_exog_proj = nn.Linear(self.static_exog, d_model)
        if self.futr_exog:
            self.futr_exog_proj = nn.Linear(pred_len * self.futr_exog, pred_len * self.num_outputs)
            # zero at the start: an untrained future-exogenous path adds nothing rather than random offsets
            nn.init.zeros_(self.futr_exog_proj.weight)
            nn.init.zeros_(self.futr_exog_proj.bias)

    def forward(
        self,
        x: torch.Tensor,
        hist: torch.Tensor | None = None,
        futr: torch.Tensor | None = None,
        static: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``x [B, L, C]`` (NaN = missing), optional ``hist [B, L, C, Fh]``, ``futr [B, L + H, C, Ff]``,
        ``static [B, C, Fs]`` -> ``[B, H, C]`` (point) or ``[B, H, C, Q]`` (quantile)."""
        self._check(x)
        hist, futr, static = self._check_exog(x, hist, futr, static)
        if self.revin is not None:
            z, observed, stats = self.revin.normalise(x)
        else:
            z, observed, stats = x, torch.ones_like(x, dtype=torch.bool), None
        batch = x.shape[0]
        lookback = [t[:, : self.seq_len].to(z.dtype) for t in (hist, futr) if t is not None]  # each [B, L, C, F]
        if self.channel_mode == "independent":
            values = self.patching(rearrange(z, "b l c -> (b c) l"))  # [B C, N, P]
            mask = self.patching(rearrange(observed.to(z.dtype), "b l c -> (b c) l"))  # [B C, N, P]
            exog = [rearrange(self.patching(rearrange(t, "b l c f -> (b c) f l")), "bc f n p -> bc n (f p)")
                    for t in lookback]  # fmt: skip
            tokens = torch.cat([values, mask, *exog], dim=-1)  # [B C, N, (2 + Fh + Ff) P]
            embedded = self.embedding(tokens)  # [B C, N, D]
            if static is not None:
                embedded = embedded + rearrange(self.static_exog_proj(static.to(z.dtype)), "b c d -> (b c) 1 d")
            hidden = self.backbone(inputs_embeds=embedded).hidden  # [B C, N, D]
            out = self.head(rearrange(hidden, "bc n d -> bc (n d)"))  # [B C, H Q]
            out = rearrange(out, "(b c) (h q) -> b h c q", b=batch, q=self.num_outputs)
        else:
            exog = [rearrange(t, "b l c f -> b (f l) c") for t in lookback]
            tokens = torch.cat([z, observed.to(z.dtype), *exog], dim=1).transpose(1, 2)  # [B, C, (2 + Fh + Ff) L]
            embedded = self.embedding(tokens)  # [B, C, D]
            if static is not None:
                embedded = embedded + self.static_exog_proj(static.to(z.dtype))
            hidden = self.backbone(inputs_embeds=embedded).hidden  # [B, C, D]
            out = rearrange(self.head(hidden), "b c (h q) -> b h c q", q=self.num_outputs)
        out = out.float()
        if stats is not None:
            out = self.revin.denormalise(out, stats)
        if futr is not None:
            # after denormalising, so an exogenous effect does not scale with the look-back's spread (docstring)
            effect = self.futr_exog_proj(rearrange(futr[:, self.seq_len :].float(), "b h c f -> b c (h f)"))
            out = out + rearrange(effect, "b c (h q) -> b h c q", q=self.num_outputs)
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

    def _check_exog(
        self, x: torch.Tensor, hist: torch.Tensor | None, futr: torch.Tensor | None, static: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """The exogenous inputs, shapes and values checked; a zero-feature tensor for an unused kind is None."""
        batch, channels = x.shape[0], self.num_channels
        shapes = {
            "hist": ((batch, self.seq_len, channels, self.hist_exog), "[B, L, C, Fh]", "hist_exog"),
            "futr": ((batch, self.seq_len + self.pred_len, channels, self.futr_exog), "[B, L + H, C, Ff]", "futr_exog"),
            "static": ((batch, channels, self.static_exog), "[B, C, Fs]", "static_exog"),
        }
        checked = []
        for name, tensor in (("hist", hist), ("futr", futr), ("static", static)):
            expected, letters, count = shapes[name]
            if tensor is not None and tensor.ndim == len(expected) and tensor.shape[-1] == 0 and expected[-1] == 0:
                tensor = None  # an empty placeholder (a collated batch without this kind)
            if tensor is None:
                if expected[-1]:
                    raise ValueError(f"this model was built with {count}={expected[-1]}: pass {name} {letters} = "
                                     f"{list(expected)}")  # fmt: skip
                checked.append(None)
                continue
            if not expected[-1]:
                raise ValueError(f"{name} given but this model was built with {count}=0: build it with "
                                 f"{count}={tensor.shape[-1]} or leave {name} out")  # fmt: skip
            if tuple(tensor.shape) != expected:
                raise ValueError(f"{name} must have shape {letters} = {list(expected)}, got {list(tensor.shape)}")
            if not torch.is_floating_point(tensor):
                raise TypeError(f"{name} must be floating point, got dtype {tensor.dtype}")
            if not torch.isfinite(tensor).all():
                raise ValueError(f"{name} has {int((~torch.isfinite(tensor)).sum())} NaN or infinite values: "
                                 "exogenous inputs must be known (only the target may be missing)")  # fmt: skip
            checked.append(tensor)
        return checked[0], checked[1], checked[2]
