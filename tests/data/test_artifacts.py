"""Pinned artifacts: mirror -> cache -> pip, sha256 pins, nested members, atomic cache writes (no network)."""

import hashlib
import io
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from zoo.data import artifacts
from zoo.data.artifacts import (
    ArtifactError,
    ChecksumError,
    DebianArtifact,
    PyPIArtifact,
    default_cache_dir,
    fetch_artifact,
    fetch_member,
    fetch_members,
)

WHEEL = "toydata-1.0-py3-none-any.whl"
TABLE = b"x,y\n" + b"1,2\n" * 1000
RECORD = b"LOCUS toy\n" * 50


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def mirror(tmp_path) -> Path:
    """A folder holding a toy wheel: a plain member and a zip nested inside it."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    inner = _zip_bytes({"chr01.gb": RECORD, "notes/readme.txt": b"hello"})
    wheel = _zip_bytes({"toydata/table.csv": TABLE, "toydata/genome.zip": inner, "toydata/__init__.py": b""})
    (folder / WHEEL).write_bytes(wheel)
    return folder


@pytest.fixture
def artifact() -> PyPIArtifact:
    return PyPIArtifact("toydata", "1.0", WHEEL)


@pytest.fixture
def no_pip(monkeypatch):
    """Fail the test if anything shells out to pip."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"unexpected subprocess call {args}")

    monkeypatch.setattr(artifacts.subprocess, "run", refuse)


def test_fetch_member_from_mirror_then_cache_hit(tmp_path, mirror, artifact, no_pip):
    cache = tmp_path / "cache"
    path = fetch_member(artifact, "toydata/table.csv", _sha(TABLE), cache_dir=cache, mirror=mirror)
    assert path.read_bytes() == TABLE
    assert path.is_relative_to(cache)
    (mirror / WHEEL).unlink()  # the second call must not need the artifact at all
    again = fetch_member(artifact, "toydata/table.csv", _sha(TABLE), cache_dir=cache, mirror=mirror)
    assert again == path and again.read_bytes() == TABLE


def test_fetch_member_nested_zip(tmp_path, mirror, artifact, no_pip):
    cache = tmp_path / "cache"
    path = fetch_member(artifact, ("toydata/genome.zip", "chr01.gb"), _sha(RECORD), cache_dir=cache, mirror=mirror)
    assert path.read_bytes() == RECORD
    # The outer archive can be fetched too: its cached file and the folder of its members do not collide.
    inner_sha = _sha(zipfile.ZipFile(mirror / WHEEL).read("toydata/genome.zip"))
    outer = fetch_member(artifact, "toydata/genome.zip", inner_sha, cache_dir=cache, mirror=mirror)
    assert zipfile.ZipFile(outer).read("chr01.gb") == RECORD


def test_fetch_member_sha_mismatch_names_file_expected_and_actual(tmp_path, mirror, artifact, no_pip):
    cache = tmp_path / "cache"
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as error:
        fetch_member(artifact, "toydata/table.csv", wrong, cache_dir=cache, mirror=mirror)
    message = str(error.value)
    assert wrong in message and _sha(TABLE) in message and "toydata/table.csv" in message and WHEEL in message
    members = cache / "pypi" / "toydata-1.0" / "members"
    assert [p for p in members.rglob("*") if p.is_file()] == []  # neither the bad file nor a temporary one


def test_fetch_member_interrupted_write_leaves_no_partial_file(tmp_path, mirror, artifact, no_pip, monkeypatch):
    cache = tmp_path / "cache"

    class Broken(io.BytesIO):
        def read(self, size=-1):
            if self.tell() > 0:
                raise OSError("disk unplugged")
            return super().read(100)

    class BrokenMember:
        def __init__(self, *args):
            pass

        def __enter__(self):
            return Broken(TABLE)

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(artifacts, "_open_member", BrokenMember)
    with pytest.raises(OSError, match="disk unplugged"):
        fetch_member(artifact, "toydata/table.csv", _sha(TABLE), cache_dir=cache, mirror=mirror)
    members = cache / "pypi" / "toydata-1.0" / "members"
    assert [p for p in members.rglob("*") if p.is_file()] == []


def test_fetch_member_replaces_a_damaged_cache_entry(tmp_path, mirror, artifact, no_pip):
    cache = tmp_path / "cache"
    path = fetch_member(artifact, "toydata/table.csv", _sha(TABLE), cache_dir=cache, mirror=mirror)
    path.write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="sha256 mismatch"):
        again = fetch_member(artifact, "toydata/table.csv", _sha(TABLE), cache_dir=cache, mirror=mirror)
    assert again.read_bytes() == TABLE


