"""Shared steps of every converter: read a foreign ``config.json``, read safetensors weights, load strictly.

Nothing pickled is ever opened: a folder whose only weights are ``pytorch_model.bin`` (or ``.pt`` / ``.ckpt``)
is refused with a one-line error, before any byte of it is read.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import safetensors.torch
import torch

from zoo.hub.convert import IncompatibleCheckpointError
from zoo.model import SeqModel

CONFIG_NAME = "config.json"
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")

T = TypeVar("T")


def read_config(folder: Path) -> dict:
    """The foreign ``folder/config.json`` as a dict (one-line error when absent or not JSON)."""
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise IncompatibleCheckpointError(f"{path} does not exist: a converter needs the checkpoint's {CONFIG_NAME}")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise IncompatibleCheckpointError(f"{path} is not valid JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(config, dict):
        raise IncompatibleCheckpointError(f"{path} must hold a JSON object, got {type(config).__name__}")
    return config


def mapped(build: Callable[[dict], T], config: dict, folder: Path) -> T:
    """``build(config)``, with a config our dataclasses reject reported as an ``IncompatibleCheckpointError``."""
    try:
        return build(config)
    except IncompatibleCheckpointError:
        raise
    except (ValueError, TypeError) as err:
        raise IncompatibleCheckpointError(f"{folder / CONFIG_NAME}: {err}") from None


def as_float(value) -> float:
    """A JSON number; transformers 5 writes infinities as ``{"__float__": "Infinity"}``."""
    if isinstance(value, dict) and "__float__" in value:
        return float(value["__float__"])
    return float(value)


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files of a checkpoint: one file, the shards of an index, or every ``*.safetensors``."""
    if (folder / SINGLE_FILE).is_file():
        return [folder / SINGLE_FILE]
    if (folder / INDEX_FILE).is_file():
        index = json.loads((folder / INDEX_FILE).read_text())
        return [folder / name for name in sorted(set(index.get("weight_map", {}).values()))]
    # NX-AI's xlstm_large writes unindexed shards (model_0.safetensors, model_1.safetensors, ...).
    files = sorted(folder.glob("*.safetensors"))
    if files:
        return files
    pickled = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickled:
        raise IncompatibleCheckpointError(
            f"{folder} has only pickled weights ({', '.join(pickled)}); seqzoo never loads pickle: "
            "use a revision of the repo that has model.safetensors"
        )
    raise IncompatibleCheckpointError(f"{folder} has no weights ({SINGLE_FILE} or *.safetensors shards)")


def read_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the checkpoint in ``folder``, read from safetensors on the CPU."""
    state: dict[str, torch.Tensor] = {}
    for path in weight_files(folder):
        if not path.is_file():
            raise IncompatibleCheckpointError(f"{path} is listed in {INDEX_FILE} but does not exist")
        state.update(safetensors.torch.load_file(str(path), device="cpu"))
    return state


def untie_head(state: dict[str, torch.Tensor], embedding_key: str, head_key: str, folder: Path) -> None:
    """Drop a tied checkpoint's copy of the LM head, refusing one that differs from the embedding.

    A file may hold the shared tensor under either name: safetensors cannot store two names for one tensor,
    so a conversion from a pickled checkpoint keeps one of them (the Hub's converter keeps the first name
    in sorted order, which for mamba_ssm is the embedding, but other tools keep the head).
    """
    if embedding_key not in state and head_key in state:
        state[embedding_key] = state.pop(head_key)
        return
    head = state.pop(head_key, None)
    if head is not None and not torch.equal(head, state.get(embedding_key, head)):
        raise IncompatibleCheckpointError(
            f"{folder}: the config ties the embeddings but {head_key} differs from {embedding_key}"
        )


def load_strict(model: SeqModel, state: dict[str, torch.Tensor], folder: Path) -> SeqModel:
    """Load ``state`` (already in seqzoo's key names) into ``model``: every key, every shape, nothing extra.

    A tied LM head is expected to be absent from ``state`` (see :func:`untie_head`).
    """
    own = model.state_dict()
    if model.config.tie_embeddings and model.lm_head is not None:
        own.pop("lm_head.weight")
    missing = [key for key in own if key not in state]
    if missing:
        raise IncompatibleCheckpointError(
            f"{folder}: missing weight {missing[0]!r} ({len(missing)} missing) for the converted model"
        )
    unexpected = [key for key in state if key not in own]
    if unexpected:
        raise IncompatibleCheckpointError(
            f"{folder}: unexpected weight {unexpected[0]!r} ({len(unexpected)} unexpected): "
            "the checkpoint has parts the converted model does not"
        )
    for key, value in own.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise IncompatibleCheckpointError(
                f"{folder}: weight {key!r} has shape {tuple(state[key].shape)}, the config implies {tuple(value.shape)}"
            )
    model.load_state_dict(state, strict=not model.config.tie_embeddings)
    return model.eval()
