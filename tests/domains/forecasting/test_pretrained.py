"""Forecaster snapshots: a trained run exported with ``zoo export`` loads back as the backbone, the whole
forecaster and a pandas Forecaster that reproduces the run's own forecasts."""

import math

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from lightning.pytorch.loggers import CSVLogger

import zoo
from zoo.backbone import BackboneConfig, MixerConfigs
from zoo.domains.forecasting.forecaster import Forecaster
from zoo.domains.forecasting.pretrained import load_forecaster
from zoo.domains.forecasting.protocol import LongHorizonDataModule
from zoo.domains.forecasting.task import ForecastingTask
from zoo.export import export_checkpoint
from zoo.io import save_pretrained
from zoo.layers.attention import AttentionConfig
from zoo.model import ModelConfig, SeqModel

L, H = 32, 8
CHANNELS = ["load", "temp", "wind"]


def wide_csv(path, rows=400):
    """Three hourly series (sines of periods 24 and 12 with offsets and noise)."""
    t = np.arange(rows)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"date": pd.date_range("2024-01-01", periods=rows, freq="h")})
    for i, name in enumerate(CHANNELS):
        frame[name] = 10 * i + (i + 1) * np.sin(2 * math.pi * t / (24 / (i % 2 + 1))) + 0.1 * rng.normal(size=rows)
    frame.to_csv(path, index=False)
    return frame


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A two-step training run laid out as ``zoo fit`` writes it, tested with ``zoo test``'s metrics."""
    root = tmp_path_factory.mktemp("run")
    frame = wide_csv(root / "series.csv")
    mixers = MixerConfigs(attention=AttentionConfig(num_heads=2, causal=False))
    config = ModelConfig(vocab=None, max_seq_len=16, backbone=BackboneConfig(d_model=16, pattern="A", mixers=mixers))
    data_args = dict(path=str(root / "series.csv"), seq_len=L, pred_len=H, batch_size=8)
    torch.manual_seed(0)
    task = ForecastingTask(config=config, seq_len=L, pred_len=H, num_channels=3, patch_len=8, stride=4)
    logger = CSVLogger(str(root), name="logs", version=0)
    trainer = pl.Trainer(max_steps=2, logger=logger, enable_progress_bar=False, enable_model_summary=False,
                         limit_val_batches=1, default_root_dir=str(root))  # fmt: skip
    data = LongHorizonDataModule(**data_args)
    trainer.fit(task, datamodule=data)
    trainer.test(task, datamodule=data, verbose=False)
    run_dir = root / "logs" / "version_0"
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    # the resolved config LightningCLI writes beside the checkpoints
    run_config = {"data": {"class_path": "zoo.domains.forecasting.protocol.LongHorizonDataModule",
                           "init_args": data_args}, "seed_everything": 0}  # fmt: skip
    (run_dir / "config.yaml").write_text(yaml.safe_dump(run_config))
    folder = export_checkpoint(run_dir / "checkpoints" / "last.ckpt", root / "snapshot")
    return task.eval(), data, frame, folder


def test_the_snapshot_holds_the_whole_forecaster(run):
    task, data, _, folder = run
    module, section = load_forecaster(f"local-dir:{folder}")
    x = torch.as_tensor(np.array(data.splits.windows("test").x[:16]))
    with torch.no_grad():
        torch.testing.assert_close(module(x), task(x), rtol=0, atol=0)
    assert section["data"]["channels"] == CHANNELS
    np.testing.assert_allclose(section["data"]["mean"], data.splits.stats.mean)
    np.testing.assert_allclose(section["data"]["std"], data.splits.stats.std)
    assert section["settings"]["pred_len"] == H and section["data"]["freq"] == "h"


def test_zoo_load_gives_the_trained_backbone(run):
    task, _, _, folder = run
    backbone = zoo.load(f"local-dir:{folder}")
    assert isinstance(backbone, SeqModel)
    for key, value in task.model.backbone.state_dict().items():
        torch.testing.assert_close(backbone.state_dict()[key], value, rtol=0, atol=0)