def test_fetch_member_missing_member_lists_the_archive(tmp_path, mirror, artifact, no_pip):
    with pytest.raises(ArtifactError, match=r"no member 'toydata/nope.csv'.*toydata/table.csv"):
        fetch_member(artifact, "toydata/nope.csv", "0" * 64, cache_dir=tmp_path / "cache", mirror=mirror)


@pytest.mark.parametrize("member", ["../escape.txt", "/etc/passwd", "", ("toydata/genome.zip", "../x")])
def test_fetch_member_refuses_paths_outside_the_cache(tmp_path, artifact, member):
    with pytest.raises(ValueError, match="member"):
        fetch_member(artifact, member, "0" * 64, cache_dir=tmp_path / "cache")


def test_fetch_artifact_checks_the_wheel_pin(tmp_path, mirror, no_pip):
    pinned = PyPIArtifact("toydata", "1.0", WHEEL, sha256="f" * 64)
    with pytest.raises(ChecksumError, match=str(mirror / WHEEL)):
        fetch_artifact(pinned, cache_dir=tmp_path / "cache", mirror=mirror)


def test_fetch_artifact_downloads_with_pip_into_the_cache(tmp_path, mirror, artifact, monkeypatch):
    calls = []

    def fake_pip(command, **kwargs):
        calls.append(command)
        dest = Path(command[command.index("-d") + 1])
        (dest / WHEEL).write_bytes((mirror / WHEEL).read_bytes())
        return subprocess.CompletedProcess(command, 0, "Saved", "")

    monkeypatch.setattr(artifacts.subprocess, "run", fake_pip)
    cache = tmp_path / "cache"
    path = fetch_artifact(artifact, cache_dir=cache)
    assert path == cache / "pypi" / "toydata-1.0" / WHEEL and path.read_bytes() == (mirror / WHEEL).read_bytes()
    (command,) = calls
    assert command[1:4] == ["-m", "pip", "download"]
    assert {"--no-deps", "--only-binary=:all:", "toydata==1.0"} <= set(command)
    assert fetch_artifact(artifact, cache_dir=cache) == path and len(calls) == 1  # cache hit: no second pip call
    assert [p.name for p in path.parent.iterdir()] == [WHEEL]  # the download folder is gone


def test_fetch_artifact_downloads_again_over_a_damaged_cached_wheel(tmp_path, mirror, monkeypatch):
    wheel = (mirror / WHEEL).read_bytes()
    calls = []

    def fake_pip(command, **kwargs):
        calls.append(command)
        (Path(command[command.index("-d") + 1]) / WHEEL).write_bytes(wheel)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(artifacts.subprocess, "run", fake_pip)
    pinned = PyPIArtifact("toydata", "1.0", WHEEL, sha256=_sha(wheel))
    path = fetch_artifact(pinned, cache_dir=tmp_path / "cache")
    path.write_bytes(wheel[:100])
    with pytest.warns(UserWarning, match="Downloading it again"):
        assert fetch_artifact(pinned, cache_dir=tmp_path / "cache").read_bytes() == wheel
    assert len(calls) == 2


def test_fetch_artifact_pip_failure_says_what_was_tried(tmp_path, artifact, monkeypatch):
    def failing_pip(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution found for toydata==1.0")

    monkeypatch.setattr(artifacts.subprocess, "run", failing_pip)
    empty_mirror = tmp_path / "empty"
    empty_mirror.mkdir()
    with pytest.raises(ArtifactError) as error:
        fetch_artifact(artifact, cache_dir=tmp_path / "cache", mirror=empty_mirror)
    message = str(error.value)
    for expected in (
        f"mirror: {empty_mirror / WHEEL}",
        f"cache: {tmp_path / 'cache'}",
        "No matching distribution found",
        "pip download --no-deps --only-binary=:all: -d MIRROR toydata==1.0",
        "mirror=",
    ):
        assert expected in message
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))


def test_pypi_artifact_refuses_sdists():
    with pytest.raises(ValueError, match="wheels only"):
        PyPIArtifact("dms_tools2", "2.6.12", "dms_tools2-2.6.12.tar.gz")


def test_default_cache_dir_follows_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "seqzoo" / "artifacts"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # the XDG spec says: ignore relative values
    assert default_cache_dir() == Path.home() / ".cache" / "seqzoo" / "artifacts"


# --- Debian packages -------------------------------------------------------------------------------------

FASTA = b">chrT toy\n" + b"ACGT" * 500 + b"\n"
DEB_POOL = "pool/main/t/toygenome/toygenome_1.0-1_all.deb"


def _ar_member(name: str, data: bytes) -> bytes:
    header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
    assert len(header) == 60
    return header + data + (b"\n" if len(data) % 2 else b"")


