"""Weights shipped inside the package: they load like a Hub snapshot, match their entry, and push unchanged."""

import hashlib
import json

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file

import zoo
from zoo.api import bundled_snapshot
from zoo.cli import main
from zoo.config import to_dict
from zoo.entries import ENTRIES as ALL_ENTRIES

ENTRIES = {entry.name: entry for entry in ALL_ENTRIES}
BUNDLED = sorted(name for name, entry in ENTRIES.items() if entry.weights is not None and entry.weights.bundled)
#: The issue's budget for weights inside the package.
MAX_BUNDLED_BYTES = 25 * 2**20


def test_the_genomics_and_forecasting_entries_ship_weights():
    assert {"hyenadna-tiny", "dna-xlstm-small"} <= set(BUNDLED)
    forecasting = {name for name, entry in ENTRIES.items() if entry.domain == "forecasting"}
    assert forecasting and forecasting <= set(BUNDLED), "the best ETTh1 model of every forecasting family ships"


def test_bundled_weights_stay_within_budget():
    total = sum((bundled_snapshot(name) / "model.safetensors").stat().st_size for name in BUNDLED)
    assert 0 < total <= MAX_BUNDLED_BYTES


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_snapshot_is_a_hub_snapshot_of_its_entry(name):
    entry = ENTRIES[name]
    folder = bundled_snapshot(name)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest() == entry.weights.sha256
    config = json.loads((folder / "config.json").read_text())["model"]
    assert config == json.loads(json.dumps(to_dict(entry.config))), "the snapshot is the entry's architecture"
    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "seqzoo" and card.data.eval_results, "the card reports the run's evaluation"
    model = zoo.load(name)  # no network: the conftest keeps the suite offline
    tensors = load_file(folder / "model.safetensors")
    task = json.loads((folder / "config.json").read_text()).get("task")
    if task is not None:  # a task model (a forecaster): zoo.load gives its backbone, the domain the whole model
        prefix = task["backbone_prefix"]
        _assert_holds(load_task_model(task["kind"], name), tensors)
        tensors = {key[len(prefix) :]: value for key, value in tensors.items() if key.startswith(prefix)}
    _assert_holds(model, tensors)


def _assert_holds(module: torch.nn.Module, tensors: dict) -> None:
    """``module`` holds exactly the file's tensors; a key the file lacks is a tensor the save de-duplicated
    (stored once under another key: the same storage in the module)."""
    state = module.state_dict()
    assert set(tensors) <= set(state)
    for key, tensor in tensors.items():
        assert torch.equal(state[key], tensor), key
    stored = {state[key].data_ptr() for key in tensors}
    for key in set(state) - set(tensors):
        assert state[key].data_ptr() in stored, f"{key} is neither in the file nor a shared copy of a stored tensor"


def load_task_model(kind: str, name: str) -> torch.nn.Module:
    assert kind == "forecasting", f"no loader known for task kind {kind!r}"
    from zoo.domains.forecasting.pretrained import load_forecaster

    return load_forecaster(name)[0]


def test_bundled_weights_push_unchanged_and_load_back_from_the_hub(hub_server, tmp_path):
    name = BUNDLED[0]
    folder = bundled_snapshot(name)
    assert main(["push", str(folder), f"seqzoo/{name}", "--tag", "v1"]) == 0
    from_hub = zoo.load(f"hf-hub:seqzoo/{name}@v1", cache_dir=tmp_path / "hf")
    local = zoo.load(name)
    for (key, a), b in zip(local.state_dict().items(), from_hub.state_dict().values()):
        assert torch.equal(a, b), key


def test_a_missing_bundled_file_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match=r"bundled weights .* are missing from this installation"):
        bundled_snapshot("no-such-entry")
