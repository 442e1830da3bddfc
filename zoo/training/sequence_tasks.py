"""Fine-tuning tasks: a zoo model + a pooled (or per-position) head + loss + epoch-level metrics.

Batches (``zoo.domains.genomics.labelled``): ``input_ids [B, T] long`` right-padded with [PAD],
``attention_mask [B, T] bool``, ``labels`` — ``[B]`` long class indices (classification), ``[B]`` float
values (regression) or ``[B, T]`` long per-position classes with -100 where unlabelled (token
classification).

Metrics are torchmetrics states accumulated over the whole evaluation set (not means of batch values)
and logged at the end of the epoch as ``val/<name>`` and ``test/<name>``:
classification ``accuracy``, ``auroc`` (macro one-vs-rest; equal to the binary AUROC for two classes),
``mcc``, ``f1`` (macro); regression ``spearman``, ``pearson``, ``mse`` (on the original scale); token
classification ``accuracy``, ``mcc``, ``f1`` over labelled positions. ``loss`` is logged for every stage
(for regression on the standardised scale the model is trained on).

Regression targets are standardised with the training mean and standard deviation that the data module
computes (``label_mean`` / ``label_std``); the task copies them into buffers at the start of fitting, so
they are saved in the checkpoint, and predictions and metrics are on the original scale.

``rc_inference`` (DNA models): at val/test/predict time the prediction is the average of the logits (or
values) for the sequence and for its reverse complement, so rc(x) and x get the same prediction. A
reverse-complement-equivariant model (Caduceus-PS) is already invariant here — its two strands are folded
before pooling (``zoo.training.heads.fold_strands``) — so the second pass is skipped.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassF1Score,
    MulticlassMatthewsCorrCoef,
)
from torchmetrics.regression import MeanSquaredError, PearsonCorrCoef, SpearmanCorrCoef

from zoo.model import ModelConfig
from zoo.training.heads import POOLINGS, Pooling, SequenceHead, TokenHead, fold_strands, hidden_width, pool
from zoo.training.language_model import IGNORE_INDEX
from zoo.training.task import SeqTask, _default_optimizer
from zoo.vocab import dna_complement_map

logger = logging.getLogger(__name__)

EVAL_STAGES = ("val", "test")


def reverse_complement_padded(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, complement: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reverse complement of each row's unpadded prefix, padding kept on the right.

    Returns the ids ``[B, T]`` and the source index ``[B, T]`` used: position ``t`` of the result is
    position ``index[:, t]`` of the input (an involution, so the same index maps per-position outputs back).
    """
    T = input_ids.shape[1]
    lengths = attention_mask.sum(1, keepdim=True)  # [B, 1]
    positions = torch.arange(T, device=input_ids.device).expand_as(input_ids)  # [B, T]
    index = torch.where(positions < lengths, lengths - 1 - positions, positions)
    return complement[input_ids.gather(1, index)], index


class _HeadTask(SeqTask):
    """A SeqTask with a head on the (pooled) hidden states and optional reverse-complement inference."""

    token_level = False

    def __init__(
        self,
        entry: str | None,
        config: ModelConfig | None,
        pretrained: bool,
        optimizer: OptimizerCallable,
        scheduler: LRSchedulerCallable | None,
        out_features: int,
        pooling: Pooling,
        head_dropout: float,
        head_hidden: int | None,
        rc_inference: bool,
    ):
        super().__init__(entry=entry, config=config, pretrained=pretrained, optimizer=optimizer, scheduler=scheduler)
        if pooling not in POOLINGS:
            raise ValueError(f"model.pooling: {pooling!r} is not one of {POOLINGS}")
        if not 0.0 <= head_dropout < 1.0:
            raise ValueError(f"model.head_dropout must lie in [0, 1), got {head_dropout}")
        model_config = self.model.config
        if rc_inference and model_config.vocab != "dna":
            raise ValueError(f"model.rc_inference needs a DNA model (vocab 'dna'), this one has {model_config.vocab!r}")
        self.pooling = pooling
        self.fold = model_config.rc_equivariant
        if rc_inference and self.fold:
            logger.info(
                "rc_inference: the model is reverse-complement equivariant, its predictions are already "
                "invariant; no second pass"
            )
        self.rc_inference = rc_inference and not self.fold
        width = self.model.d_model if self.fold else hidden_width(self.model)
        if self.token_level:
            self.head = TokenHead(width, out_features, dropout=head_dropout)
        else:
            self.head = SequenceHead(width, out_features, dropout=head_dropout, hidden=head_hidden)
        if model_config.vocab == "dna":
            complement = torch.tensor(dna_complement_map(model_config.vocab_size), dtype=torch.long)
            self.register_buffer("complement", complement, persistent=False)
        self.losses = torch.nn.ModuleDict({stage: MeanMetric() for stage in EVAL_STAGES})

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Head outputs of one strand: ``[B, C]`` (``[B, T, C]`` for token tasks)."""
        hidden = self.model(input_ids).hidden  # [B, T, D] or [B, T, 2D]
        if self.fold:
            hidden = fold_strands(hidden)
        if self.token_level:
            return self.head(hidden)
        return self.head(pool(hidden, attention_mask, self.pooling))

    def predict_logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Evaluation outputs: ``forward``, averaged with the reverse complement's when ``rc_inference``."""
        input_ids, mask = batch["input_ids"], batch["attention_mask"]
        out = self(input_ids, mask)
        if not self.rc_inference:
            return out
        rc_ids, index = reverse_complement_padded(input_ids, mask, self.complement)
        out_rc = self(rc_ids, mask)
        if self.token_level:  # bring the reverse strand's positions back to the sequence's
            out_rc = out_rc.gather(1, index.unsqueeze(-1).expand_as(out_rc))
        return (out + out_rc) / 2

    def _log_loss(self, stage: str, loss: torch.Tensor, weight: int) -> None:
        """Log the training loss per step; accumulate an evaluation loss weighted by examples (or positions)."""
        if stage == "train":
            self.log("train/loss", loss.detach(), on_step=True, prog_bar=True, batch_size=weight)
        else:
            self.losses[stage].update(loss.detach(), weight)

    def _log_epoch(self, stage: str) -> None:
        metrics = getattr(self, f"{stage}_metrics")
        values = {f"{stage}/loss": self.losses[stage].compute(), **metrics.compute()}
        self.log_dict(values, prog_bar=stage == "val")
        metrics.reset()
        self.losses[stage].reset()

    def on_validation_epoch_end(self) -> None:
        """Log the validation metrics of the whole epoch."""
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        """Log the test metrics of the whole test set."""
        self._log_epoch("test")