def _deb_bytes(files: dict[str, bytes], compression: str = "xz") -> bytes:
    """A minimal .deb as dpkg-deb writes it: debian-binary, control.tar.xz, then data.tar.<compression>."""
    tarball = io.BytesIO()
    with tarfile.open(fileobj=tarball, mode=f"w:{compression}") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo("./" + path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    control = io.BytesIO()
    with tarfile.open(fileobj=control, mode="w:xz"):
        pass
    return (
        b"!<arch>\n"
        + _ar_member("debian-binary", b"2.0\n")
        + _ar_member("control.tar.xz", control.getvalue())
        + _ar_member(f"data.tar.{compression}", tarball.getvalue())
    )


@pytest.mark.parametrize("compression", ["xz", "gz"])
def test_debian_member_from_mirror(tmp_path, compression, no_pip):
    deb = _deb_bytes({"usr/share/doc/toy/chrT.fa": FASTA, "usr/share/doc/toy/README": b"odd length!"}, compression)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "toygenome_1.0-1_all.deb").write_bytes(deb)
    artifact = DebianArtifact("toygenome", "1.0-1", DEB_POOL, sha256=_sha(deb))
    path = fetch_member(artifact, "usr/share/doc/toy/chrT.fa", _sha(FASTA), cache_dir=tmp_path / "c", mirror=mirror)
    assert path.read_bytes() == FASTA
    assert "debian/toygenome-1.0-1" in path.as_posix()
    with pytest.raises(ArtifactError, match=r"installs no file 'usr/share/doc/toy/missing'.*chrT\.fa"):
        fetch_member(artifact, "usr/share/doc/toy/missing", _sha(FASTA), cache_dir=tmp_path / "c", mirror=mirror)


def test_debian_members_come_out_of_one_pass(tmp_path, no_pip, monkeypatch):
    files = {"usr/share/toy/a.fa": FASTA, "usr/share/toy/b.txt": b"odd length!", "usr/share/toy/c.txt": b"c"}
    deb = _deb_bytes(files)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "toygenome_1.0-1_all.deb").write_bytes(deb)
    artifact = DebianArtifact("toygenome", "1.0-1", DEB_POOL, sha256=_sha(deb))
    opened = []
    real_open = artifacts.tarfile.open
    monkeypatch.setattr(artifacts.tarfile, "open", lambda *a, **k: opened.append(k.get("mode")) or real_open(*a, **k))
    wanted = [(path, _sha(data)) for path, data in reversed(files.items())]
    paths = fetch_members(artifact, wanted, cache_dir=tmp_path / "c", mirror=mirror)
    assert [p.read_bytes() for p in paths] == list(reversed(files.values()))
    assert len(opened) == 1, "one pass over data.tar.xz for all three members"
    assert fetch_members(artifact, wanted, cache_dir=tmp_path / "c", mirror=mirror) == paths and len(opened) == 1
    with pytest.raises(ChecksumError):
        fetch_members(artifact, [("usr/share/toy/b.txt", _sha(b"other"))], cache_dir=tmp_path / "d", mirror=mirror)


def test_debian_download_falls_back_to_the_next_mirror(tmp_path, monkeypatch):
    deb = _deb_bytes({"usr/share/doc/toy/chrT.fa": FASTA})
    tried = []

    def fake_urlopen(url, timeout):
        tried.append(url)
        if "deb.debian.org" in url:
            raise artifacts.urllib.error.URLError("404 Not Found")
        return io.BytesIO(deb)

    monkeypatch.setattr(artifacts.urllib.request, "urlopen", fake_urlopen)
    artifact = DebianArtifact("toygenome", "1.0-1", DEB_POOL, sha256=_sha(deb))
    path = fetch_member(artifact, "usr/share/doc/toy/chrT.fa", _sha(FASTA), cache_dir=tmp_path / "c")
    assert path.read_bytes() == FASTA
    assert [url.split("/pool/")[1] for url in tried] == [DEB_POOL.removeprefix("pool/")] * 2
    assert "snapshot.debian.org" in tried[1]


def test_debian_unreachable_and_damaged(tmp_path, monkeypatch):
    def offline(url, timeout):
        raise artifacts.urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(artifacts.urllib.request, "urlopen", offline)
    artifact = DebianArtifact("toygenome", "1.0-1", DEB_POOL, sha256="0" * 64)
    expected = r"(?s)Debian mirrors: .*Name or service not known.*curl -o MIRROR/toygenome"
    with pytest.raises(ArtifactError, match=expected):
        fetch_artifact(artifact, cache_dir=tmp_path / "c")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "toygenome_1.0-1_all.deb").write_bytes(b"not a deb")
    with pytest.raises(ChecksumError):
        fetch_artifact(artifact, cache_dir=tmp_path / "c", mirror=mirror)
    with pytest.raises(ValueError, match="pool_path"):
        DebianArtifact("toygenome", "1.0-1", "toygenome_1.0-1_all.deb", sha256="0" * 64)
