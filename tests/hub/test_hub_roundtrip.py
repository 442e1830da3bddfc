"""End to end over HTTP: ``zoo push`` to the test Hub, ``zoo.load("hf-hub:...@rev")`` back, then offline."""

import dataclasses
import hashlib
import json
import warnings
from pathlib import Path

import pytest
import torch
from huggingface_hub import HfApi, ModelCard, constants

import zoo
import zoo.entries
from zoo.cli import main
from zoo.hub.convert import mamba
from zoo.io import save_pretrained
from zoo.registry import Weights, get_entry

REPO = "seqzoo-test/hyenadna-tiny"


def _export(folder: Path, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = zoo.load("hyenadna-tiny", pretrained=False)
    card = "---\nlibrary_name: seqzoo\nlicense: apache-2.0\n---\n\n# hyenadna-tiny\n"
    save_pretrained(model, folder, extra_files={"README.md": card})
    return model


def _assert_same_weights(expected: torch.nn.Module, actual: torch.nn.Module) -> None:
    want, got = expected.state_dict(), actual.state_dict()
    assert want.keys() == got.keys()
    for name, tensor in want.items():
        assert torch.equal(tensor, got[name]), name


def _push(folder: Path, *extra: str) -> str:
    assert main(["push", str(folder), REPO, *extra]) == 0
    return HfApi().list_repo_refs(REPO).branches[0].target_commit


@pytest.fixture
def two_commits(hub_server, tmp_path):
    """``v1`` tags the first push; ``main`` has moved on to a second model."""
    first = _export(tmp_path / "first", seed=1)
    sha1 = _push(tmp_path / "first", "--tag", "v1")
    second = _export(tmp_path / "second", seed=2)
    sha2 = _push(tmp_path / "second")
    assert sha1 != sha2
    return {"first": first, "sha1": sha1, "second": second, "sha2": sha2}


def test_push_then_load_by_tag_by_sha_and_by_branch(hub_server, two_commits, capsys):
    _assert_same_weights(two_commits["first"], zoo.load(f"hf-hub:{REPO}@v1"))
    _assert_same_weights(two_commits["first"], zoo.load(f"hf-hub:{REPO}@{two_commits['sha1']}"))
    _assert_same_weights(two_commits["first"], zoo.load(f"hf-hub:{REPO}", revision="v1"))
    _assert_same_weights(two_commits["second"], zoo.load(f"hf-hub:{REPO}"))
    first, second = two_commits["first"].state_dict(), two_commits["second"].state_dict()
    assert not all(torch.equal(first[k], second[k]) for k in first), "the two pushes hold different weights"
    # Every download names seqzoo in its user agent.
    downloads = [agent for method, path, agent in hub_server.requests if "/resolve/" in path]
    assert downloads and all(f"seqzoo/{zoo.__version__}" in agent for agent in downloads)


def test_push_uploads_weights_through_lfs_and_tags_the_commit(hub_server, two_commits, capsys):
    api = HfApi()
    tags = {ref.name: ref.target_commit for ref in api.list_repo_refs(REPO).tags}
    assert tags == {"v1": two_commits["sha1"]}
    files = {f.path: f for f in api.list_repo_tree(REPO, revision="v1")}
    assert {"config.json", "model.safetensors", "README.md"} <= files.keys()
    assert files["model.safetensors"].lfs is not None and files["config.json"].lfs is None
    assert ("PUT", f"/lfs-objects/{REPO}/{files['model.safetensors'].lfs.sha256}") in {
        (m, p) for m, p, _ in hub_server.requests
    }
    card = zoo.api.download(f"hf-hub:{REPO}@v1") / "README.md"
    assert ModelCard.load(card).data.library_name == "seqzoo"


def test_offline_reload_comes_from_the_cache_without_network(hub_server, two_commits, monkeypatch):
    online = zoo.load(f"hf-hub:{REPO}@v1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    served = len(hub_server.requests)
    offline = zoo.load(f"hf-hub:{REPO}@v1")
    by_sha = zoo.load(f"hf-hub:{REPO}@{two_commits['sha1']}", local_files_only=True)
    assert len(hub_server.requests) == served, "offline loads must not touch the network"
    _assert_same_weights(online, offline)
    _assert_same_weights(two_commits["first"], by_sha)


def test_load_honours_cache_dir(hub_server, two_commits, tmp_path):
    cache = tmp_path / "my-cache"
    model = zoo.load(f"hf-hub:{REPO}@v1", cache_dir=cache)
    _assert_same_weights(two_commits["first"], model)
    assert list(cache.glob("models--seqzoo-test--hyenadna-tiny/snapshots/*/model.safetensors"))
    assert not Path(constants.HF_HUB_CACHE, "models--seqzoo-test--hyenadna-tiny").exists()


def test_pushing_an_existing_tag_is_refused_before_uploading(hub_server, two_commits, tmp_path, capsys):
    _export(tmp_path / "third", seed=3)
    assert main(["push", str(tmp_path / "third"), REPO, "--tag", "v1"]) == 2
    assert "tag 'v1' already exists" in capsys.readouterr().err
    assert HfApi().list_repo_refs(REPO).branches[0].target_commit == two_commits["sha2"], "nothing was committed"


@pytest.fixture
def hub_entry(two_commits, monkeypatch):
    """A registry entry whose weights are the ``v1`` commit of the test repo, pinned by sha."""
    entry = dataclasses.replace(
        get_entry("hyenadna-tiny"), name="hyenadna-tiny-hubtest", weights=Weights(REPO, two_commits["sha1"])
    )
    monkeypatch.setattr(zoo.entries, "ENTRIES", [*zoo.entries.ENTRIES, entry])
    return entry


def test_registry_entry_loads_its_pinned_revision(hub_server, two_commits, hub_entry):
    _assert_same_weights(two_commits["first"], zoo.load("hyenadna-tiny-hubtest"))
    # An explicit revision overrides the pin.
    _assert_same_weights(two_commits["second"], zoo.load("hyenadna-tiny-hubtest", revision="main"))
    assert zoo.info("hyenadna-tiny-hubtest").weights == f"{REPO}@{two_commits['sha1']}"


def test_entry_pinning_the_published_sha256_loads_and_a_wrong_one_is_refused(hub_server, two_commits, monkeypatch):
    folder = zoo.download("hf-hub:" + REPO, revision=two_commits["sha1"])
    published = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    base = get_entry("hyenadna-tiny")
    good = dataclasses.replace(base, name="pinned-good", weights=Weights(REPO, two_commits["sha1"], sha256=published))
    bad = dataclasses.replace(base, name="pinned-bad", weights=Weights(REPO, two_commits["sha1"], sha256="0" * 64))
    monkeypatch.setattr(zoo.entries, "ENTRIES", [*zoo.entries.ENTRIES, good, bad])
    _assert_same_weights(two_commits["first"], zoo.load("pinned-good"))
    with pytest.raises(ValueError, match=r"sha256 .* the entry pins 0000000000000000"):
        zoo.load("pinned-bad")


def test_cli_download_prints_the_snapshot_folder(hub_server, two_commits, hub_entry, capsys):
    assert main(["download", "hyenadna-tiny-hubtest"]) == 0
    folder = Path(capsys.readouterr().out.strip())
    assert folder.name == two_commits["sha1"] and folder.is_relative_to(constants.HF_HUB_CACHE)
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors", "README.md"}
    _assert_same_weights(two_commits["first"], zoo.load(f"local-dir:{folder}"))

    assert main(["download", f"hf-hub:{REPO}", "--revision", "main"]) == 0
    assert Path(capsys.readouterr().out.strip()).name == two_commits["sha2"]
    assert main(["download", REPO, "--revision", "v1"]) == 0
    assert Path(capsys.readouterr().out.strip()).name == two_commits["sha1"]


@pytest.fixture
def official_mamba(hub_server, tmp_path):
    """A transformers ``MambaForCausalLM`` checkpoint (safetensors, as on the Hub) in a foreign-layout repo."""
    import transformers

    config = transformers.MambaConfig(vocab_size=16, hidden_size=32, num_hidden_layers=2, state_size=4)
    theirs = transformers.MambaForCausalLM(config).eval()
    theirs.save_pretrained(tmp_path / "official")
    api = HfApi()
    api.create_repo("seqzoo-test/mamba-tiny-hf")
    sha = api.upload_folder(folder_path=tmp_path / "official", repo_id="seqzoo-test/mamba-tiny-hf").oid
    return theirs, sha


def _assert_same_logits(theirs, ours) -> None:
    ids = torch.randint(0, 16, (2, 11))
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(input_ids=ids).logits, theirs(ids).logits, rtol=1e-4, atol=1e-4)


def test_official_checkpoint_is_detected_and_converted(official_mamba):
    theirs, _ = official_mamba
    _assert_same_logits(theirs, zoo.load("hf-hub:seqzoo-test/mamba-tiny-hf"))


def test_registry_entry_with_a_converter_source(official_mamba, monkeypatch):
    theirs, sha = official_mamba
    # The entry describes the checkpoint's architecture, with the context it was trained at (which
    # transformers' Mamba config.json does not record): the load gives that context, and warns about nothing.
    architecture = mamba.model_config(theirs.config.to_dict())
    entry = dataclasses.replace(
        get_entry("hyenadna-tiny"),
        name="mamba-tiny-hubtest",
        weights=Weights("seqzoo-test/mamba-tiny-hf", sha, source="transformers-mamba"),
        config=dataclasses.replace(architecture, max_seq_len=4096),
    )
    monkeypatch.setattr(zoo.entries, "ENTRIES", [*zoo.entries.ENTRIES, entry])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = zoo.load("mamba-tiny-hubtest")
    assert ours.config == entry.config and architecture.max_seq_len != 4096
    _assert_same_logits(theirs, ours)


def test_fetch_gets_every_shard_of_a_safetensors_index(hub_server, tmp_path):
    from safetensors.torch import save_file

    from zoo.hub.download import fetch

    shards = {"model-00001-of-00002.safetensors": "a", "model-00002-of-00002.safetensors": "b"}
    for shard, key in shards.items():
        save_file({key: torch.full((3,), float(len(key)))}, tmp_path / shard)
    index = {"metadata": {}, "weight_map": {key: shard for shard, key in shards.items()}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "sharded"}))
    HfApi().create_repo("seqzoo-test/sharded")
    HfApi().upload_folder(folder_path=tmp_path, repo_id="seqzoo-test/sharded")
    folder = fetch("seqzoo-test/sharded")
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors.index.json", *shards}
