"""Data loading whose position inside an epoch survives a checkpoint.

Lightning saves ``state_dict()`` of every train loader that has one and restores it on resume
(``fit_loop`` -> ``CombinedLoader``); a sized loader is not pre-fetched, so the number of batches a
loader has yielded is exactly the number of batches trained on when a checkpoint is written.

Why not torchdata's ``StatefulDataLoader``: it snapshots worker and sampler internals and is another
heavy dependency; our datasets draw all randomness from ``(seed, epoch, index)``, so the position
``(epoch, batches yielded)`` is the whole state.

Samples are addressed by ``SampleKey(epoch, index)``: a dataset derives any randomness it needs
(window offsets, masking, reverse-complement augmentation) from that key, so a sample does not depend
on worker count, process count or on whether the run was resumed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler


class SampleKey(NamedTuple):
    """What a ``ResumableSampler`` yields and a keyed dataset's ``__getitem__`` receives."""

    epoch: int
    index: int


class ResumableSampler(DistributedSampler):
    """Seeded per-epoch order over ``range(length)``, split across ranks, able to start mid-epoch.

    It subclasses ``DistributedSampler`` so Lightning neither replaces it under DDP nor wraps it; rank
    ``r`` of ``W`` takes every ``W``-th key of the global order, so one process with batch ``W * b``
    sees, step for step, the same samples as ``W`` processes with batch ``b``.
    """

    def __init__(
        self,
        length: int,
        *,
        shuffle: bool,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = False,
    ):
        if length <= 0:
            raise ValueError(f"a sampler needs at least one sample, got length {length}")
        self.length = length
        # DistributedSampler's own bookkeeping reads len(dataset) only.
        super().__init__(
            range(length), num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
        self.start = 0

    def global_order(self) -> list[int]:
        """This epoch's order of all sample indices (the same on every rank)."""
        if not self.shuffle:
            return list(range(self.length))
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return torch.randperm(self.length, generator=generator).tolist()

    def __iter__(self) -> Iterator[SampleKey]:
        order = self.global_order()
        if self.drop_last:
            order = order[: self.num_samples * self.num_replicas]
        mine = order[self.rank :: self.num_replicas]
        start, self.start = self.start, 0  # a resume offset applies to one epoch only
        for index in mine[start:]:
            yield SampleKey(self.epoch, index)

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples
        return len(range(self.rank, self.length, self.num_replicas))


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` over a ``ResumableSampler`` with ``state_dict`` / ``load_state_dict``.

    The state is ``{"epoch", "batches"}``: the epoch in progress and how many batches of it were
    handed out. Restoring it makes the next iteration skip those batches without loading them.
    """

    def __init__(self, dataset: Dataset, sampler: ResumableSampler, batch_size: int, **kwargs: Any):
        if "shuffle" in kwargs or "batch_sampler" in kwargs:
            raise TypeError("ResumableDataLoader takes its order from the sampler: do not pass shuffle/batch_sampler")
        super().__init__(dataset, batch_size=batch_size, sampler=sampler, **kwargs)
        self._batches = 0

    def __iter__(self):
        # The sampler consumes its start offset at the beginning of this epoch's iteration.
        self._batches = self.sampler.start // self.batch_size
        for batch in super().__iter__():
            self._batches += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        """The position to resume from."""
        return {"epoch": self.sampler.epoch, "batches": self._batches}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue after ``state["batches"]`` batches of epoch ``state["epoch"]``."""
        self.sampler.set_epoch(state["epoch"])
        self.sampler.start = state["batches"] * self.batch_size
        self._batches = state["batches"]


def resumable_loader(
    datamodule, dataset, *, shuffle: bool, batch_size: int, seed: int, num_workers: int = 0, drop_last: bool, **kwargs
) -> ResumableDataLoader:
    """A ``ResumableDataLoader`` over ``dataset`` for this process's rank of ``datamodule``'s trainer (rank 0
    of 1 without a trainer); ``kwargs`` go to the loader (e.g. ``collate_fn``)."""
    trainer = datamodule.trainer
    world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
    sampler = ResumableSampler(
        len(dataset), shuffle=shuffle, seed=seed, num_replicas=world, rank=rank, drop_last=drop_last
    )
    return ResumableDataLoader(
        dataset,
        sampler,
        batch_size=batch_size,
        num_workers=num_workers,
        drop_last=drop_last,
        persistent_workers=num_workers > 0,
        **kwargs,
    )
