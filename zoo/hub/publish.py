"""Publish a model folder to the Hub: ``push(folder, repo_id, tag=...) -> commit sha`` (``zoo push``).

The folder is what ``zoo export`` / ``save_pretrained`` writes (``config.json``, ``model.safetensors``,
``README.md``); huggingface_hub does the transport (``create_repo``, ``upload_folder``, ``create_tag``).
"""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

from zoo.io import CONFIG_NAME, WEIGHTS_NAME


def push(
    folder: str | Path, repo_id: str, tag: str | None = None, private: bool = False, token: str | None = None
) -> str:
    """Upload ``folder`` to the model repo ``repo_id`` (created if needed) in one commit; its sha.

    ``tag`` names the new commit (an immutable revision to pin in a registry entry); an existing tag is refused
    before anything is uploaded. ``token`` defaults to the logged-in user's (``hf auth login`` / ``HF_TOKEN``).
    """
    from zoo import __version__

    folder = Path(folder)
    missing = [name for name in (CONFIG_NAME, WEIGHTS_NAME) if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder} has no {' or '.join(missing)}: push a folder written by `zoo export` or save_pretrained"
        )
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"{repo_id!r} is not a Hub repo id: use ORG/NAME")
    api = HfApi(token=token, library_name="seqzoo", library_version=__version__)
    api.create_repo(repo_id, private=private, exist_ok=True)
    if tag is not None:
        tags = {ref.name for ref in api.list_repo_refs(repo_id).tags}
        if tag in tags:
            raise ValueError(f"tag {tag!r} already exists in {repo_id}: tags are immutable, choose a new one")
    commit = api.upload_folder(
        folder_path=folder,
        repo_id=repo_id,
        commit_message=f"Upload {folder.name} with seqzoo {__version__}",
    )
    if tag is not None:
        try:
            api.create_tag(repo_id, tag=tag, revision=commit.oid, tag_message=f"seqzoo {__version__}")
        except HfHubHTTPError as err:
            reason = str(err).splitlines()[0]
            raise ValueError(f"uploaded {repo_id}@{commit.oid} but could not tag it {tag!r}: {reason}") from None
    return commit.oid
