"""``LanguageModelTask``: next-token (causal) or masked-token training of a zoo model.

Batches are dicts ``{"input_ids": [B, T] long, "labels": [B, T] long}`` with ``-100`` where no loss is
taken; the data module decides the objective (shifted windows for causal, masked positions for MLM),
so one task serves DNA and protein. Metrics are token-weighted over the whole evaluation set:
``loss`` (nats per token), ``bits_per_token`` (bits per base for nucleotide models) and ``accuracy``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric

from zoo.training.task import SeqTask

IGNORE_INDEX = -100
STAGES = ("train", "val", "test")


def _per_stage() -> torch.nn.ModuleDict:
    # ModuleDict keys may not shadow nn.Module attributes such as ``train``, hence the ``_`` suffix.
    return torch.nn.ModuleDict({f"{stage}_": MeanMetric() for stage in STAGES})


class LanguageModelTask(SeqTask):
    """Cross-entropy over labelled positions, with token-weighted loss / bits / accuracy metrics."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.model.lm_head is None:
            raise ValueError("model: a language model needs a vocabulary (config.vocab 'dna' or 'protein')")
        # One metric object per stage and quantity: torchmetrics keeps their states apart and syncs them under DDP.
        self.nats, self.hits = _per_stage(), _per_stage()

    def token_losses(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-position loss in nats ``[B, T]`` (0 where unlabelled) and correctness ``[B, T]`` bool."""
        labels = batch["labels"]
        logits = self.model(batch["input_ids"]).logits.float()  # [B, T, V]
        losses = F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE_INDEX, reduction="none")
        return losses, logits.argmax(-1) == labels

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        losses, correct = self.token_losses(batch)
        mask = batch["labels"] != IGNORE_INDEX
        n_tokens = mask.sum()
        if n_tokens == 0:
            raise ValueError("a batch has no labelled positions (every label is -100)")
        loss = losses.sum() / n_tokens
        # Calling the metric (not .update) also sets the per-step value Lightning logs for training.
        self.nats[f"{stage}_"](loss.detach(), n_tokens)
        self.hits[f"{stage}_"](correct[mask].float().mean(), n_tokens)
        on_step = stage == "train"
        batch_size = batch["input_ids"].shape[0]
        self.log(
            f"{stage}/loss",
            self.nats[f"{stage}_"],
            on_step=on_step,
            on_epoch=True,
            prog_bar=True,
            batch_size=batch_size,
        )
        self.log(f"{stage}/accuracy", self.hits[f"{stage}_"], on_step=False, on_epoch=True, batch_size=batch_size)
        return loss

    def on_validation_epoch_end(self) -> None:
        """Log bits per token from the epoch's token-weighted loss."""
        self.log("val/bits_per_token", self.nats["val_"].compute() / math.log(2))

    def on_test_epoch_end(self) -> None:
        """Log bits per token from the epoch's token-weighted loss."""
        self.log("test/bits_per_token", self.nats["test_"].compute() / math.log(2))
