"""``zoo export CKPT OUTDIR``: a training checkpoint -> ``config.json`` + ``model.safetensors`` + ``README.md``.

The model config comes from the checkpoint itself (``SeqTask.on_save_checkpoint``); the card's
evaluation table and its ``model-index`` (the Hub's machine-readable results) come from the run's logged test
metrics (``metrics.csv`` of the CSV logger), never from typed numbers. The entry's ``model_cards/<entry>.md``
template gives the card's front matter and prose. The folder reloads bit-exactly with ``zoo.load("local-dir:OUTDIR")``.
"""

from __future__ import annotations

import math
import re
from importlib.resources import files
from pathlib import Path

import pandas as pd
import torch
import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from zoo.config import from_dict
from zoo.io import save_pretrained
from zoo.model import ModelConfig, SeqModel, count_parameters
from zoo.registry import UnknownModelError, get_entry
from zoo.training.task import CHECKPOINT_KEY

METRICS_FILE = "metrics.csv"
#: Tasks whose checkpoints hold more than a backbone (a head the user needs too), and the function that exports
#: their whole model; imported only when such a checkpoint is exported (the domains build on zoo, not the reverse).
TASK_EXPORTERS = {
    "zoo.domains.forecasting.task.ForecastingTask": "zoo.domains.forecasting.pretrained:export_forecaster",
}


def read_checkpoint(ckpt_path: str | Path) -> tuple[dict, dict]:
    """A seqzoo training checkpoint and its ``seqzoo`` record (with the checkpoint's ``global_step`` and
    ``epoch``). The file is read with ``weights_only=True``: tensors and plain containers only, never code."""
    ckpt_path = Path(ckpt_path)
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"{ckpt_path} does not exist")
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    record = checkpoint.get(CHECKPOINT_KEY)
    if record is None:
        raise ValueError(f"{ckpt_path} was not written by a seqzoo task (no '{CHECKPOINT_KEY}' record)")
    return checkpoint, {**record, "global_step": checkpoint.get("global_step"), "epoch": checkpoint.get("epoch")}


