"""The public API: ``load``, ``info``, ``list_models`` (and ``download``, behind ``zoo download``).

Names ``load`` accepts:

* a registry entry, ``"hybridna-small"``: with ``pretrained=True`` its weights come from the Hub at the
  entry's pinned revision, in seqzoo's layout or through the converter of the official checkpoint;
* ``"local-dir:PATH"``, a folder written by ``save_pretrained`` / ``zoo export``;
* ``"hf-hub:org/name[@revision]"``, a Hub repository: a seqzoo export, or an official checkpoint that a
  converter in ``zoo.hub.convert`` recognises from its ``config.json``.

Downloads go through huggingface_hub (its cache, ``cache_dir``, ``local_files_only`` and ``HF_HUB_OFFLINE``);
only safetensors weights are ever read.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from zoo.config import to_dict
from zoo.io import CONFIG_NAME, FORMAT, WEIGHTS_NAME, load_pretrained, read_config
from zoo.model import SeqModel, count_parameters
from zoo.registry import Entry, get_entry, list_models

LOCAL_PREFIX = "local-dir:"
HUB_PREFIX = "hf-hub:"


def load(
    name: str,
    pretrained: bool = True,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool | None = None,
) -> SeqModel:
    """Build the model called ``name``; with ``pretrained`` also load its published weights.

    ``pretrained=False`` on a registry entry gives a randomly initialised model and never touches the network.
    ``revision`` overrides an entry's pinned revision (or the ``@revision`` of an ``hf-hub:`` name);
    ``cache_dir`` and ``local_files_only`` (also on with ``HF_HUB_OFFLINE=1``) are huggingface_hub's.
    """
    if name.startswith(LOCAL_PREFIX):
        folder = name[len(LOCAL_PREFIX) :]
        model = _load_folder(folder, name) if pretrained else SeqModel(read_config(folder))
        return model.to(device=device, dtype=dtype)
    if name.startswith(HUB_PREFIX):
        from zoo.hub.download import fetch

        repo_id, revision = _parse_hub_name(name, revision)
        folder = fetch(repo_id, revision, cache_dir=cache_dir, local_files_only=local_files_only, weights=pretrained)
        if not pretrained:
            return SeqModel(_seqzoo_config(folder, name)).to(device=device, dtype=dtype)
        return _load_folder(folder, name).to(device=device, dtype=dtype)
    entry = get_entry(name)
    if not pretrained:
        return SeqModel(entry.config).to(device=device, dtype=dtype)
    if entry.weights is None:
        raise ValueError(
            f"{name!r} has no published weights yet; use zoo.load({name!r}, pretrained=False) "
            "for a randomly initialised model"
        )
    folder = download(name, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only)
    if entry.weights.sha256 is not None and revision is None:
        _check_published_digest(folder, entry)
    if entry.weights.source == FORMAT:
        model = load_pretrained(folder)
    else:
        from zoo.hub.convert import convert

        model = _as_entry(convert(entry.weights.source, folder), entry, revision)
    return model.to(device=device, dtype=dtype)


def _as_entry(model: SeqModel, entry: Entry, revision: str | None) -> SeqModel:
    """A converted official checkpoint, checked against the architecture its entry promises.

    Official ``config.json`` files rarely state the context a model was trained at (Caduceus has no such
    field, Mamba none at all), so the converter's ``max_seq_len`` is a guess; the entry's is the documented
    one, and it is what length checks downstream (embedding, variant scoring) read. Anything else that
    differs means the repo at this revision holds another architecture than the entry describes: the
    converted model is still exact (it is built from the checkpoint's own config), so that is a warning
    that names the first field, not an error.
    """
    model.config = replace(model.config, max_seq_len=entry.config.max_seq_len)
    promised, got = _flat(to_dict(entry.config)), _flat(to_dict(model.config))
    differs = sorted(key for key in promised.keys() | got.keys() if promised.get(key) != got.get(key))
    if differs:
        at = revision or entry.weights.revision
        warnings.warn(
            f"{entry.name}: the checkpoint at {entry.weights.repo_id}@{at} has {differs[0]}="
            f"{got.get(differs[0])!r} where the entry says {promised.get(differs[0])!r} "
            f"({len(differs)} field(s) differ); the checkpoint's own architecture is used",
            stacklevel=3,
        )
    return model


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a.b": value}`` for a nested config dict, so a difference can be named by its path."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def download(
    name: str,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool | None = None,
) -> Path:
    """The local folder holding the files of ``name`` (an entry with weights, ``hf-hub:org/name[@rev]`` or
    ``org/name``), downloaded into the huggingface_hub cache when missing."""
    from zoo.hub.download import fetch

    if name.startswith(HUB_PREFIX) or ("/" in name and not name.startswith(LOCAL_PREFIX)):
        repo_id, revision = _parse_hub_name(name if name.startswith(HUB_PREFIX) else HUB_PREFIX + name, revision)
        return fetch(repo_id, revision, cache_dir=cache_dir, local_files_only=local_files_only)
    entry = get_entry(name)
    if entry.weights is None:
        raise ValueError(f"{name!r} has no published weights to download yet (see `zoo info {name}`)")
    if entry.weights.bundled and revision in (None, entry.weights.revision):
        return bundled_snapshot(entry.name)
    return fetch(
        entry.weights.repo_id,
        revision or entry.weights.revision,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
    )


def bundled_snapshot(name: str) -> Path:
    """Folder of the snapshot of entry ``name`` shipped inside the package (``zoo/weights/<name>/``)."""
    folder = Path(__file__).parent / "weights" / name
    if not (folder / WEIGHTS_NAME).is_file():
        raise FileNotFoundError(
            f"{name}: the bundled weights {folder / WEIGHTS_NAME} are missing from this installation; "
            "reinstall seqzoo (pip install --force-reinstall seqzoo)"
        )
    return folder


def _check_published_digest(folder: Path, entry: Entry) -> None:
    """Refuse weights whose sha256 is not the one the entry pins (a rewritten revision, a tampered mirror).

    The download already checked each cached file against its blob name, which for an LFS file *is* its
    sha256, so comparing names is enough; a plain copy (no cache symlink) is hashed.
    """
    path = Path(folder) / WEIGHTS_NAME
    blob = path.resolve()
    digest = blob.name if path.is_symlink() else hashlib.sha256(blob.read_bytes()).hexdigest()
    if digest != entry.weights.sha256:
        raise ValueError(
            f"{entry.name}: {entry.weights.repo_id}@{entry.weights.revision} {WEIGHTS_NAME} has sha256 "
            f"{digest[:16]}..., the entry pins {entry.weights.sha256[:16]}...; refusing to load it"
        )


def _parse_hub_name(name: str, revision: str | None) -> tuple[str, str | None]:
    """``hf-hub:org/name[@rev]`` -> ``(org/name, rev)``; ``revision`` wins only when they agree or one is absent."""
    repo_id, _, pinned = name[len(HUB_PREFIX) :].partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"{name!r}: a Hub name is hf-hub:ORG/NAME or hf-hub:ORG/NAME@REVISION")
    if pinned and revision and pinned != revision:
        raise ValueError(f"{name!r} pins revision {pinned!r} but revision={revision!r} was passed; give one of them")
    return repo_id, revision or pinned or None


def _load_folder(folder: str | Path, name: str) -> SeqModel:
    """The model in ``folder``: seqzoo's own layout, or an official checkpoint through its converter."""
    from zoo.hub.convert import CONVERTERS, IncompatibleCheckpointError, convert, detect_source

    config = _read_json(folder, name)
    if config.get("format") == FORMAT:
        return load_pretrained(folder)
    source = detect_source(folder)
    if source is None:
        known = ", ".join(sorted(CONVERTERS)) or "none yet"
        raise IncompatibleCheckpointError(
            f"{name}: {CONFIG_NAME} is neither a seqzoo export nor a layout a converter knows "
            f"(model_type={config.get('model_type')!r}; converters: {known}); re-export it with seqzoo"
        )
    return convert(source, folder)


def _seqzoo_config(folder: Path, name: str):
    from zoo.hub.convert import IncompatibleCheckpointError

    if _read_json(folder, name).get("format") != FORMAT:
        raise IncompatibleCheckpointError(
            f"{name}: pretrained=False builds seqzoo exports only; this repo is a foreign checkpoint, load it with "
            "pretrained=True (its converter builds the model)"
        )
    return read_config(folder)


def _read_json(folder: str | Path, name: str) -> dict:
    from zoo.hub.convert import IncompatibleCheckpointError

    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{name}: {path} does not exist (a model folder has {CONFIG_NAME})")
    try:
        config = json.loads(path.read_text())
    except ValueError as err:
        raise IncompatibleCheckpointError(f"{name}: {path} is not valid JSON ({err})") from None
    if not isinstance(config, dict):
        raise IncompatibleCheckpointError(f"{name}: {path} holds a {type(config).__name__}, not a JSON object")
    return config


@dataclass
class ModelInfo:
    """What ``zoo.info`` reports about an entry (no network, no weights)."""

    name: str
    family: str
    domain: str
    description: str
    parameters: int
    context: int
    pattern: str
    license: str
    pretrained: bool
    weights: str | None
    recipe: str | None
    card: str | None
    reference: str
    config: dict[str, Any]


def info(name: str) -> ModelInfo:
    """Facts about the entry ``name``: size, context, licence, weights, recipe, card and full config."""
    entry = get_entry(name)
    return ModelInfo(
        name=entry.name,
        family=entry.family,
        domain=entry.domain,
        description=entry.description,
        parameters=parameter_count(entry),
        context=entry.context,
        pattern=entry.config.backbone.pattern,
        license=entry.license,
        pretrained=entry.weights is not None,
        weights=None if entry.weights is None else f"{entry.weights.repo_id}@{entry.weights.revision}",
        recipe=entry.recipe,
        card=entry.card,
        reference=entry.reference,
        config=to_dict(entry.config),
    )


def parameter_count(entry: Entry) -> int:
    """Parameters of ``entry``, counted on the meta device (no memory, no init cost)."""
    with torch.device("meta"):
        return count_parameters(SeqModel(entry.config))


__all__ = ["ModelInfo", "download", "info", "list_models", "load"]
