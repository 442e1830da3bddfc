"""Save and load a model folder: ``config.json`` + ``model.safetensors`` (never pickle).

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
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    folder.mkdir(exist_ok=True)
    config = {"format": FORMAT, "seqzoo_version": _version(), "model": to_dict(model.config)}
    with tempfile.TemporaryDirectory(dir=folder, prefix=".tmp-save-") as tmp:
        tmp = Path(tmp)
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
        # save_model de-duplicates tied tensors (embeddings / lm_head), which save_file refuses.
        safetensors.torch.save_model(model, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        for item in tmp.iterdir():
            # Temporary files are created owner-only (0600); the published files get the permissions any new
            # file of this user gets, so a shared cache or a packaged snapshot stays readable by others.
            item.chmod(default_file_mode())
            os.replace(item, folder / item.name)
    return folder



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
    missing, unexpected = safetensors.torch.load_model(model, str(weights), strict=False)
    # load_model already discounts tied copies (lm_head.weight), so anything left is a real mismatch.
    if missing or unexpected:
        raise ValueError(
            f"{weights} does not match its config: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return model.to(device=device, dtype=dtype)