def task_state(checkpoint: dict) -> dict:
    """The task model's weights of a checkpoint: its state dict under ``model.``, prefix removed."""
    prefix = "model."
    return {k[len(prefix) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}


def load_checkpoint_model(ckpt_path: str | Path) -> tuple[SeqModel, dict]:
    """The ``SeqModel`` inside a seqzoo training checkpoint and the checkpoint's ``seqzoo`` record."""
    checkpoint, record = read_checkpoint(ckpt_path)
    return _backbone(checkpoint, record), record


def _backbone(checkpoint: dict, record: dict) -> SeqModel:
    model = SeqModel(from_dict(ModelConfig, record["model_config"]))
    model.load_state_dict(task_state(checkpoint), strict=True)
    return model


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


#: Card sections the export renders from the run itself; a template's other sections are kept as written.
RENDERED_SECTIONS = ("Architecture", "Weights", "Training", "Evaluation", "How to use")


def render_card(
    model: SeqModel,
    record: dict,
    metrics: dict[str, float],
    source: str,
    base_model: str | None = None,
    dataset: str | None = None,
    run_config: dict | None = None,
    usage: str | None = None,
    parameters: int | None = None,
) -> str:
    """A Hugging Face model card for an exported run: front matter with a ``model-index`` + sections.

    The entry's ``model_cards/<entry>.md`` template, when there is one, gives the front matter (licence, tags,
    datasets, pipeline tag) and the prose; the architecture, training, evaluation and usage sections are
    rendered from the model and the run. ``base_model`` (default: the record's ``base_model``) names the
    checkpoint this run was fine-tuned from; ``dataset`` (default: the template's first ``datasets`` item)
    names the evaluation data in the ``model-index``. ``run_config`` is the run's resolved LightningCLI
    config (``config.yaml``): its data, trainer and optimizer settings are listed under Training. ``usage``
    replaces the "How to use" code and ``parameters`` the parameter count of ``model`` (a task model around it).
    """
    entry = _entry(record)
    name = entry.name if entry else "seqzoo-model"
    template = _template(entry)
    front = template.data.to_dict() if template else {}
    config = model.config
    pipeline_tag = front.pop("pipeline_tag", None) or ("fill-mask" if config.vocab else "time-series-forecasting")
    datasets = front.pop("datasets", None) or ([dataset] if dataset else None)
    tags = ["seqzoo", *front.pop("tags", []), *([entry.domain, entry.family] if entry else [])]
    for key in ("library_name", "license", "base_model", "model-index", "model_name", "eval_results"):
        front.pop(key, None)
    data = ModelCardData(
        model_name=name,
        library_name="seqzoo",
        license=(entry.license if entry else "apache-2.0").lower(),
        tags=list(dict.fromkeys(tags)),
        datasets=datasets,
        base_model=base_model or record.get("base_model"),
        pipeline_tag=pipeline_tag,
        eval_results=_eval_results(metrics, record, pipeline_tag, dataset or (datasets or [None])[0]) or None,
        **front,
    )
    sections = _rendered_sections(model, record, metrics, source, entry, parameters)
    if usage is not None:
        sections["How to use"] = usage
    if run_config:
        sections["Training"] += "\n\n" + describe_run_config(run_config)
    if template is None:
        body = f"\n# {name} (trained with seqzoo)\n\n{entry.description if entry else 'A seqzoo model.'}\n\n"
        body += "".join(f"## {heading}\n\n{text}\n\n" for heading, text in sections.items())
    else:
        body = _fill_template(template.text, sections)
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n{body}"))


def _entry(record: dict):
    if not record.get("entry"):
        return None
    try:
        return get_entry(record["entry"])
    except UnknownModelError:
        return None


def _template(entry) -> ModelCard | None:
    """The entry's card template from the ``zoo.model_cards`` package data, or None."""
    if entry is None or entry.card is None:
        return None
    resource = files("zoo.model_cards").joinpath(entry.card)
    return ModelCard(resource.read_text()) if resource.is_file() else None


def _eval_results(metrics: dict[str, float], record: dict, task_type: str, dataset: str | None) -> list[EvalResult]:
    """One ``EvalResult`` per finite test metric (the ``model-index`` of the card)."""
    task = str(record.get("task") or "").rsplit(".", 1)[-1] or None
    return [
        EvalResult(
            task_type=task_type,
            task_name=task,
            dataset_type=dataset or "custom",
            dataset_name=dataset or "held-out test split of the training run",
            dataset_split="test",
            metric_type=key,
            metric_name=key,
            metric_value=value,
        )
        for key, value in sorted(metrics.items())
        if math.isfinite(value)
    ]


def _rendered_sections(
    model: SeqModel, record: dict, metrics: dict[str, float], source: str, entry, parameters: int | None = None
) -> dict:
    config = model.config
    follows = f"| follows | {entry.reference} |\n" if entry is not None and entry.reference else ""
    rows = "\n".join(f"| {key} | {_fmt(value)} |" for key, value in sorted(metrics.items()))
    evaluation = (
        f"Test-set metrics logged by the training run:\n\n| metric | value |\n|---|---:|\n{rows}"
        if metrics
        else "No test metrics were logged by this run (run `zoo test` with the same recipe to add them)."
    )
    base = record.get("base_model")
    return {
        "Architecture": (
            "| | |\n|---|---|\n"
            f"| layer pattern | `{config.backbone.pattern}` |\n"
            f"| width | d_model {config.backbone.d_model} |\n"
            f"| parameters | {parameters or count_parameters(model):,} |\n"
            f"| context | {config.max_seq_len:,} tokens |\n"
            f"| vocabulary | {config.vocab} |\n{follows}"
        ).rstrip(),
        "Training": (
            f"Exported from `{source}` (task `{record.get('task')}`, epoch {record.get('epoch')}, "
            f"step {record.get('global_step')})" + (f", fine-tuned from `{base}`." if base else ".")
        ),
        "Evaluation": evaluation,
        "How to use": (
            '```python\nimport zoo\nmodel = zoo.load("local-dir:PATH_TO_THIS_FOLDER")   '
            '# or zoo.load("hf-hub:ORG/NAME@REVISION") once pushed\n```'
        ),
    }


def describe_run_config(run_config: dict) -> str:
    """The data, budget and optimizer of a run, from its resolved LightningCLI config, as a short table."""

    def settings(node: dict | None) -> str:
        if not isinstance(node, dict):
            return ""
        args = node.get("init_args", {}) or {}
        shown = ", ".join(f"{k}={v}" for k, v in args.items() if v is not None and k not in ("num_workers",))
        return f"`{str(node.get('class_path', '')).rsplit('.', 1)[-1]}` ({shown})"

    trainer = run_config.get("trainer", {}) or {}
    model = (run_config.get("model", {}) or {}).get("init_args", {}) or {}
    rows = [
        ("data", settings(run_config.get("data"))),
        ("budget", ", ".join(f"{k}={trainer[k]}" for k in ("max_steps", "max_time", "precision") if trainer.get(k))),
        ("optimizer", settings(model.get("optimizer"))),
        ("schedule", settings(model.get("scheduler"))),
        ("seed", str(run_config.get("seed_everything", ""))),
    ]
    return "| run setting | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows if v)


def _fill_template(text: str, sections: dict[str, str]) -> str:
    """The template's body with its rendered sections replaced (``## Weights`` -> Training + Evaluation)."""
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    out, pending = [parts[0]], dict(sections)
    for heading, content in zip(parts[1::2], parts[2::2], strict=True):
        heading = heading.strip()
        if heading not in RENDERED_SECTIONS:
            out.append(f"## {heading}{content}")
            continue
        replaced = ("Training", "Evaluation") if heading == "Weights" else (heading,)
        out += [f"## {key}\n\n{pending.pop(key)}\n\n" for key in replaced if key in pending]
    out += [f"## {key}\n\n{value}\n\n" for key, value in pending.items()]
    return "".join(out).rstrip() + "\n"


def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.4f}"


