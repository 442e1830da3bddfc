"""``zoo export`` model cards: Hub front matter and a ``model-index`` holding the run's logged test metrics."""

import math

import pandas as pd
import pytest
import torch
from huggingface_hub import ModelCard
from lightning.pytorch.loggers import CSVLogger

import zoo
from zoo.config import to_dict
from zoo.export import export_checkpoint
from zoo.registry import get_entry
from zoo.training.task import CHECKPOINT_KEY


def _run(tmp_path, entry: str | None, base_model: str | None = None):
    """A checkpoint in SeqTask's layout and the CSV logger's metrics.csv of its run."""
    model = zoo.load("hyenadna-tiny", pretrained=False)
    logger = CSVLogger(save_dir=tmp_path, name="logs")
    logger.log_metrics({"train/loss": 2.5}, step=0)
    logger.log_metrics({"test/loss": 1.2345678, "test/bits_per_token": 1.9876543, "test/acc": float("nan")}, step=9)
    logger.save()
    record = {"model_config": to_dict(model.config), "entry": entry, "task": "zoo.domains.genomics.tasks.LMTask"}
    if base_model:
        record["base_model"] = base_model
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": state, CHECKPOINT_KEY: record, "global_step": 9, "epoch": 0}, ckpt)
    return model, ckpt, tmp_path / "logs" / "version_0" / "metrics.csv"


def _logged_test_metrics(metrics_csv) -> dict[str, float]:
    table = pd.read_csv(metrics_csv)
    columns = [c for c in table.columns if c.startswith("test/") and table[c].notna().any()]
    return {c[len("test/") :]: float(table[c].dropna().iloc[-1]) for c in columns}


def test_card_front_matter_and_model_index_come_from_the_template_and_the_run(tmp_path):
    model, ckpt, metrics_csv = _run(tmp_path, entry="hyenadna-tiny", base_model="seqzoo-test/hyenadna-base")
    out = export_checkpoint(ckpt, tmp_path / "export", metrics_csv=metrics_csv, dataset="seqzoo/yeast-genome")
    card = ModelCard.load(out / "README.md")
    data, entry = card.data, get_entry("hyenadna-tiny")
    assert data.library_name == "seqzoo" and data.license == entry.license.lower()
    assert data.pipeline_tag == "fill-mask" and data.base_model == "seqzoo-test/hyenadna-base"
    assert data.datasets == ["seqzoo/yeast-genome"]
    assert {"seqzoo", "genomics", "hyenadna", "long-context"} <= set(data.tags)

    logged = {k: v for k, v in _logged_test_metrics(metrics_csv).items() if math.isfinite(v)}
    assert data.model_name == "hyenadna-tiny"
    assert {r.metric_type: r.metric_value for r in data.eval_results} == pytest.approx(logged)
    assert {(r.task_type, r.dataset_type, r.dataset_split) for r in data.eval_results} == {
        ("fill-mask", "seqzoo/yeast-genome", "test")
    }
    # The YAML itself carries the model-index (what the Hub reads).
    assert card.data.to_dict()["model-index"][0]["results"][0]["metrics"]
    # Prose from model_cards/hyenadna-tiny.md is kept; its "no weights yet" section is replaced by the run's.
    assert "HyenaDNA tiny: 2 Hyena layers" in card.text and "## Limitations" in card.text
    assert "No trained weights are published" not in card.text
    assert f"| bits_per_token | {logged['bits_per_token']:.4f} |" in card.text
    assert "fine-tuned from `seqzoo-test/hyenadna-base`" in card.text
    reloaded = zoo.load(f"local-dir:{out}")
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, reloaded.state_dict()[name]), name


def test_card_without_an_entry_still_has_a_model_index(tmp_path):
    _, ckpt, metrics_csv = _run(tmp_path, entry=None)
    card = ModelCard.load(export_checkpoint(ckpt, tmp_path / "export", metrics_csv=metrics_csv) / "README.md")
    assert card.data.library_name == "seqzoo" and card.data.base_model is None
    assert {r.metric_type for r in card.data.eval_results} == {"loss", "bits_per_token"}
    assert card.text.lstrip().startswith("# seqzoo-model")


def test_card_of_a_run_without_test_metrics_has_no_model_index(tmp_path):
    _, ckpt, _ = _run(tmp_path, entry="hyenadna-tiny")
    card = ModelCard.load(export_checkpoint(ckpt, tmp_path / "export", metrics_csv=tmp_path / "none.csv") / "README.md")
    assert card.data.eval_results is None and "model-index" not in card.data.to_dict()
    assert "No test metrics were logged" in card.text


def test_zoo_export_flags_name_the_base_model_and_dataset(tmp_path):
    from zoo.cli import main

    _, ckpt, metrics_csv = _run(tmp_path, entry="hyenadna-tiny")
    out = tmp_path / "export"
    args = ["export", str(ckpt), str(out), "--metrics", str(metrics_csv)]
    assert main([*args, "--base-model", "org/base", "--dataset", "org/data"]) == 0
    data = ModelCard.load(out / "README.md").data
    assert data.base_model == "org/base" and data.datasets == ["org/data"]


def test_run_config_is_listed_under_training():
    from zoo.export import describe_run_config

    run = {
        "seed_everything": 0,
        "trainer": {"max_steps": 1200, "max_time": "00:01:00:00", "precision": None},
        "model": {"init_args": {"optimizer": {"class_path": "torch.optim.AdamW", "init_args": {"lr": 0.003}}}},
        "data": {
            "class_path": "zoo.domains.genomics.data.GenomeDataModule",
            "init_args": {"corpus": "dna-corpus", "genome": None, "window": 1024, "num_workers": 4},
        },
    }
    table = describe_run_config(run)
    assert "| data | `GenomeDataModule` (corpus=dna-corpus, window=1024) |" in table
    assert "| budget | max_steps=1200, max_time=00:01:00:00 |" in table
    assert "| optimizer | `AdamW` (lr=0.003) |" in table and "| seed | 0 |" in table and "schedule" not in table
