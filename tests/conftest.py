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
def one_thread():
    """One intra-op thread: on tiny matrices extra threads only add synchronisation, which dominates on a busy
    machine (``pytestmark = pytest.mark.usefixtures("one_thread")`` in a module of tiny models)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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


@pytest.fixture(autouse=True)
def _hub_offline_with_private_home(request, tmp_path_factory, monkeypatch):
    """Every test runs with ``HF_HUB_OFFLINE=1`` and a temporary ``HF_HOME`` (no token, an empty cache).

    huggingface_hub reads these variables into ``huggingface_hub.constants`` at import time, so the constants
    are patched too. A test that uses the ``hub_server`` fixture (tests/hub/conftest.py) is switched online
    by that fixture, against the local test Hub only.
    """
    from huggingface_hub import constants

    home = tmp_path_factory.mktemp("hf_home")
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_XET_CACHE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HUGGINGFACE_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_ASSETS_CACHE", str(home / "assets"))
    monkeypatch.setattr(constants, "HF_XET_CACHE", str(home / "xet"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", "hub_server" not in request.fixturenames)
    yield
