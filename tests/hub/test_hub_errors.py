"""Bad Hub input gives one actionable line; a damaged cache is detected and re-fetched (or reported offline)."""

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, constants

import zoo
from zoo.cli import main
from zoo.hub.convert import IncompatibleCheckpointError
from zoo.hub.download import CorruptCacheError, HubNotFoundError
from zoo.io import save_pretrained

REPO = "seqzoo-test/tiny"


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert message and "\n" not in message, f"not one line: {message!r}"
    return message


@pytest.fixture
def pushed(hub_server, tmp_path):
    """A seqzoo export pushed to ``REPO`` and tagged ``v1``; returns the model."""
    model = zoo.load("hyenadna-tiny", pretrained=False)
    save_pretrained(model, tmp_path / "export")
    assert main(["push", str(tmp_path / "export"), REPO, "--tag", "v1"]) == 0
    return model


def _upload(repo_id: str, files: dict[str, bytes]) -> None:
    api = HfApi()
    api.create_repo(repo_id)
    for name, data in files.items():
        api.upload_file(path_or_fileobj=data, path_in_repo=name, repo_id=repo_id)


def _seqzoo_config() -> bytes:
    return json.dumps({"format": "seqzoo", "model": zoo.info("hyenadna-tiny").config, "seqzoo_version": "x"}).encode()


def test_unknown_repo(hub_server):
    with pytest.raises(HubNotFoundError) as err:
        zoo.load("hf-hub:seqzoo-test/no-such-model")
    assert "'seqzoo-test/no-such-model' not found" in _one_line(err)


def test_wrong_revision_lists_the_existing_refs(pushed):
    with pytest.raises(HubNotFoundError) as err:
        zoo.load(f"hf-hub:{REPO}@v9")
    message = _one_line(err)
    assert "revision 'v9' not found" in message and "main" in message and "v1" in message


def test_missing_weights_file(hub_server):
    _upload("seqzoo-test/config-only", {"config.json": _seqzoo_config()})
    with pytest.raises(HubNotFoundError) as err:
        zoo.load("hf-hub:seqzoo-test/config-only")
    assert "has no model.safetensors" in _one_line(err) and "config.json" in str(err.value)


def test_missing_config(hub_server):
    _upload("seqzoo-test/no-config", {"notes.txt": b"hello"})
    with pytest.raises(HubNotFoundError) as err:
        zoo.load("hf-hub:seqzoo-test/no-config")
    assert "has no config.json" in _one_line(err)


def test_pickle_only_repo_is_refused_without_downloading_the_pickle(hub_server):
    _upload("seqzoo-test/pickled", {"config.json": _seqzoo_config(), "pytorch_model.bin": b"\x80\x04 not read"})
    with pytest.raises(IncompatibleCheckpointError) as err:
        zoo.load("hf-hub:seqzoo-test/pickled")
    message = _one_line(err)
    assert "pytorch_model.bin" in message and "safetensors only" in message
    assert not [path for method, path, _ in hub_server.requests if path.endswith(".bin")]


def test_foreign_checkpoint_no_converter_matches(hub_server, tmp_path):
    weights = tmp_path / "model.safetensors"
    from safetensors.torch import save_file

    save_file({"encoder.weight": torch.zeros(2, 2)}, weights)
    config = json.dumps({"model_type": "bert", "hidden_size": 8}).encode()
    _upload("seqzoo-test/bert", {"config.json": config, "model.safetensors": weights.read_bytes()})
    with pytest.raises(IncompatibleCheckpointError) as err:
        zoo.load("hf-hub:seqzoo-test/bert")
    assert "neither a seqzoo export nor a layout a converter knows" in _one_line(err)
    assert "'bert'" in str(err.value)


@pytest.mark.parametrize("switch", ["HF_HUB_OFFLINE", "local_files_only"])
def test_offline_with_empty_cache_names_the_fix(pushed, hub_server, monkeypatch, switch):
    if switch == "HF_HUB_OFFLINE":
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    served = len(hub_server.requests)
    with pytest.raises(HubNotFoundError) as err:
        zoo.load(f"hf-hub:{REPO}@v1", local_files_only=switch == "local_files_only")
    assert "not in the local cache and downloads are off" in _one_line(err)
    assert f"zoo download hf-hub:{REPO}@v1" in str(err.value)
    assert len(hub_server.requests) == served


def test_every_test_is_offline_by_default_with_a_private_cache():
    # No hub_server fixture here: tests/conftest.py switches huggingface_hub offline with a temporary HF_HOME.
    assert constants.HF_HUB_OFFLINE and "hf_home" in constants.HF_HUB_CACHE
    with pytest.raises(HubNotFoundError) as err:
        zoo.load("hf-hub:seqzoo-test/anything")
    assert "downloads are off" in _one_line(err)


def test_cli_reports_hub_errors_in_one_line(hub_server, capsys):
    assert main(["download", "hf-hub:seqzoo-test/no-such-model"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "not found" in err and len(err.splitlines()) == 1


def _cached_blob(filename: str) -> Path:
    (snapshot,) = Path(constants.HF_HUB_CACHE, "models--seqzoo-test--tiny", "snapshots").iterdir()
    return (snapshot / filename).resolve()


@pytest.mark.parametrize("filename", ["model.safetensors", "config.json"])
def test_corrupt_cached_file_is_detected_and_fetched_again(pushed, hub_server, filename):
    zoo.load(f"hf-hub:{REPO}@v1")
    blob = _cached_blob(filename)
    good = blob.read_bytes()
    blob.write_bytes(good[: len(good) // 2])  # an interrupted copy
    fetched = len([p for _, p, _ in hub_server.requests if p.endswith(f"/{filename}")])
    model = zoo.load(f"hf-hub:{REPO}@v1")
    assert blob.read_bytes() == good
    assert len([p for _, p, _ in hub_server.requests if p.endswith(f"/{filename}")]) > fetched
    for name, tensor in pushed.state_dict().items():
        assert torch.equal(tensor, model.state_dict()[name]), name


def test_corrupt_cached_file_offline_is_a_clear_error(pushed, monkeypatch):
    zoo.load(f"hf-hub:{REPO}@v1")
    blob = _cached_blob("model.safetensors")
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF  # same size, one flipped bit: only the hash tells
    blob.write_bytes(bytes(data))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(CorruptCacheError) as err:
        zoo.load(f"hf-hub:{REPO}@v1")
    message = _one_line(err)
    assert "model.safetensors" in message and "is corrupt (sha256" in message and "HF_HUB_OFFLINE" in message


def test_damaged_copy_on_the_server_is_reported(pushed, hub_server):
    (lfs,) = [f.lfs.sha256 for f in HfApi().list_repo_tree(REPO) if f.path == "model.safetensors"]
    stored = hub_server.store.lfs_path(lfs)
    stored.write_bytes(stored.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(CorruptCacheError) as err:
        zoo.load(f"hf-hub:{REPO}@v1")
    assert "corrupt even after a fresh download" in _one_line(err)
