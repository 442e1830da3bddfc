"""ForecastingTask: masked losses, learning on every backbone family, metrics, checkpoints, recipe errors."""

import math

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from zoo.backbone import BackboneConfig, MixerConfigs
from zoo.domains.forecasting.task import ForecastingTask, masked_mae, masked_mse, masked_pinball
from zoo.layers.attention import AttentionConfig
from zoo.layers.hyena import HyenaConfig
from zoo.layers.mamba2 import Mamba2Config
from zoo.layers.mlstm import MLSTMConfig
from zoo.layers.slstm import SLSTMConfig
from zoo.model import ModelConfig
from zoo.training.task import CHECKPOINT_KEY, RecipeError

L, H, C = 32, 8, 2
MIXERS = MixerConfigs(
    attention=AttentionConfig(num_heads=2, causal=False, rotary=False),
    hyena=HyenaConfig(l_max=32, filter_order=16),
    mamba2=Mamba2Config(d_state=8, headdim=8, chunk_size=16),
    mlstm=MLSTMConfig(num_heads=2),
    slstm=SLSTMConfig(num_heads=2),
)
#: One tiny backbone per family of the forecasting entries (same letters as their patterns).
FAMILIES = {"hyena": "H", "mamba2": "S", "xlstm": "ms", "attention": "A", "hybrid": "SA"}


# tiny matrices: one intra-op thread (the one_thread fixture of tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(pattern: str) -> ModelConfig:
    return ModelConfig(vocab=None, max_seq_len=64, backbone=BackboneConfig(d_model=16, pattern=pattern, mixers=MIXERS))


def task(pattern="A", **kwargs) -> ForecastingTask:
    settings = dict(seq_len=L, pred_len=H, num_channels=C, patch_len=8, stride=4, dropout=0.0)
    settings.update(kwargs)
    torch.manual_seed(0)
    return ForecastingTask(config=tiny(pattern), **settings)


