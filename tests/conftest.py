"""Fixtures shared by the whole suite."""

import os

import pytest
import torch

if not torch.cuda.is_available():
    # The `interpret` tier: Triton kernels run on CPU tensors through Triton's interpreter. It must be set
    # before any @triton.jit runs; the ops import their Triton modules lazily, at first use.
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    deterministic = torch.are_deterministic_algorithms_enabled()
    yield
    # A Trainer built in-process (deterministic=True) switches this on for the whole interpreter.
    torch.use_deterministic_algorithms(deterministic)


@pytest.fixture
def nan_poisoned_empty(monkeypatch):
    """Make ``torch.empty``/``empty_like`` return NaN-filled tensors so unwritten outputs fail asserts."""
    real_empty, real_empty_like = torch.empty, torch.empty_like

    def empty(*args, **kwargs):
        t = real_empty(*args, **kwargs)
        return t.fill_(float("nan")) if t.is_floating_point() else t

    def empty_like(*args, **kwargs):
        t = real_empty_like(*args, **kwargs)
        return t.fill_(float("nan")) if t.is_floating_point() else t

    monkeypatch.setattr(torch, "empty", empty)
    monkeypatch.setattr(torch, "empty_like", empty_like)
    yield
