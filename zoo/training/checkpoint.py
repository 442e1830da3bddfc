"""Atomic checkpoint files.

Lightning's own ``_atomic_save`` goes through an fsspec transaction whose local implementation writes
to ``tempfile.mkstemp()`` (the system temp folder) and then ``shutil.move``s the file: across file
systems (``/tmp`` on tmpfs, checkpoints on disk) that move is a copy into the final path, so a killed
process can leave a truncated ``last.ckpt`` over a good one. Here the temporary file lives beside the
target and ``os.replace`` swaps it in, which is atomic on POSIX and Windows.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from zoo.data.artifacts import default_file_mode


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)`` such that ``path`` is either the old file or the complete new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, default_file_mode())  # mkstemp is owner-only (0600): keep the mode torch.save would give
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O that writes local files atomically (see the module docstring)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        """Write ``checkpoint`` to ``path`` atomically."""
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        if "://" in str(path):  # remote file systems: fall back to Lightning's fsspec path
            super().save_checkpoint(checkpoint, path)
            return
        atomic_torch_save(checkpoint, path)