def test_the_card_reports_the_runs_test_metrics(run):
    *_, folder = run
    card = (folder / "README.md").read_text()
    assert "type: mse" in card and "Forecaster.from_pretrained" in card
    assert "time-series-forecasting" in card


def test_from_pretrained_forecasts_raw_values_as_the_run_would(run):
    task, data, frame, folder = run
    forecaster = Forecaster.from_pretrained(f"local-dir:{folder}")
    history = frame.iloc[100 : 100 + L]
    long = history.melt(id_vars="date", var_name="unique_id", value_name="y").rename(columns={"date": "ds"})
    forecast = forecaster.predict(long.sample(frac=1.0, random_state=0))  # any row and series order
    # by hand: z-score with the train statistics, the run's model, back to raw values
    stats = data.splits.stats
    x = torch.as_tensor(((history[CHANNELS].to_numpy() - stats.mean) / stats.std)[None], dtype=torch.float32)
    with torch.no_grad():
        expected = task(x)[0].numpy() * stats.std + stats.mean  # [H, C]
    for i, name in enumerate(CHANNELS):
        rows = forecast[forecast["unique_id"] == name]
        np.testing.assert_allclose(rows[forecaster.alias].to_numpy(), expected[:, i], rtol=1e-5, atol=1e-5)
        assert rows["ds"].iloc[0] == history["date"].iloc[-1] + pd.Timedelta(hours=1)


def test_from_pretrained_errors_name_the_problem(run, tmp_path):
    *_, frame, folder = run
    forecaster = Forecaster.from_pretrained(f"local-dir:{folder}")
    with pytest.raises(ValueError, match="has no history of its own"):
        forecaster.predict()
    long = frame.iloc[:L].melt(id_vars="date", var_name="unique_id", value_name="y").rename(columns={"date": "ds"})
    with pytest.raises(ValueError, match=r"lacks \['wind'\]"):
        forecaster.predict(long[long["unique_id"] != "wind"])
    bare = save_pretrained(SeqModel(ModelConfig(vocab=None, max_seq_len=16)), tmp_path / "bare")
    with pytest.raises(ValueError, match="holds a bare backbone, not a forecaster"):
        load_forecaster(f"local-dir:{bare}")


@pytest.mark.data
def test_the_shipped_etth1_forecaster_scores_what_its_card_reports():
    """The bundled attn-ts-small, through the pandas API on raw ETTh1 rows, reproduces its card's test MSE."""
    from huggingface_hub import ModelCard

    from zoo.api import bundled_snapshot
    from zoo.domains.forecasting.datasets import load_dataset
    from zoo.domains.forecasting.protocol import LongHorizonSplits

    forecaster = Forecaster.from_pretrained("attn-ts-small")
    card = ModelCard.load(bundled_snapshot("attn-ts-small") / "README.md")
    reported = {m.metric_type: m.metric_value for m in card.data.eval_results}
    wide = load_dataset("etth1")
    splits = LongHorizonSplits(wide, 96, 96, split="ett-hourly")
    start = splits.borders["test"][0]
    windows = np.array(splits.windows("test").x)
    with torch.no_grad():  # every test window at once through the wrapped model, on the protocol's scale
        scaled = torch.cat([forecaster.task(x) for x in torch.as_tensor(windows).split(512)]).numpy()
    assert np.mean((scaled - splits.windows("test").y) ** 2) == pytest.approx(reported["mse"], rel=1e-5)
    history = wide.iloc[start : start + 96]  # and the first window through predict(df) on raw values
    long = history.melt(id_vars="date", var_name="unique_id", value_name="y").rename(columns={"date": "ds"})
    forecast = forecaster.predict(long).pivot(index="ds", columns="unique_id", values=forecaster.alias)
    np.testing.assert_allclose((forecast[splits.channels].to_numpy() - splits.stats.mean) / splits.stats.std,
                               scaled[0], rtol=1e-4, atol=1e-4)  # fmt: skip
