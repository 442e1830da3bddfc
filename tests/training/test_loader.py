"""ResumableSampler / ResumableDataLoader: rank splits, resume offsets, state round trips."""

import pytest
import torch
from torch.utils.data import Dataset

from zoo.training.loader import ResumableDataLoader, ResumableSampler, SampleKey


class KeyEcho(Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, key: SampleKey):
        return torch.tensor([key.epoch, key.index])


def _indices(loader):
    return [row[1].item() for batch in loader for row in batch]


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_partition_each_global_batch(world):
    n, batch = 60, 2
    single = ResumableSampler(n, shuffle=True, seed=5, drop_last=True)
    order = [k.index for k in single]
    per_rank = [
        [k.index for k in ResumableSampler(n, shuffle=True, seed=5, num_replicas=world, rank=r, drop_last=True)]
        for r in range(world)
    ]
    # Step s of W processes with batch b reads exactly the samples of step s of one process with batch W*b.
    for step in range(len(per_rank[0]) // batch):
        together = sorted(i for r in range(world) for i in per_rank[r][step * batch : (step + 1) * batch])
        assert together == sorted(order[step * world * batch : (step + 1) * world * batch])


def test_order_changes_with_epoch_and_is_reproducible():
    a = ResumableSampler(50, shuffle=True, seed=1)
    first = [k.index for k in a]
    a.set_epoch(1)
    second = [k.index for k in a]
    assert first != second and sorted(first) == sorted(second) == list(range(50))
    b = ResumableSampler(50, shuffle=True, seed=1)
    b.set_epoch(1)
    assert [k.index for k in b] == second
    assert all(k.epoch == 1 for k in b)


def test_loader_resumes_mid_epoch_from_its_state():
    dataset = KeyEcho(40)
    full = ResumableDataLoader(dataset, ResumableSampler(40, shuffle=True, seed=3), batch_size=4)
    full.sampler.set_epoch(2)
    expected = _indices(full)

    interrupted = ResumableDataLoader(dataset, ResumableSampler(40, shuffle=True, seed=3), batch_size=4)
    interrupted.sampler.set_epoch(2)
    iterator = iter(interrupted)
    seen = [row[1].item() for _ in range(3) for row in next(iterator)]
    state = interrupted.state_dict()
    assert state == {"epoch": 2, "batches": 3}

    resumed = ResumableDataLoader(dataset, ResumableSampler(40, shuffle=True, seed=3), batch_size=4)
    resumed.load_state_dict(state)
    rest = _indices(resumed)
    assert seen + rest == expected
    assert resumed.state_dict() == {"epoch": 2, "batches": 10}
    assert len(resumed) == 10  # Lightning counts a full epoch even when resuming
    # The offset applies to the resumed epoch only.
    resumed.sampler.set_epoch(3)
    assert len(_indices(resumed)) == 40


def test_loader_refuses_its_own_shuffle():
    with pytest.raises(TypeError, match="shuffle"):
        ResumableDataLoader(KeyEcho(4), ResumableSampler(4, shuffle=False), batch_size=2, shuffle=True)


def test_empty_sampler_is_an_error():
    with pytest.raises(ValueError, match="at least one sample"):
        ResumableSampler(0, shuffle=False)
