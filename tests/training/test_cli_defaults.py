"""ZooCLI's defaults: forced checkpoint + LR monitor, Rich bar, CSV (+ TensorBoard) logging, atomic I/O."""

import pytest
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from zoo.training.checkpoint import AtomicCheckpointIO
from zoo.training.cli import ZooCLI
from zoo.training.recipes import recipe_file


def debug_cli(tmp_path, *flags: str) -> ZooCLI:
    """ZooCLI built (not run) from the genomics debug recipe, logging under ``tmp_path``, plus ``flags``."""
    recipe = str(recipe_file("debug/genomics-causal"))
    return ZooCLI(args=["--config", recipe, "--trainer.logger.init_args.save_dir", str(tmp_path), *flags], run=False)


@pytest.fixture
def cli(tmp_path):
    return debug_cli(tmp_path, "--checkpoint.every_n_train_steps", "7")


def test_forced_callbacks_are_present_and_configurable(cli):
    callbacks = cli.trainer.callbacks
    (checkpoint,) = [c for c in callbacks if isinstance(c, ModelCheckpoint)]
    assert checkpoint.save_last is True and checkpoint._every_n_train_steps == 7
    assert any(isinstance(c, LearningRateMonitor) and c.logging_interval == "step" for c in callbacks)
    assert any(isinstance(c, RichProgressBar) for c in callbacks)


def test_csv_and_tensorboard_log_into_one_run_folder(cli, tmp_path):
    csv, tensorboard = cli.trainer.loggers
    assert isinstance(csv, CSVLogger) and isinstance(tensorboard, TensorBoardLogger)
    assert csv.log_dir == tensorboard.log_dir and csv.log_dir.startswith(str(tmp_path))


def test_checkpoints_are_written_atomically(cli, tmp_path):
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    cli.trainer.strategy.checkpoint_io.save_checkpoint({"step": 1}, tmp_path / "a.ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ckpt"], "no temporary file is left behind"


def test_deterministic_and_seeded_by_default(cli):
    assert cli.config["seed_everything"] == 0
    assert cli.config["trainer"]["deterministic"] is True


def test_the_progress_bar_can_be_turned_off(tmp_path):
    # Lightning refuses enable_progress_bar=False beside a progress-bar callback: the default Rich bar goes
    cli = debug_cli(tmp_path, "--trainer.enable_progress_bar", "false")
    assert cli.trainer.progress_bar_callback is None
    assert not any(isinstance(c, RichProgressBar) for c in cli.trainer.callbacks)
