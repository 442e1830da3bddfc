"""``SeqTask``: the LightningModule every training recipe builds — a zoo model + head + loss + metrics.

The model comes from a registry entry (``entry: hyenadna-tiny``) or a full ``ModelConfig`` written in
the recipe; both are validated by LightningCLI before anything trains. Optimizer and scheduler are
callables configured in YAML (``class_path`` + ``init_args``), as LightningCLI documents.
Subclasses (``LanguageModelTask``, the domains' classification / regression tasks) add the head, the
loss and the metrics.
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable

from zoo.config import to_dict
from zoo.model import ModelConfig, SeqModel
from zoo.registry import UnknownModelError

#: Key under which a checkpoint records how to rebuild the model without the recipe (``zoo export``).
CHECKPOINT_KEY = "seqzoo"


class RecipeError(ValueError):
    """A recipe value is wrong; the message starts with the offending key."""


def _default_optimizer(params) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.1)


class SeqTask(pl.LightningModule):
    """Base task: builds ``self.model`` (a ``SeqModel``) and the optimizer; subclasses add the rest."""

    def __init__(
        self,
        entry: str | None = None,
        config: ModelConfig | None = None,
        pretrained: bool = False,
        optimizer: OptimizerCallable = _default_optimizer,
        scheduler: LRSchedulerCallable | None = None,
    ):
        """
        Args:
            entry: a zoo entry name (``zoo list``); exclusive with ``config``.
            config: a full model config; exclusive with ``entry``.
            pretrained: start from the entry's published weights (``zoo.load(entry, pretrained=True)``).
            optimizer: ``params -> Optimizer``; parameters of norms, biases and embeddings get no weight decay.
            scheduler: ``optimizer -> LRScheduler``, stepped every optimizer step.
        """
        super().__init__()
        self.entry = entry
        self.base_model = base_model_of(entry) if pretrained else None
        self.model = build_model(entry, config, pretrained)
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        """The loss of ``batch``; at ``val`` / ``test`` also accumulates that stage's metrics (each task defines it)."""
        raise NotImplementedError(f"{type(self).__name__} must define _step(batch, stage)")

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """The loss of a training batch."""
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Accumulate validation loss and metrics."""
        self._step(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        """Accumulate test loss and metrics."""
        self._step(batch, "test")

    def configure_model(self) -> None:
        """Under ``ModelParallelStrategy`` (FSDP2) shard each block, then the rest, over the data-parallel mesh.

        Each residual block is one ``fully_shard`` unit so only one block's full parameters exist at a
        time; the root unit holds the embeddings and the (tied) LM head together.
        """
        if self.device_mesh is None:  # any other strategy
            return
        from torch.distributed.fsdp import fully_shard

        mesh = self.device_mesh["data_parallel"]
        for block in self.model.backbone.layers:
            fully_shard(block, mesh=mesh)
        fully_shard(self.model, mesh=mesh)

    def configure_optimizers(self) -> Any:
        """The recipe's optimizer over two parameter groups (decayed matrices, undecayed rest)."""
        decay, no_decay = [], []
        for param in self.parameters():
            if param.requires_grad:
                # Matrices are decayed; vectors (norm scales, biases, SSM A/D, filter frequencies) are not.
                (decay if param.ndim >= 2 and param is not self._embedding_weight() else no_decay).append(param)
        optimizer = self.optimizer_factory([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}])
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _embedding_weight(self) -> torch.Tensor | None:
        embeddings = self.model.backbone.embeddings
        return None if embeddings is None else embeddings.weight

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Record the model config so ``zoo export`` rebuilds the model from the checkpoint alone."""
        checkpoint[CHECKPOINT_KEY] = {
            "model_config": to_dict(self.model.config),
            "entry": self.entry,
            "task": f"{type(self).__module__}.{type(self).__qualname__}",
            # the card of an exported fine-tune names the weights it started from
            "base_model": self.base_model,
        }


def base_model_of(entry: str | None) -> str | None:
    """Hub repo id of the published weights an entry loads (None without an entry or weights); a card's
    ``base_model`` is a plain repo id."""
    from zoo.registry import get_entry

    if entry is None:
        return None
    try:
        weights = get_entry(entry).weights
    except UnknownModelError:
        return None  # build_model reports the unknown entry
    return None if weights is None else weights.repo_id


def build_model(entry: str | None, config: ModelConfig | None, pretrained: bool) -> SeqModel:
    """The ``SeqModel`` a recipe asks for; wrong combinations raise ``RecipeError`` naming the key."""
    import zoo

    if (entry is None) == (config is None):
        raise RecipeError("model.entry / model.config: give exactly one (an entry name or a full model config)")
    if config is not None:
        if pretrained:
            raise RecipeError("model.pretrained: pretrained weights need model.entry, not a custom model.config")
        return SeqModel(config)
    try:
        return zoo.load(entry, pretrained=pretrained)
    except UnknownModelError as err:
        raise RecipeError(f"model.entry: {err}") from None
    except (ValueError, NotImplementedError) as err:  # pretrained weights that do not exist (yet)
        raise RecipeError(f"model.pretrained: {err}") from None
