"""``ForecastingTask``: a ``PatchForecaster`` trained with a masked MSE, MAE or pinball loss.

Batches (``zoo.domains.forecasting.protocol``): ``(x [B, L, C], y [B, H, C])`` float32 on the protocol's
z-scored scale. A model with exogenous inputs (``hist_exog``, ``futr_exog``, ``static_exog`` > 0) takes a dict
``{"x", "y", "hist", "futr", "static"}`` (``zoo.domains.forecasting.exogenous.ExogenousWindows``; unused kinds may
be left out) or a tuple ``(x, y, hist, futr, static)`` (shapes in ``zoo.domains.forecasting.model``).
NaN in ``x`` is a missing input (masked by RevIN), NaN in ``y`` a missing target (left out of the loss and of
every metric). Forecasts and metrics stay on that scale: ``val/mse``, ``val/mae``, ``test/mse``,
``test/mae`` are the long-horizon protocol's numbers, accumulated over every observed target of the whole
set (not a mean of batch means). A quantile head is scored on its median (the level closest to 0.5).

It builds on ``SeqTask`` for what every zoo task shares (the backbone from ``entry`` or ``config``, the
recipe's optimizer and scheduler with no weight decay on vectors, FSDP2 sharding of the backbone's blocks);
``self.model`` is the whole ``PatchForecaster``, whose ``backbone`` is the zoo ``SeqModel``. The constructor's
arguments are saved as hyperparameters (the optimizer and scheduler callables excepted), so
``ForecastingTask.load_from_checkpoint(path)`` rebuilds the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torchmetrics import MeanAbsoluteError, MeanMetric, MeanSquaredError, MetricCollection

from zoo.config import from_dict, to_dict
from zoo.domains.forecasting.layers import PositionKind
from zoo.domains.forecasting.model import ChannelMode, HeadKind, PatchForecaster
from zoo.model import ModelConfig
from zoo.training.task import CHECKPOINT_KEY, RecipeError, SeqTask, _default_optimizer

LossKind = Literal["mse", "mae", "pinball"]
#: The losses each head can be trained with.
HEAD_LOSSES: dict[str, tuple[str, ...]] = {"point": ("mse", "mae"), "quantile": ("pinball",)}
EVAL_STAGES = ("val", "test")
#: Keys (and tuple order after ``x, y``) of the exogenous tensors in a batch.
EXOGENOUS = ("hist", "futr", "static")


def masked_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the targets that are not NaN (``pred``, ``target``: same shape)."""
    observed = ~torch.isnan(target)
    diff = torch.where(observed, pred - torch.nan_to_num(target), torch.zeros_like(pred))
    return diff.pow(2).sum() / observed.sum().clamp(min=1)