def export_checkpoint(
    ckpt_path: str | Path,
    out_dir: str | Path,
    metrics_csv: str | Path | None = None,
    base_model: str | None = None,
    dataset: str | None = None,
    run_config: str | Path | None = None,
) -> Path:
    """Write ``config.json``, ``model.safetensors`` and a rendered ``README.md`` for a training checkpoint.

    ``metrics_csv`` defaults to the CSV logger file of the checkpoint's run
    (``lightning_logs/version_N/checkpoints/last.ckpt`` -> ``lightning_logs/version_N/metrics.csv``).
    ``run_config`` defaults to the run's resolved ``config.yaml`` beside ``checkpoints/``. ``base_model`` and
    ``dataset`` go into the card's front matter (see ``render_card``). A checkpoint of a task in
    ``TASK_EXPORTERS`` is written by its domain's exporter (the whole task model, e.g. a forecaster).
    """
    ckpt_path = Path(ckpt_path)
    checkpoint, record = read_checkpoint(ckpt_path)
    metrics = read_test_metrics(metrics_csv if metrics_csv is not None else ckpt_path.parent.parent / METRICS_FILE)
    # written by LightningCLI beside the run's checkpoints
    run_yaml = Path(run_config) if run_config is not None else ckpt_path.parent.parent / "config.yaml"
    run = yaml.safe_load(run_yaml.read_text()) if run_yaml.is_file() else None
    exporter = _task_exporter(record)
    if exporter is not None:
        if run is None:
            raise FileNotFoundError(f"{run_yaml} not found: pass the run's config.yaml (run_config=, --run-config) "
                                    "so the export records the run's data")  # fmt: skip
        return exporter(checkpoint, record, out_dir, metrics=metrics, run_config=run, source=ckpt_path.name,
                        base_model=base_model, dataset=dataset)  # fmt: skip
    model = _backbone(checkpoint, record)
    card = render_card(model, record, metrics, source=ckpt_path.name, base_model=base_model, dataset=dataset,
                       run_config=run)  # fmt: skip
    return save_pretrained(model, out_dir, extra_files={"README.md": card})


def _task_exporter(record: dict):
    """The exporter of the checkpoint's task when ``TASK_EXPORTERS`` has one, else None (a bare backbone)."""
    import importlib

    target = TASK_EXPORTERS.get(str(record.get("task")))
    if target is None:
        return None
    module, _, function = target.partition(":")
    return getattr(importlib.import_module(module), function)
