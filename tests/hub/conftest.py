"""The ``hub_server`` fixture: a Hub-compatible server on 127.0.0.1 that huggingface_hub talks to."""

import importlib.util
import sys
from pathlib import Path

import pytest
from huggingface_hub import constants


def _load_server_module():
    # tests/ is not a package (pytest runs with --import-mode=importlib), so the server module is loaded by path.
    spec = importlib.util.spec_from_file_location("seqzoo_test_hub_server", Path(__file__).with_name("hub_server.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


HubServer = _load_server_module().HubServer


@pytest.fixture
def hub_server(tmp_path, monkeypatch):
    """A running test Hub; huggingface_hub is pointed at it, online, with plain HTTP/LFS uploads (no Xet).

    The client reads HF_ENDPOINT, HF_HUB_OFFLINE and HF_HUB_DISABLE_XET into ``huggingface_hub.constants``
    at import time, so both the variables and the constants are set.
    """
    server = HubServer(tmp_path / "hub-store").start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", server.url)
    template = server.url + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    yield server
    server.stop()