def masked_mae(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the targets that are not NaN (``pred``, ``target``: same shape)."""
    observed = ~torch.isnan(target)
    diff = torch.where(observed, pred - torch.nan_to_num(target), torch.zeros_like(pred))
    return diff.abs().sum() / observed.sum().clamp(min=1)


def masked_pinball(pred: torch.Tensor, target: torch.Tensor, quantiles: Sequence[float]) -> torch.Tensor:
    """Pinball (quantile) loss averaged over levels and non-NaN targets: ``pred [..., Q]``, ``target [...]``.

    Hand-written: torchmetrics has no quantile loss, and this one must skip missing targets.
    """
    levels = torch.as_tensor(quantiles, dtype=pred.dtype, device=pred.device)  # [Q]
    observed = ~torch.isnan(target)
    error = torch.nan_to_num(target).unsqueeze(-1) - pred  # [..., Q]
    loss = torch.maximum(levels * error, (levels - 1) * error)
    loss = torch.where(observed.unsqueeze(-1), loss, torch.zeros_like(loss))
    return loss.sum() / (observed.sum().clamp(min=1) * len(quantiles))


def _metrics(stage: str) -> MetricCollection:
    return MetricCollection({"mse": MeanSquaredError(), "mae": MeanAbsoluteError()}).clone(prefix=f"{stage}/")


class ForecastingTask(SeqTask):
    """Trains a ``PatchForecaster`` on ``(x, y)`` windows; see the module docstring for batches and metrics."""

    def __init__(
        self,
        entry: str | None = None,
        config: ModelConfig | None = None,
        pretrained: bool = False,
        seq_len: int = 96,
        pred_len: int = 96,
        num_channels: int = 7,
        patch_len: int = 16,
        stride: int = 8,
        channel_mode: ChannelMode = "independent",
        head: HeadKind = "point",
        quantiles: tuple[float, ...] = (0.1, 0.5, 0.9),
        loss: LossKind = "mse",
        revin: bool = True,
        revin_affine: bool = True,
        position: PositionKind | None = None,
        dropout: float = 0.1,
        head_dropout: float = 0.0,
        optimizer: OptimizerCallable = _default_optimizer,
        scheduler: LRSchedulerCallable | None = None,
        hist_exog: int = 0,
        futr_exog: int = 0,
        static_exog: int = 0,
    ):
        """
        Args:
            entry: a forecasting zoo entry (``zoo list``), e.g. ``mamba2-ts-small``; exclusive with ``config``.
            config: a full model config with ``vocab: null``; exclusive with ``entry``.
            pretrained: start the backbone from the entry's published weights.
            seq_len: look-back steps ``L``; must match the data module's.
            pred_len: horizon ``H``; must match the data module's.
            num_channels: series per window ``C``; must match the data module's.
            patch_len: steps per patch (``independent`` mode).
            stride: steps between patch starts (``independent`` mode).
            channel_mode: ``independent`` (PatchTST) or ``mixing`` (iTransformer variate tokens).
            head: ``point`` or ``quantile``.
            quantiles: levels of a quantile head.
            loss: ``mse`` or ``mae`` for a point head, ``pinball`` for a quantile head.
            revin: per-window normalisation (RevIN).
            revin_affine: learn RevIN's per-channel scale and shift.
            position: token position code: ``learned``, ``sinusoidal``, ``none``, or None for the mode's default.
            dropout: dropout on the token embeddings.
            head_dropout: dropout before the head.
            optimizer: ``params -> Optimizer``; vectors (norms, biases, RevIN) get no weight decay.
            scheduler: ``optimizer -> LRScheduler``, stepped every optimizer step.
            hist_exog: historical exogenous features per channel (``Fh``).
            futr_exog: future exogenous features per channel (``Ff``).
            static_exog: static exogenous features per channel (``Fs``).
        """
        if isinstance(config, dict):  # a checkpoint's hyperparameters keep the config as a plain dict
            config = from_dict(ModelConfig, config)
        if loss not in HEAD_LOSSES.get(head, ()):
            raise RecipeError(f"model.loss: {loss!r} does not fit a {head!r} head; use one of {HEAD_LOSSES.get(head)}")
        super().__init__(entry=entry, config=config, pretrained=pretrained, optimizer=optimizer, scheduler=scheduler)
        # A plain dict, not the dataclass, so the checkpoint loads with torch.load(weights_only=True).
        self.save_hyperparameters(ignore=["optimizer", "scheduler", "config"])
        self.hparams["config"] = None if config is None else to_dict(config)
        try:
            self.model = PatchForecaster(
                self.model,
                seq_len=seq_len,
                pred_len=pred_len,
                num_channels=num_channels,
                patch_len=patch_len,
                stride=stride,
                channel_mode=channel_mode,
                head=head,
                quantiles=tuple(quantiles),
                revin=revin,
                revin_affine=revin_affine,
                position=position,
                dropout=dropout,
                head_dropout=head_dropout,
                hist_exog=hist_exog,
                futr_exog=futr_exog,
                static_exog=static_exog,
            )
        except ValueError as err:
            raise RecipeError(f"model: {err}") from None
        self.loss_kind = loss
        self.losses = torch.nn.ModuleDict({stage: MeanMetric() for stage in EVAL_STAGES})
        self.val_metrics = _metrics("val")
        self.test_metrics = _metrics("test")

    def forward(
        self,
        x: torch.Tensor,
        hist: torch.Tensor | None = None,
        futr: torch.Tensor | None = None,
        static: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``x [B, L, C]`` (and the model's exogenous inputs) -> forecasts ``[B, H, C]`` (point) or
        ``[B, H, C, Q]`` (quantile), on ``x``'s scale."""
        return self.model(x, hist, futr, static)

    def setup(self, stage: str) -> None:
        """Check the data module's window shape (``seq_len``, ``pred_len``, channels) against the model's."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if datamodule is None:
            return
        # the data module has run its own setup by now (Lightning calls it first), so its channel count is known
        theirs = {name: getattr(datamodule, name, None) for name in ("seq_len", "pred_len")}
        theirs["num_channels"] = getattr(datamodule, "num_channels", None) or getattr(datamodule, "n_channels", None)
        for name, value in theirs.items():
            ours = getattr(self.model, name)
            if value is not None and value != ours:
                raise RecipeError(f"model.{name}={ours} but the data module has {name}={value}; make them equal")

    def loss(self, output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The configured loss of ``forward``'s output against ``y [B, H, C]`` (NaN targets skipped)."""
        if self.loss_kind == "pinball":
            return masked_pinball(output, y, self.model.quantiles)
        return masked_mse(output, y) if self.loss_kind == "mse" else masked_mae(output, y)

    def _step(self, batch: Sequence[torch.Tensor] | Mapping[str, torch.Tensor], stage: str) -> torch.Tensor:
        x, y, exog = self._unpack(batch)
        output = self(x, *exog)
        loss = self.loss(output, y)
        observed = ~torch.isnan(y)
        count = int(observed.sum())
        if stage == "train":
            self.log("train/loss", loss.detach(), on_step=True, prog_bar=True, batch_size=x.shape[0])
        elif count:
            self.losses[stage].update(loss.detach(), count)
            point = self.model.point_forecast(output.detach())
            getattr(self, f"{stage}_metrics").update(point[observed], y[observed])
        return loss

    def _unpack(
        self, batch: Sequence[torch.Tensor] | Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor | None, ...]]:
        """``(x, y, (hist, futr, static))`` of a batch; the model checks the exogenous shapes."""
        if isinstance(batch, Mapping):
            unknown = sorted(set(batch) - {"x", "y", *EXOGENOUS})
            if "x" not in batch or "y" not in batch or unknown:
                raise ValueError(f"a forecasting batch dict has keys x, y and optionally {list(EXOGENOUS)}; got "
                                 f"{sorted(batch)}")  # fmt: skip
            x, y = batch["x"], batch["y"]
            exog = tuple(batch.get(name) for name in EXOGENOUS)
        elif isinstance(batch, Sequence) and len(batch) in (2, 2 + len(EXOGENOUS)):
            x, y, *rest = batch
            exog = tuple(rest) or (None,) * len(EXOGENOUS)
        else:
            raise ValueError("a forecasting batch is (x [B, L, C], y [B, H, C]), (x, y, hist, futr, static) or a dict "
                             "with those keys")  # fmt: skip
        expected = (x.shape[0], self.model.pred_len, self.model.num_channels)
        if tuple(y.shape) != expected:
            raise ValueError(f"y has shape {tuple(y.shape)}, expected [B, pred_len, C] = {list(expected)}")
        return x, y, exog

    def _log_epoch(self, stage: str) -> None:
        metrics = getattr(self, f"{stage}_metrics")
        if self.losses[stage].update_count == 0:
            return  # nothing observed this epoch (e.g. the sanity check on an all-missing window)
        self.log_dict({f"{stage}/loss": self.losses[stage].compute(), **metrics.compute()}, prog_bar=stage == "val")
        metrics.reset()
        self.losses[stage].reset()

    def on_validation_epoch_end(self) -> None:
        """Log the validation loss, MSE and MAE of the whole epoch."""
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        """Log the test loss, MSE and MAE of the whole test set."""
        self._log_epoch("test")

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """Forecasts ``[B, H, C]`` or ``[B, H, C, Q]`` on the protocol's z-scored scale (the data side maps them
        back to the data's units with its training statistics). ``batch``: ``x``, ``(x, y)`` or a training batch
        with exogenous inputs (tuple or dict)."""
        if isinstance(batch, torch.Tensor):
            return self(batch)
        if isinstance(batch, Mapping):
            return self(batch["x"], *(batch.get(name) for name in EXOGENOUS))
        if len(batch) == 2 + len(EXOGENOUS):
            return self(batch[0], *batch[2:])
        return self(batch[0])

    def configure_model(self) -> None:
        """Under ``ModelParallelStrategy`` (FSDP2) shard each backbone block, then the whole forecaster."""
        if self.device_mesh is None:
            return
        from torch.distributed.fsdp import fully_shard

        mesh = self.device_mesh["data_parallel"]
        for block in self.model.backbone.backbone.layers:
            fully_shard(block, mesh=mesh)
        fully_shard(self.model, mesh=mesh)

    def _embedding_weight(self) -> torch.Tensor | None:
        return None  # a continuous-input backbone has no token embedding

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the backbone config and the forecaster's settings, so the model rebuilds from the checkpoint."""
        forecaster = {key: value for key, value in self.hparams.items() if key not in ("entry", "config", "pretrained")}
        checkpoint[CHECKPOINT_KEY] = {
            "model_config": to_dict(self.model.backbone.config),
            "entry": self.entry,
            "task": f"{type(self).__module__}.{type(self).__qualname__}",
            "base_model": self.base_model,
            "forecaster": forecaster,
            # the backbone's weights sit under this prefix of the state dict (the rest: RevIN, embedding, head)
            "backbone_prefix": "model.backbone.",
        }
