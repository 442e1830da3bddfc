"""``ZooCLI``: LightningCLI with seqzoo's defaults — the engine behind ``zoo fit|validate|test|predict``.

Forced but configurable: a ``ModelCheckpoint`` (``--checkpoint.*``, ``save_last`` on) and a
``LearningRateMonitor`` (``--lr_monitor.*``). Defaults: a Rich progress bar, a CSV logger under
``lightning_logs/`` (plus TensorBoard when it is installed), atomic checkpoint files, seed 0,
deterministic algorithms. Recipes are any LightningCLI YAML; ``--config recipe://domain/entry/stage``
reads one shipped inside the package, and later flags override it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import warnings

from jsonargparse import lazy_instance
from lightning.pytorch import LightningDataModule, Trainer
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, ProgressBar, RichProgressBar
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.plugins.io import CheckpointIO

from zoo.training.checkpoint import AtomicCheckpointIO
from zoo.training.recipes import resolve_config_args
from zoo.training.task import RecipeError, SeqTask

LOG_ROOT = "lightning_logs"


class ZooCLI(LightningCLI):
    """LightningCLI over any ``SeqTask`` subclass and any ``LightningDataModule``."""

    def __init__(self, args: list[str] | None = None, run: bool = True, **kwargs):
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        kwargs.setdefault(
            "trainer_defaults",
            {
                "callbacks": [RichProgressBar(leave=True)],
                "logger": lazy_instance(CSVLogger, save_dir=".", name=LOG_ROOT),
                "deterministic": True,
            },
        )
        with warnings.catch_warnings():
            # Programmatic args are the whole command; sys.argv then belongs to the caller (`zoo demo`, pytest).
            warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
            super().__init__(
                SeqTask,
                LightningDataModule,
                subclass_mode_model=True,
                subclass_mode_data=True,
                seed_everything_default=0,
                args=args,
                run=run,
                **kwargs,
            )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """The forced callbacks, each configurable under its own key."""
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True})
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.set_defaults({"lr_monitor.logging_interval": "step"})

    def instantiate_classes(self) -> None:
        """Build model, data and trainer; a bad value surfaces as ``RecipeError`` before any training."""
        try:
            super().instantiate_classes()
        except RecipeError:
            raise
        except (ValueError, TypeError, FileNotFoundError) as err:
            raise RecipeError(f"the recipe could not be built: {err}") from err

    def _instantiate_trainer(self, config: dict, callbacks: list) -> Trainer:
        plugins = config.get("plugins") or []
        plugins = list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
        if not any(isinstance(p, CheckpointIO) for p in plugins):
            plugins.append(AtomicCheckpointIO())
        if config.get("enable_progress_bar") is False:
            # Lightning refuses `--trainer.enable_progress_bar false` beside our default Rich bar: drop it.
            defaults = self.trainer_defaults.get("callbacks") or []
            self.trainer_defaults["callbacks"] = [c for c in defaults if not isinstance(c, ProgressBar)]
        return super()._instantiate_trainer({**config, "plugins": plugins}, callbacks)

    def instantiate_trainer(self, **kwargs) -> Trainer:
        """The trainer, with a TensorBoard logger writing beside the CSV one when tensorboard is installed."""
        trainer = super().instantiate_trainer(**kwargs)
        csv = trainer.logger
        if isinstance(csv, CSVLogger) and len(trainer.loggers) == 1 and _tensorboard_installed():
            tensorboard = TensorBoardLogger(save_dir=csv.save_dir, name=csv.name, version=csv.version)
            trainer.loggers = [csv, tensorboard]
        return trainer


def _tensorboard_installed() -> bool:
    return any(importlib.util.find_spec(name) is not None for name in ("tensorboard", "tensorboardX"))


def run_lightning(argv: list[str]) -> None:
    """Run ``zoo fit|validate|test|predict ARGS`` (``argv`` starts with the subcommand)."""
    with contextlib.ExitStack() as stack:
        # LightningCLI reads sys.argv, and so do Lightning's DDP launchers, which start the other ranks by
        # re-running this very command: both must see the recipe as a real file path.
        saved, sys.argv = sys.argv, [sys.argv[0], *resolve_config_args(argv, stack)]
        try:
            ZooCLI()
        finally:
            sys.argv = saved
