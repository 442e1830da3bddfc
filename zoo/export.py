"""``zoo export CKPT OUTDIR``: a training checkpoint -> ``config.json`` + ``model.safetensors`` + ``README.md``.

The model config comes from the checkpoint itself (``SeqTask.on_save_checkpoint``); the card's
evaluation table comes from the run's logged test metrics (``metrics.csv`` of the CSV logger), never
from typed numbers. The folder reloads bit-exactly with ``zoo.load("local-dir:OUTDIR")``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import torch
from huggingface_hub import ModelCard, ModelCardData

from zoo.config import from_dict
from zoo.io import save_pretrained
from zoo.model import ModelConfig, SeqModel, count_parameters
from zoo.registry import UnknownModelError, get_entry
from zoo.training.task import CHECKPOINT_KEY

METRICS_FILE = "metrics.csv"


def load_checkpoint_model(ckpt_path: str | Path) -> tuple[SeqModel, dict]:
    """The ``SeqModel`` inside a seqzoo training checkpoint and the checkpoint's ``seqzoo`` record.

    The file is read with ``weights_only=True``: tensors and plain containers only, never code.
    """
    ckpt_path = Path(ckpt_path)
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"{ckpt_path} does not exist")
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    record = checkpoint.get(CHECKPOINT_KEY)
    if record is None:
        raise ValueError(f"{ckpt_path} was not written by a seqzoo task (no '{CHECKPOINT_KEY}' record)")
    model = SeqModel(from_dict(ModelConfig, record["model_config"]))
    prefix = "model."
    weights = {k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    model.load_state_dict(weights, strict=True)
    record = {**record, "global_step": checkpoint.get("global_step"), "epoch": checkpoint.get("epoch")}
    return model, record


def read_test_metrics(metrics_csv: str | Path) -> dict[str, float]:
    """The last logged value of every ``test/*`` column of a CSV-logger ``metrics.csv`` (empty if none)."""
    metrics_csv = Path(metrics_csv)
    if not metrics_csv.is_file():
        return {}
    table = pd.read_csv(metrics_csv)
    found = {}
    for column in table.columns:
        if column.startswith("test/"):
            values = table[column].dropna()
            if len(values):
                found[column.removeprefix("test/")] = float(values.iloc[-1])
    return found


def render_card(model: SeqModel, record: dict, metrics: dict[str, float], source: str) -> str:
    """A Hugging Face model card for an exported run (front matter + sections)."""
    entry = None
    if record.get("entry"):
        try:
            entry = get_entry(record["entry"])
        except UnknownModelError:
            entry = None
    name = entry.name if entry else "seqzoo-model"
    config = model.config
    data = ModelCardData(
        library_name="seqzoo",
        license=(entry.license if entry else "apache-2.0").lower(),
        tags=["seqzoo", *([entry.domain, entry.family] if entry else [])],
        pipeline_tag="fill-mask" if config.vocab else "time-series-forecasting",
    )
    rows = "\n".join(f"| {key} | {_fmt(value)} |" for key, value in sorted(metrics.items()))
    evaluation = (
        f"Test-set metrics logged by the training run:\n\n| metric | value |\n|---|---:|\n{rows}"
        if metrics
        else "No test metrics were logged by this run (run `zoo test` with the same recipe to add them)."
    )
    body = f"""
# {name} (trained with seqzoo)

{entry.description if entry else "A seqzoo model."}

## Architecture

| | |
|---|---|
| layer pattern | `{config.backbone.pattern}` |
| width | d_model {config.backbone.d_model} |
| parameters | {count_parameters(model):,} |
| context | {config.max_seq_len:,} tokens |
| vocabulary | {config.vocab} |

## Training

Exported from `{source}` (task `{record.get("task")}`, epoch {record.get("epoch")}, step {record.get("global_step")}).

## Evaluation

{evaluation}

## How to use

```python
import zoo
model = zoo.load("local-dir:PATH_TO_THIS_FOLDER")
```
"""
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n{body}"))


def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.4f}"


def export_checkpoint(ckpt_path: str | Path, out_dir: str | Path, metrics_csv: str | Path | None = None) -> Path:
    """Write ``config.json``, ``model.safetensors`` and a rendered ``README.md`` for a training checkpoint.

    ``metrics_csv`` defaults to the CSV logger file of the checkpoint's run
    (``lightning_logs/version_N/checkpoints/last.ckpt`` -> ``lightning_logs/version_N/metrics.csv``).
    """
    ckpt_path = Path(ckpt_path)
    model, record = load_checkpoint_model(ckpt_path)
    if metrics_csv is None:
        metrics_csv = ckpt_path.parent.parent / METRICS_FILE
    card = render_card(model, record, read_test_metrics(metrics_csv), source=ckpt_path.name)
    return save_pretrained(model, out_dir, extra_files={"README.md": card})