def _classification_metrics(num_classes: int, ignore_index: int | None = None, auroc: bool = True) -> MetricCollection:
    metrics = {
        "accuracy": MulticlassAccuracy(num_classes, average="micro", ignore_index=ignore_index),
        "mcc": MulticlassMatthewsCorrCoef(num_classes, ignore_index=ignore_index),
        "f1": MulticlassF1Score(num_classes, average="macro", ignore_index=ignore_index),
    }
    if auroc:
        metrics["auroc"] = MulticlassAUROC(num_classes, average="macro", ignore_index=ignore_index)
    return MetricCollection(metrics)


class SequenceClassificationTask(_HeadTask):
    """One class per sequence: pooled hidden states -> head -> cross-entropy."""

    def __init__(
        self,
        num_classes: int,
        entry: str | None = None,
        config: ModelConfig | None = None,
        pretrained: bool = False,
        optimizer: OptimizerCallable = _default_optimizer,
        scheduler: LRSchedulerCallable | None = None,
        pooling: Pooling = "mean",
        head_dropout: float = 0.1,
        head_hidden: int | None = None,
        rc_inference: bool = False,
    ):
        """
        Args:
            num_classes: number of classes (>= 2); must match the data module's.
            entry: a zoo entry name (``zoo list``); exclusive with ``config``.
            config: a full model config; exclusive with ``entry``.
            pretrained: start from the entry's published weights.
            optimizer: ``params -> Optimizer``.
            scheduler: ``optimizer -> LRScheduler``, stepped every optimizer step.
            pooling: how hidden states become one vector: ``mean`` / ``max`` over bases, ``last`` base, ``cls``
                (position 0).
            head_dropout: dropout before the head's linear layer(s).
            head_hidden: width of a 2-layer MLP head; None for a linear head.
            rc_inference: average the logits of each sequence and of its reverse complement at val/test/predict.
        """
        if num_classes < 2:
            raise ValueError(f"model.num_classes must be at least 2, got {num_classes}")
        super().__init__(
            entry,
            config,
            pretrained,
            optimizer,
            scheduler,
            num_classes,
            pooling,
            head_dropout,
            head_hidden,
            rc_inference,
        )
        self.num_classes = num_classes
        self.val_metrics = _classification_metrics(num_classes).clone(prefix="val/")
        self.test_metrics = _classification_metrics(num_classes).clone(prefix="test/")

    def setup(self, stage: str) -> None:
        """Check that the data module has as many classes as the head."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        theirs = getattr(datamodule, "num_classes", None)
        if theirs and theirs != self.num_classes:
            raise ValueError(
                f"model.num_classes={self.num_classes} but the data has {theirs} classes "
                f"{list(getattr(datamodule, 'classes', []))}"
            )

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        labels = batch["labels"]
        logits = self(batch["input_ids"], batch["attention_mask"]) if stage == "train" else self.predict_logits(batch)
        loss = F.cross_entropy(logits.float(), labels)
        self._log_loss(stage, loss, labels.shape[0])
        if stage != "train":
            getattr(self, f"{stage}_metrics").update(logits.float().softmax(-1), labels)
        return loss

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Class probabilities ``[B, C]``."""
        return self.predict_logits(batch).float().softmax(-1)


