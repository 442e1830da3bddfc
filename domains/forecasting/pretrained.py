"""Trained forecasters as Hub snapshots: export a ``ForecastingTask`` checkpoint, load it back ready to forecast.

A snapshot is the usual seqzoo folder (``config.json``, ``model.safetensors``, ``README.md``; see ``zoo.io``)
holding the whole ``PatchForecaster``. Its ``config.json`` ``task`` section (kind ``forecasting``) keeps the
forecaster's settings and the training data's description: channel names, the train-split mean and standard
deviation of each channel (the protocol's z-score), the frequency and the dataset. So:

* ``zoo.load(name)`` returns the backbone alone (to fine-tune it in another forecaster);
* ``load_forecaster(name)`` returns the ``PatchForecaster``: z-scored windows ``[B, L, C]`` in, forecasts out;
* ``Forecaster.from_pretrained(name)`` wraps it in the pandas API (raw values in and out, scaled with the
  stored training statistics).

``name`` is anything ``zoo.load`` takes: an entry with shipped or published weights, ``hf-hub:ORG/NAME@REV`` or
``local-dir:PATH``. ``zoo export CKPT OUT`` on a forecasting checkpoint writes such a folder (``export_forecaster``).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import safetensors.torch
import torch

from zoo.config import from_dict
from zoo.io import CONFIG_NAME, WEIGHTS_NAME, read_config, read_task, save_task_model
from zoo.model import ModelConfig

TASK_KIND = "forecasting"
BACKBONE_PREFIX = "backbone."


def _model_settings(saved: dict) -> dict:
    """The ``PatchForecaster`` arguments among a checkpoint's saved hyperparameters (loss, optimizer, ... are
    training settings, not part of the model)."""
    from zoo.domains.forecasting.model import PatchForecaster

    accepted = set(inspect.signature(PatchForecaster).parameters) - {"backbone", "pretrained"}
    settings = {key: value for key, value in saved.items() if key in accepted}
    if "quantiles" in settings:
        settings["quantiles"] = list(settings["quantiles"])
    return settings


def data_description(run_config: dict) -> dict:
    """Channels, train statistics, frequency and source of a run's ``LongHorizonDataModule`` (from the run's
    resolved ``config.yaml``), re-read from the data so they are exactly the training run's."""
    from zoo.domains.forecasting.protocol import LongHorizonDataModule

    node = (run_config or {}).get("data") or {}
    if not str(node.get("class_path", "")).endswith("LongHorizonDataModule"):
        raise ValueError("the run's config.yaml has no LongHorizonDataModule data: its training statistics are "
                         "unknown, so the forecaster could not scale raw data as it was trained")  # fmt: skip
    accepted = set(inspect.signature(LongHorizonDataModule).parameters)
    module = LongHorizonDataModule(**{k: v for k, v in (node.get("init_args") or {}).items() if k in accepted})
    module.setup()
    splits = module.splits
    return {
        "dataset": module.dataset or Path(module.path).name,
        "split": module.split_rule,
        "channels": list(splits.channels),
        "mean": splits.stats.mean.tolist(),
        "std": splits.stats.std.tolist(),
        "freq": splits.freq if isinstance(splits.freq, (str, int)) else None,
        "scaled": bool(module.scale),
    }


def export_forecaster(
    checkpoint: dict,
    record: dict,
    out_dir: str | Path,
    metrics: dict[str, float],
    run_config: dict,
    source: str,
    base_model: str | None = None,
    dataset: str | None = None,
) -> Path:
    """Write a forecasting checkpoint as a snapshot (``config.json`` with a ``task`` section,
    ``model.safetensors`` of the whole forecaster, ``README.md``): ``zoo.export.export_checkpoint``'s exporter
    of ``ForecastingTask`` checkpoints (``checkpoint`` / ``record`` from ``zoo.export.read_checkpoint``).

    ``metrics`` are the card's test metrics; ``run_config`` (the run's resolved ``config.yaml``) names the data
    the forecaster was trained on, whose training statistics the snapshot records; ``source`` names the file.
    """
    from zoo.domains.forecasting.model import PatchForecaster
    from zoo.export import render_card, task_state

    if "forecaster" not in record:
        raise ValueError(f"{source} is not a forecasting checkpoint (no forecaster settings in its record)")
    config = from_dict(ModelConfig, record["model_config"])
    settings = _model_settings(record["forecaster"])
    module = PatchForecaster(config, **settings)
    module.load_state_dict(task_state(checkpoint), strict=True)
    data = data_description(run_config)
    task = {"kind": TASK_KIND, "backbone_prefix": BACKBONE_PREFIX, "settings": settings, "data": data}
    name = record.get("entry") or "local-dir:PATH_TO_THIS_FOLDER"
    usage = (
        "```python\nfrom zoo.domains.forecasting.forecaster import Forecaster\n"
        f'forecaster = Forecaster.from_pretrained("{name}")\n'
        f"forecast = forecaster.predict(df)   # long frame unique_id, ds, y of the series {data['channels']}\n"
        "```\n\n"
        f"The forecaster reads {settings['seq_len']} steps and forecasts {settings['pred_len']}; raw values are "
        f"scaled with the training statistics of {data['dataset']} stored in `config.json`. "
        f'`zoo.load("{name}")` gives the backbone alone, to fine-tune.'
    )
    card = render_card(module.backbone, record, metrics, source=source, base_model=base_model,
                       dataset=dataset or data["dataset"], run_config=run_config, usage=usage,
                       parameters=sum(p.numel() for p in module.parameters()))  # fmt: skip
    return save_task_model(module, config, task, out_dir, extra_files={"README.md": card})


def load_forecaster(name: str, **load_kwargs) -> tuple[torch.nn.Module, dict]:
    """The ``PatchForecaster`` of snapshot ``name`` (in eval mode) and its ``task`` section.

    ``load_kwargs`` go to ``zoo.download`` (``revision``, ``cache_dir``, ``local_files_only``).
    """
    from zoo.api import LOCAL_PREFIX, download
    from zoo.domains.forecasting.model import PatchForecaster

    folder = Path(name[len(LOCAL_PREFIX) :]) if name.startswith(LOCAL_PREFIX) else download(name, **load_kwargs)
    if not (folder / CONFIG_NAME).is_file():
        raise FileNotFoundError(f"{name}: {folder / CONFIG_NAME} does not exist (not a seqzoo model folder)")
    task = read_task(folder)
    if task is None or task.get("kind") != TASK_KIND:
        kind = "a bare backbone" if task is None else f"a {task.get('kind')!r} model"
        raise ValueError(f"{name} holds {kind}, not a forecaster: load it with zoo.load({name!r})")
    module = PatchForecaster(read_config(folder), **task["settings"])
    safetensors.torch.load_model(module, str(folder / WEIGHTS_NAME), strict=True)
    return module.eval(), task