def sines(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows of sines (periods 8 and 12, random phase, amplitude 2, offset 1): look-back and horizon."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(L + H).float()
    phase = torch.rand(n, 1, C, generator=g) * 2 * math.pi
    s = 2 * torch.sin(2 * math.pi * t[None, :, None] / torch.tensor([8.0, 12.0]) + phase) + 1
    return s[:, :L], s[:, L:]


def test_masked_losses_skip_missing_targets():
    pred = torch.randn(2, 3, 4)
    target = torch.randn(2, 3, 4)
    target[0, 1, 2] = target[1, 0, :] = float("nan")
    kept = ~torch.isnan(target)
    torch.testing.assert_close(masked_mse(pred, target), ((pred - target)[kept] ** 2).mean())
    torch.testing.assert_close(masked_mae(pred, target), (pred - target)[kept].abs().mean())
    all_missing = torch.full_like(target, float("nan"))
    pred.requires_grad_(True)
    loss = masked_mse(pred, all_missing)
    loss.backward()
    assert loss == 0 and torch.equal(pred.grad, torch.zeros_like(pred)), "no target: zero loss, zero gradient"


def test_masked_pinball_matches_its_definition():
    levels = (0.1, 0.5, 0.9)
    target = torch.tensor([[1.0, float("nan"), -2.0]])
    pred = torch.tensor([[[0.0, 1.0, 3.0], [9.0, 9.0, 9.0], [-2.0, -2.0, -1.0]]])
    # by hand: under-prediction costs q * error, over-prediction (1 - q) * |error|
    first = 0.1 * 1 + 0 + 0.1 * 2  # target 1: predictions 0 (under), 1 (exact), 3 (over by 2)
    third = 0 + 0 + 0.1 * 1  # target -2: exact, exact, over by 1 at q=0.9
    torch.testing.assert_close(masked_pinball(pred, target, levels), torch.tensor((first + third) / 6))
    loss_sorted = masked_pinball(pred.sort(-1).values, target, levels)
    crossed = masked_pinball(pred.flip(-1), target, levels)
    assert loss_sorted <= crossed, "rearranging crossed quantiles never raises the pinball loss"


def test_loss_must_fit_the_head():
    with pytest.raises(
        RecipeError, match=r"model.loss: 'pinball' does not fit a 'point' head; use one of \('mse', 'mae'\)"
    ):
        task(loss="pinball")
    with pytest.raises(RecipeError, match=r"model\.loss: 'mse' does not fit a 'quantile' head"):
        task(head="quantile")
    with pytest.raises(RecipeError, match="model: seq_len=32 is shorter than patch_len=64"):
        task(patch_len=64)
    with pytest.raises(RecipeError, match=r"model\.entry / model\.config: give exactly one"):
        ForecastingTask()


@pytest.mark.parametrize("family", list(FAMILIES))
def test_training_learns_a_sine_on_every_backbone_family(family):
    model = task(FAMILIES[family], optimizer=lambda params: torch.optim.Adam(params, lr=3e-3))
    optimizer = model.configure_optimizers()
    x_val, y_val = sines(64, seed=1)
    with torch.no_grad():
        before = model.loss(model(x_val), y_val).item()
    for step in range(30):
        x, y = sines(32, seed=100 + step)
        loss = model.loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = model.loss(model.eval()(x_val), y_val).item()
    # predicting each series' mean scores 2.0 (the sine's variance); 30 steps must get well below it
    assert after < 0.2 and after < before / 5, f"{family}: held-out MSE {before:.3f} -> {after:.3f}"


def _loaders(missing: bool):
    x, y = sines(24, seed=7)
    if missing:
        y[0, :3, 1] = float("nan")
        y[5, :, :] = float("nan")
        x[2, 4:9, 0] = float("nan")
    return DataLoader(TensorDataset(x, y), batch_size=8), x, y


def _trainer(tmp_path, **kwargs):
    return pl.Trainer(
        accelerator="cpu",
        default_root_dir=tmp_path,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )


@pytest.mark.parametrize("head", ["point", "quantile"])
def test_metrics_are_masked_means_over_the_whole_set(tmp_path, head):
    loss = "pinball" if head == "quantile" else "mae"
    model = task(head=head, loss=loss, quantiles=(0.2, 0.5, 0.8))
    loader, x, y = _loaders(missing=True)
    trainer = _trainer(tmp_path, max_steps=2, num_sanity_val_steps=0)
    trainer.fit(model, train_dataloaders=loader, val_dataloaders=loader)
    (val,) = trainer.validate(model, loader, verbose=False)
    (test,) = trainer.test(model, loader, verbose=False)
    with torch.no_grad():
        output = model.eval()(x)
        point = model.model.point_forecast(output)
    kept = ~torch.isnan(y)
    assert set(val) == {"val/loss", "val/mse", "val/mae"} and set(test) == {"test/loss", "test/mse", "test/mae"}
    for stage in (val, test):
        prefix = "val" if stage is val else "test"
        assert stage[f"{prefix}/mse"] == pytest.approx(((point - y)[kept] ** 2).mean().item(), rel=1e-5)
        assert stage[f"{prefix}/mae"] == pytest.approx((point - y)[kept].abs().mean().item(), rel=1e-5)
        assert stage[f"{prefix}/loss"] == pytest.approx(model.loss(output, y).item(), rel=1e-4)
    predictions = torch.cat(trainer.predict(model, loader))
    torch.testing.assert_close(predictions, output)
    assert predictions.shape == ((24, H, C, 3) if head == "quantile" else (24, H, C))


def test_checkpoint_round_trip_rebuilds_the_model(tmp_path):
    model = task("SA", channel_mode="mixing", head="quantile", loss="pinball", quantiles=(0.1, 0.5, 0.9))
    loader, x, _ = _loaders(missing=False)
    trainer = _trainer(tmp_path, max_steps=1, num_sanity_val_steps=0)
    trainer.fit(model, train_dataloaders=loader)
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)  # no pickled classes in it
    record = checkpoint[CHECKPOINT_KEY]
    assert record["model_config"]["backbone"]["pattern"] == "SA" and record["backbone_prefix"] == "model.backbone."
    assert record["forecaster"]["channel_mode"] == "mixing" and record["task"].endswith("ForecastingTask")
    restored = ForecastingTask.load_from_checkpoint(path, map_location="cpu")
    with torch.no_grad():
        torch.testing.assert_close(restored.eval()(x), model.eval()(x))


class _Windows(pl.LightningDataModule):
    seq_len, pred_len, num_channels = L, H, 3


class _ProtocolWindows(pl.LightningDataModule):
    """Names the channel count ``n_channels``, as ``LongHorizonDataModule`` does."""

    seq_len, pred_len, n_channels = L, H, 3


@pytest.mark.parametrize("datamodule", [_Windows, _ProtocolWindows])
def test_setup_rejects_a_data_module_of_another_shape(tmp_path, datamodule):
    trainer = _trainer(tmp_path, max_steps=1)
    with pytest.raises(RecipeError, match=r"model\.num_channels=2 but the data module has num_channels=3"):
        trainer.fit(task(), datamodule=datamodule())


def test_batch_errors():
    model = task()
    x, y = sines(4, seed=0)
    with pytest.raises(ValueError, match=r"y has shape \(4, 7, 2\), expected \[B, pred_len, C\] = \[4, 8, 2\]"):
        model._step((x, y[:, :7]), "val")
    with pytest.raises(ValueError, match=r"a forecasting batch is \(x \[B, L, C\], y \[B, H, C\]\)"):
        model._step(x, "val")
