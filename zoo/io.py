"""Save and load a model folder: ``config.json`` + ``model.safetensors`` (never pickle).

A folder holds a bare ``SeqModel`` (``save_pretrained``) or a task model around one (``save_task_model``: a
forecaster with its RevIN, patch embedding and head). The latter's ``config.json`` has a ``task`` section naming
its kind, its settings and the prefix of the backbone's weights, so ``load_pretrained`` still returns the
backbone (e.g. to fine-tune it) and the task's domain rebuilds the whole model from the same files.

Writes are atomic: files go to a temporary folder beside the target and are moved into place with
``os.replace``, so an interrupted save never leaves a half-written model where a good one was.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import safetensors.torch
import torch

from zoo.config import from_dict, to_dict
from zoo.data.artifacts import default_file_mode
from zoo.model import ModelConfig, SeqModel

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "seqzoo"


def _version() -> str:
    from zoo import __version__

    return __version__


def save_pretrained(
    model: SeqModel, folder: str | os.PathLike, extra_files: dict[str, str] | None = None
) -> Path:
    """Write ``model`` to ``folder`` atomically; ``extra_files`` maps file names to text (e.g. README.md)."""
    return _write_folder(model, {"model": to_dict(model.config)}, folder, extra_files)


def save_task_model(
    module: torch.nn.Module,
    backbone: ModelConfig,
    task: dict,
    folder: str | os.PathLike,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Write a task model (a backbone inside ``module``) to ``folder`` atomically.

    ``task`` is JSON: ``kind`` (the domain's name for it), ``backbone_prefix`` (where the backbone's weights sit
    in ``module.state_dict()``, e.g. ``"backbone."``) and whatever the domain needs to rebuild ``module``.
    """
    missing = [key for key in ("kind", "backbone_prefix") if key not in task]
    if missing:
        raise ValueError(f"a task section needs {missing}")
    return _write_folder(module, {"model": to_dict(backbone), "task": task}, folder, extra_files)


def _write_folder(module: torch.nn.Module, sections: dict, folder, extra_files: dict[str, str] | None) -> Path:
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.mkdir(exist_ok=True)
    config = {"format": FORMAT, "seqzoo_version": _version(), **sections}
    with tempfile.TemporaryDirectory(dir=folder, prefix=".tmp-save-") as tmp:
        tmp = Path(tmp)
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
        # save_model de-duplicates tied tensors (embeddings / lm_head), which save_file refuses.
        safetensors.torch.save_model(module, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        for item in tmp.iterdir():
            # Temporary files are created owner-only (0600); the published files get the permissions any new
            # file of this user gets, so a shared cache or a packaged snapshot stays readable by others.
            item.chmod(default_file_mode())
            os.replace(item, folder / item.name)
    return folder


def read_task(folder: str | os.PathLike) -> dict | None:
    """The ``task`` section of ``folder/config.json`` (None for a bare backbone)."""
    _ = read_config(folder)  # the same checks of a seqzoo folder
    return json.loads((Path(folder) / CONFIG_NAME).read_text()).get("task")


def read_config(folder: str | os.PathLike) -> ModelConfig:
    """The ``ModelConfig`` stored in ``folder/config.json``, with clear errors for foreign files."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: not a seqzoo model folder (expected {CONFIG_NAME})")
    data = json.loads(path.read_text())
    if data.get("format") != FORMAT or "model" not in data:
        raise ValueError(
            f"{path} is not a seqzoo config (format={data.get('format')!r}); foreign checkpoints need a converter"
        )
    return from_dict(ModelConfig, data["model"])


def load_pretrained(folder: str | os.PathLike, device=None, dtype: torch.dtype | None = None) -> SeqModel:
    """Rebuild the model saved in ``folder`` and load its weights strictly."""
    config = read_config(folder)
    weights = Path(folder) / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} does not exist (expected {WEIGHTS_NAME} beside {CONFIG_NAME})")
    model = SeqModel(config)
    task = read_task(folder)
    if task is not None:
        # a task model's file: its backbone part, by the prefix the task section names. The backbone sits in an
        # empty module tree at that prefix, so safetensors' load_model restores tensors the save de-duplicated
        # (a shared parameter is stored once); the task's other tensors are the expected "unexpected" keys.
        holder = outer = torch.nn.Module()
        *parents, last = task["backbone_prefix"].rstrip(".").split(".")
        for name in parents:
            outer.add_module(name, torch.nn.Module())
            outer = getattr(outer, name)
        outer.add_module(last, model)
        missing, _ = safetensors.torch.load_model(holder, str(weights), strict=False)
        if missing:
            raise ValueError(f"{weights}: its {task['backbone_prefix']!r} weights do not match its config: missing "
                             f"{missing[:5]}")  # fmt: skip
        return model.to(device=device, dtype=dtype)
    missing, unexpected = safetensors.torch.load_model(model, str(weights), strict=False)
    # load_model already discounts tied copies (lm_head.weight), so anything left is a real mismatch.
    if missing or unexpected:
        raise ValueError(
            f"{weights} does not match its config: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return model.to(device=device, dtype=dtype)