class SequenceRegressionTask(_HeadTask):
    """One value per sequence: pooled hidden states -> head -> MSE on standardised targets."""

    def __init__(
        self,
        entry: str | None = None,
        config: ModelConfig | None = None,
        pretrained: bool = False,
        optimizer: OptimizerCallable = _default_optimizer,
        scheduler: LRSchedulerCallable | None = None,
        pooling: Pooling = "mean",
        head_dropout: float = 0.1,
        head_hidden: int | None = None,
        rc_inference: bool = False,
    ):
        """
        Args:
            entry: a zoo entry name (``zoo list``); exclusive with ``config``.
            config: a full model config; exclusive with ``entry``.
            pretrained: start from the entry's published weights.
            optimizer: ``params -> Optimizer``.
            scheduler: ``optimizer -> LRScheduler``, stepped every optimizer step.
            pooling: ``mean`` / ``max`` over bases, ``last`` base, ``cls`` (position 0).
            head_dropout: dropout before the head's linear layer(s).
            head_hidden: width of a 2-layer MLP head; None for a linear head.
            rc_inference: average the values of each sequence and of its reverse complement at val/test/predict.
        """
        super().__init__(
            entry, config, pretrained, optimizer, scheduler, 1, pooling, head_dropout, head_hidden, rc_inference
        )
        # Persistent buffers: a checkpoint restores the scale its predictions are on.
        self.register_buffer("label_mean", torch.zeros(()))
        self.register_buffer("label_std", torch.ones(()))
        metrics = MetricCollection(
            {"spearman": SpearmanCorrCoef(), "pearson": PearsonCorrCoef(), "mse": MeanSquaredError()}
        )
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")

    def setup(self, stage: str) -> None:
        """At the start of fitting, take the target scale from the data module (``label_mean``/``label_std``)."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        mean, std = getattr(datamodule, "label_mean", None), getattr(datamodule, "label_std", None)
        if stage == "fit" and mean is not None and std is not None:
            self.label_mean.fill_(float(mean))
            self.label_std.fill_(float(std))

    def predict_values(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Predictions ``[B]`` on the original scale of the labels."""
        return self.predict_logits(batch).float().squeeze(-1) * self.label_std + self.label_mean

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        labels = batch["labels"].float()
        target = (labels - self.label_mean) / self.label_std
        if stage == "train":
            standardised = self(batch["input_ids"], batch["attention_mask"]).float().squeeze(-1)
        else:
            standardised = self.predict_logits(batch).float().squeeze(-1)
        loss = F.mse_loss(standardised, target)
        self._log_loss(stage, loss, labels.shape[0])
        if stage != "train":
            getattr(self, f"{stage}_metrics").update(standardised * self.label_std + self.label_mean, labels)
        return loss

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Predicted values ``[B]`` on the labels' scale."""
        return self.predict_values(batch)


class TokenClassificationTask(_HeadTask):
    """One class per position: hidden states -> per-position head -> cross-entropy over labelled positions."""

    token_level = True

    def __init__(
        self,
        num_classes: int,
        entry: str | None = None,
        config: ModelConfig | None = None,
        pretrained: bool = False,
        optimizer: OptimizerCallable = _default_optimizer,
        scheduler: LRSchedulerCallable | None = None,
        head_dropout: float = 0.1,
        rc_inference: bool = False,
    ):
        """
        Args:
            num_classes: number of classes per position (>= 2).
            entry: a zoo entry name (``zoo list``); exclusive with ``config``.
            config: a full model config; exclusive with ``entry``.
            pretrained: start from the entry's published weights.
            optimizer: ``params -> Optimizer``.
            scheduler: ``optimizer -> LRScheduler``, stepped every optimizer step.
            head_dropout: dropout before the per-position linear layer.
            rc_inference: average each position's logits with those of the same base read on the reverse
                complement (for strand-symmetric labels only, e.g. "inside an exon").
        """
        if num_classes < 2:
            raise ValueError(f"model.num_classes must be at least 2, got {num_classes}")
        super().__init__(
            entry, config, pretrained, optimizer, scheduler, num_classes, "mean", head_dropout, None, rc_inference
        )
        self.num_classes = num_classes
        # No AUROC per position: it keeps every prediction of the epoch (millions of bases) in memory.
        self.val_metrics = _classification_metrics(num_classes, IGNORE_INDEX, auroc=False).clone(prefix="val/")
        self.test_metrics = _classification_metrics(num_classes, IGNORE_INDEX, auroc=False).clone(prefix="test/")

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        labels = batch["labels"].masked_fill(~batch["attention_mask"], IGNORE_INDEX)  # [B, T]
        if (labels == IGNORE_INDEX).all():
            raise ValueError("a batch has no labelled positions (every label is -100 or padding)")
        logits = self(batch["input_ids"], batch["attention_mask"]) if stage == "train" else self.predict_logits(batch)
        loss = F.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=IGNORE_INDEX)
        # The epoch loss is the mean over labelled positions, not over batches.
        self._log_loss(stage, loss, int((labels != IGNORE_INDEX).sum()))
        if stage != "train":
            getattr(self, f"{stage}_metrics").update(logits.float().flatten(0, 1), labels.flatten())
        return loss

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Per-position class probabilities ``[B, T, C]``."""
        return self.predict_logits(batch).float().softmax(-1)
