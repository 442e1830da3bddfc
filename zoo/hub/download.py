"""Fetch a model repo's files from the Hub into the huggingface_hub cache: ``fetch(repo_id, revision) -> folder``.

A model snapshot is ``config.json``, the weights in safetensors (``model.safetensors``, or a
``model.safetensors.index.json`` and its shards) and an optional ``README.md``; every file comes through
``hf_hub_download`` at one revision, so the cache layout, ``cache_dir``, ``local_files_only`` and
``HF_HUB_OFFLINE`` behave as everywhere else in the Hugging Face stack. Nothing pickled is ever downloaded.

Each cached file is checked before it is used: the cache names a blob after its content hash (sha256 for LFS
files, the git blob sha1 for small ones), so a truncated or damaged blob is detected and fetched again
(online) or reported (offline). Errors are one line that says what is wrong and what to do.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from huggingface_hub import HfApi, constants, hf_hub_download
from huggingface_hub.errors import (
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from zoo.hub.convert import IncompatibleCheckpointError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"
CARD_FILE = "README.md"
#: Weight formats that unpickle on load: seqzoo never reads them (nor downloads them).
PICKLE_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth", ".pkl")

_SHA256 = re.compile(r"[0-9a-f]{64}")
_GIT_SHA1 = re.compile(r"[0-9a-f]{40}")


class HubNotFoundError(FileNotFoundError):
    """A Hub repo, revision or file that does not exist, or is not in the cache while downloads are off."""


class CorruptCacheError(OSError):
    """A cached file whose content does not match its hash (or is not valid safetensors)."""


def fetch(
    repo_id: str,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool | None = None,
    weights: bool = True,
) -> Path:
    """The local snapshot folder of ``repo_id`` at ``revision`` (default ``main``), downloading what is missing.

    ``local_files_only`` (or ``HF_HUB_OFFLINE=1``) never touches the network. ``weights=False`` fetches
    ``config.json`` (and the card) only. Raises ``HubNotFoundError``, ``CorruptCacheError`` or
    ``IncompatibleCheckpointError`` (pickle-only weights) with a one-line message.
    """
    fetcher = _Fetcher(repo_id, revision, cache_dir, local_files_only)
    config = fetcher.get(CONFIG_FILE)
    fetcher.get(CARD_FILE, optional=True)
    if weights:
        fetcher.get_weights()
    return config.parent


class _Fetcher:
    """Downloads and checks the files of one repo at one revision."""

    def __init__(self, repo_id: str, revision: str | None, cache_dir, local_files_only: bool | None):
        self.repo_id = repo_id
        self.revision = revision or constants.DEFAULT_REVISION
        self.cache_dir = cache_dir
        # HF_HUB_OFFLINE wins over local_files_only=False, as in huggingface_hub (whose HTTP layer refuses then).
        # Read at call time: huggingface_hub fixed constants.HF_HUB_OFFLINE when it was imported.
        self.offline = bool(local_files_only) or constants.HF_HUB_OFFLINE
        self.where = f"{repo_id}@{self.revision}"

    def get(self, filename: str, optional: bool = False) -> Path | None:
        """The checked local path of ``filename``; None for a missing ``optional`` file."""
        try:
            path = Path(self._download(filename))
        except RemoteEntryNotFoundError:
            if optional:
                return None
            hint = self._file_hint()
            raise HubNotFoundError(f"{self.where} has no {filename} on {constants.ENDPOINT}: {hint}") from None
        except LocalEntryNotFoundError:
            if optional:
                return None  # not cached: whether it exists at all cannot be told offline
            raise HubNotFoundError(self._not_cached(filename)) from None
        problem = _check(path)
        if problem is None:
            return path
        if self.offline:
            raise CorruptCacheError(
                f"cached {filename} of {self.where} is corrupt ({problem}): load it again with downloads on "
                "(unset HF_HUB_OFFLINE, local_files_only=False) and seqzoo fetches a fresh copy"
            )
        path = Path(self._download(filename, force_download=True))
        problem = _check(path)
        if problem is not None:
            raise CorruptCacheError(
                f"{filename} of {self.where} from {constants.ENDPOINT} is corrupt even after a fresh download "
                f"({problem}); the copy on the server is damaged, ask the repo's owner to re-upload it"
            )
        return path

    def get_weights(self) -> list[Path]:
        """The safetensors weights: ``model.safetensors``, or the shards an index lists."""
        try:
            return [self.get(WEIGHTS_FILE)]
        except HubNotFoundError:
            index = self.get(WEIGHTS_INDEX_FILE, optional=True)
            if index is None:
                if not self.offline:
                    self._refuse_pickle_only()
                raise
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [self.get(shard) for shard in shards]

    def _download(self, filename: str, force_download: bool = False) -> str:
        from zoo import __version__

        try:
            return hf_hub_download(
                self.repo_id,
                filename,
                revision=self.revision,
                cache_dir=self.cache_dir,
                local_files_only=self.offline,
                force_download=force_download,
                library_name="seqzoo",
                library_version=__version__,
            )
        except RepositoryNotFoundError:
            raise HubNotFoundError(
                f"Hub repo {self.repo_id!r} not found on {constants.ENDPOINT}: check the org/name spelling, or log in "
                "(`hf auth login`) if it is private or gated"
            ) from None
        except RevisionNotFoundError:
            raise HubNotFoundError(
                f"revision {self.revision!r} not found in {self.repo_id}: use one of its branches, tags or commit "
                f"shas ({self._refs_hint()})"
            ) from None

    def _refuse_pickle_only(self) -> None:
        files = self._files()
        pickled = [f for f in files if f.endswith(PICKLE_SUFFIXES)]
        if pickled and not any(f.endswith(".safetensors") for f in files):
            raise IncompatibleCheckpointError(
                f"{self.where} only has pickled weights ({', '.join(pickled[:3])}); seqzoo loads safetensors only "
                "(never pickle): convert them to model.safetensors and push that"
            )

    def _files(self) -> list[str]:
        try:
            return _api().list_repo_files(self.repo_id, revision=self.revision)
        except (RepositoryNotFoundError, RevisionNotFoundError, OSError):
            return []

    def _file_hint(self) -> str:
        files = [f for f in self._files() if not f.startswith(".")]
        return f"it has {', '.join(files[:8])}" if files else "is it a model repo?"

    def _refs_hint(self) -> str:
        try:
            refs = _api().list_repo_refs(self.repo_id)
        except OSError:
            return "see the repo's page"
        names = [ref.name for ref in refs.branches + refs.tags]
        return "it has " + ", ".join(names[:10])

    def _not_cached(self, filename: str) -> str:
        if self.offline:
            return (
                f"{filename} of {self.where} is not in the local cache and downloads are off (HF_HUB_OFFLINE=1 or "
                f"local_files_only=True): run `zoo download hf-hub:{self.where}` once with network access"
            )
        return (
            f"could not reach {constants.ENDPOINT} to download {filename} of {self.where}, and it is not cached: "
            "check the network (or HF_ENDPOINT) and retry"
        )


def _api() -> HfApi:
    from zoo import __version__

    # A fresh client reads constants.ENDPOINT now (the module-level `huggingface_hub.api` froze it at import).
    return HfApi(library_name="seqzoo", library_version=__version__)


def _check(path: Path) -> str | None:
    """What is wrong with the cached file ``path``, or None when it is intact."""
    blob = path.resolve()
    if not blob.is_file():
        return "missing blob"
    # The cache names a blob after its ETag: the sha256 of an LFS file, the git blob sha1 of a regular file.
    if _SHA256.fullmatch(blob.name):
        digest = hashlib.sha256()
        with blob.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                digest.update(chunk)
        if digest.hexdigest() != blob.name:
            return f"sha256 {digest.hexdigest()[:12]}... does not match the blob name {blob.name[:12]}..."
    elif _GIT_SHA1.fullmatch(blob.name):
        data = blob.read_bytes()
        digest = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        if digest != blob.name:
            return f"git sha1 {digest[:12]}... does not match the blob name {blob.name[:12]}..."
    if path.name.endswith(".safetensors"):
        return _check_safetensors(blob)
    return None


def _check_safetensors(path: Path) -> str | None:
    """Header and size check of a safetensors file (cheap: reads only the header)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            return f"{size} bytes, shorter than a safetensors header"
        length = int.from_bytes(head, "little")
        if length > min(constants.SAFETENSORS_MAX_HEADER_LENGTH, size - 8):
            return f"header length {length} does not fit in {size} bytes"
        try:
            header = json.loads(f.read(length))
        except ValueError:
            return "unreadable safetensors header"
    ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
    expected = 8 + length + max(ends, default=0)
    if expected != size:
        return f"size {size} bytes, the safetensors header says {expected}"
    return None
