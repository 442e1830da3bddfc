"""Parity with NX-AI xlstm's ``sLSTMLayer`` (vanilla torch backend, CPU, fp32) on the same random weights.

The key map is the identity; only the two cell tensors are permuted, because NX-AI's vanilla backend
stores them in another layout than its CUDA backend (whose layout we keep, see ``PARAMETER_LAYOUT``).
Not compared: NX-AI's ``sLSTMLayer.step``, whose cell returns the state it was given instead of the
new one (xlstm 2.0.6, ``sLSTMCellBase.step``), so it cannot decode more than one token; and NX-AI's
``min(exp(.), 1)`` gate clamps, which never change a value of the layer (see kernels/slstm/README.md).
"""

import pytest
import torch
import xlstm.blocks.slstm.layer as xlstm_layer

from zoo.layers.slstm import SLSTM, SLSTMConfig, SLSTMState

pytestmark = pytest.mark.slow

D_MODEL, HEADS, WIDTH = 16, 4, 4


def from_nxai_vanilla(state_dict: dict[str, torch.Tensor], heads: int) -> dict[str, torch.Tensor]:
    """NX-AI ``sLSTMLayer`` (vanilla backend) state dict -> ours: same keys, two cell tensors permuted."""
    out = dict(state_dict)
    rk = state_dict["slstm_cell._recurrent_kernel_"]  # [H, 4*D_out, D_in]
    d = rk.shape[-1]
    out["slstm_cell._recurrent_kernel_"] = rk.view(heads, 4, d, d).permute(0, 3, 1, 2).reshape(heads, d, 4 * d)
    bias = state_dict["slstm_cell._bias_"]  # [4*H*D] from [4, H, D]
    out["slstm_cell._bias_"] = bias.view(4, heads, d).transpose(0, 1).reshape(-1)
    return out


def make_pair(conv1d_kernel_size=WIDTH):
    torch.manual_seed(0)
    cfg = xlstm_layer.sLSTMLayerConfig(
        embedding_dim=D_MODEL,
        num_heads=HEADS,
        conv1d_kernel_size=conv1d_kernel_size,
        backend="vanilla",
        dtype="float32",
    )
    theirs = xlstm_layer.sLSTMLayer(cfg).eval()
    with torch.no_grad():
        for p in theirs.parameters():  # their init zeroes the recurrent kernel and the norm weight
            p.copy_(0.5 * torch.randn_like(p))
    ours = SLSTM(D_MODEL, SLSTMConfig(num_heads=HEADS, conv1d_kernel_size=conv1d_kernel_size))
    ours.load_state_dict(from_nxai_vanilla(theirs.state_dict(), HEADS), strict=True)
    return ours, theirs


def their_state(state: SLSTMState) -> dict[str, torch.Tensor]:
    """Our state in NX-AI's form: conv ``[B, W-1, d]``, cell ``[4, B, d]`` stacked ``(h, c, n, m)``."""
    cell = torch.stack([s.flatten(1) for s in state[1:]])
    return {"conv_state": state.conv.transpose(1, 2), "slstm_state": cell}


@pytest.mark.parametrize("conv1d_kernel_size", [WIDTH, 0], ids=["conv4", "noconv"])
def test_slstm_matches_nxai_slstm_layer(conv1d_kernel_size):
    ours, theirs = make_pair(conv1d_kernel_size)
    x = torch.randn(2, 29, D_MODEL)
    with torch.no_grad():
        y, state = ours(x)
        y_theirs, s_theirs = theirs(x, return_last_state=True)
    assert (y - y_theirs).abs().max() < 1e-4
    assert (their_state(state)["slstm_state"] - s_theirs["slstm_state"]).abs().max() < 1e-4
    if conv1d_kernel_size:
        assert (their_state(state)["conv_state"] - s_theirs["conv_state"]).abs().max() < 1e-6


def test_slstm_matches_nxai_when_continuing_from_a_state():
    ours, theirs = make_pair()
    x = torch.randn(2, 20, D_MODEL)
    with torch.no_grad():
        _, state = ours(x[:, :7])
        y2, _ = ours(x[:, 7:], state)
        y2_theirs = theirs(x[:, 7:], **their_state(state))
    assert (y2 - y2_theirs).abs().max() < 1e-4
