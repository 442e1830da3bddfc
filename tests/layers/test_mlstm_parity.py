"""Parity of :class:`MLSTM` with transformers' ``xLSTMLayer`` and NX-AI's ``xlstm_large`` ``mLSTMLayer``.

Each reference is built with a tiny config and its CPU path (``chunkwise--native_autograd`` chunks,
``native`` sequence/step kernels, ``mode="inference"`` so any length and a carried state work, fp32
kernels); its ``state_dict`` loads into ours by identity. The only representational difference is the
stabiliser state ``m``: ``[B, H, 1]`` there, ``[B, H]`` here.

Why the match is to ~1e-6 and not bit-exact: the cells are the same math but not the same float program.
xlstm_large pads the last partial chunk with ``f = +25, i = -25`` (a forget gate of ``1 - 1e-11``, an input
gate of ``e^-25``), transformers runs the remainder through its step loop, and ours runs it as a shorter
chunk; the chunk-internal stabilisers are computed in a different but equivalent order.
"""

import importlib.util
from unittest import mock

import pytest
import torch
import transformers.utils

from zoo.layers.mlstm import MLSTM, MLSTMConfig, MLSTMState

D_MODEL, HEADS, CHUNK = 16, 2, 8


def transformers_layer(native_only: bool):
    """transformers' ``xLSTMBlock(config).mlstm_layer``.

    With the ``xlstm`` package installed, transformers' xLSTM re-exports xlstm_large's block; ``native_only``
    re-executes its modeling file with ``is_xlstm_available`` patched to False (the module is not put in
    ``sys.modules``), which yields transformers' own in-file implementation.
    """
    name = "transformers.models.xlstm.modeling_xlstm"
    modeling = importlib.import_module(name)  # also what transformers' docstring tooling looks up by name
    if native_only:
        spec = importlib.util.find_spec(name)
        modeling = importlib.util.module_from_spec(spec)
        with mock.patch.object(transformers.utils, "is_xlstm_available", lambda: False):
            spec.loader.exec_module(modeling)
    config = transformers.xLSTMConfig(
        hidden_size=D_MODEL,
        num_heads=HEADS,
        num_hidden_layers=1,
        vocab_size=8,
        chunk_size=CHUNK,
        mode="inference",
        autocast_kernel_dtype="float32",
        chunkwise_kernel="chunkwise--native_autograd",
        sequence_kernel="native_sequence__native",
        step_kernel="native",
    )
    return modeling.xLSTMBlock(config).mlstm_layer


def xlstm_large_layer():
    import mlstm_kernels.torch.backend_module as backend
    import xlstm.xlstm_large.model as model

    config = model.mLSTMLayerConfig(
        embedding_dim=D_MODEL,
        num_heads=HEADS,
        mlstm_backend=backend.mLSTMBackendConfig(
            chunkwise_kernel="chunkwise--native_autograd",
            sequence_kernel="native_sequence__native",
            step_kernel="native",
            mode="inference",
            chunk_size=CHUNK,
            autocast_kernel_dtype="float32",
        ),
    )
    return model.mLSTMLayer(config)


REFERENCES = {
    "transformers": lambda: transformers_layer(native_only=False),
    "transformers-native": lambda: transformers_layer(native_only=True),
    "xlstm_large": xlstm_large_layer,
}


@pytest.mark.parametrize("reference", list(REFERENCES))
def test_mlstm_matches_reference_layer(reference):
    torch.manual_seed(0)
    theirs = REFERENCES[reference]().eval()
    with torch.no_grad():
        for p in theirs.parameters():
            p.copy_(0.5 * torch.randn_like(p))
    ours = MLSTM(D_MODEL, MLSTMConfig(num_heads=HEADS, chunk_size=CHUNK)).eval()
    assert set(ours.state_dict()) == set(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict())

    x = torch.randn(2, 30, D_MODEL)  # 30 = 3 chunks + a partial one
    with torch.no_grad():
        y_theirs, (C, n, m) = theirs(x[:, :21])
        y_ours, state = ours(x[:, :21])
        torch.testing.assert_close(y_ours, y_theirs, rtol=0, atol=1e-4)
        torch.testing.assert_close(state, MLSTMState(C, n, m.squeeze(-1)), rtol=0, atol=1e-4)

        # continue from the state: a longer piece, then one token (their single-step path)
        y_theirs, (C, n, m) = theirs(x[:, 21:29], (C, n, m))
        y_ours, state = ours(x[:, 21:29], state)
        torch.testing.assert_close(y_ours, y_theirs, rtol=0, atol=1e-4)
        y_theirs, (C, n, m) = theirs(x[:, 29:], (C, n, m))
        y_ours, _ = ours(x[:, 29:], state)
        y_step, state = ours.step(x[:, 29], state)
        torch.testing.assert_close(y_ours, y_theirs, rtol=0, atol=1e-4)
        torch.testing.assert_close(y_step, y_theirs[:, 0], rtol=0, atol=1e-4)
        torch.testing.assert_close(state, MLSTMState(C, n, m.squeeze(-1)), rtol=0, atol=1e-4)
