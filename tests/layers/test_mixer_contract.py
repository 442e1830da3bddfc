"""The mixer contract, checked for every kind in MIXER_CLASSES: parallel == step == chunked with state."""

import pytest
import torch

from zoo.backbone import LAYER_KINDS, MIXER_CLASSES
from zoo.layers.attention import AttentionConfig
from zoo.layers.hyena import HyenaConfig
from zoo.layers.mamba import MambaConfig
from zoo.layers.mamba2 import Mamba2Config
from zoo.layers.mlstm import MLSTMConfig
from zoo.layers.slstm import SLSTMConfig
from zoo.testing import assert_close

D_MODEL = 32
SMALL_CONFIGS = {
    "attention": AttentionConfig(num_heads=2),
    "hyena": HyenaConfig(l_max=64),
    "mamba": MambaConfig(d_state=4, chunk_size=8),
    "mamba2": Mamba2Config(d_state=8, headdim=8, chunk_size=8),
    "mlstm": MLSTMConfig(num_heads=2, chunk_size=8),
    "slstm": SLSTMConfig(num_heads=2),
}
KINDS = sorted(MIXER_CLASSES)


def test_every_kind_has_a_letter_and_a_small_config():
    assert sorted(LAYER_KINDS.values()) == KINDS
    assert sorted(SMALL_CONFIGS) == KINDS


def make(kind: str):
    return MIXER_CLASSES[kind](D_MODEL, SMALL_CONFIGS[kind]).eval()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("T", [1, 13, 29])
def test_parallel_forward_equals_repeated_step(kind, T):
    mixer, x = make(kind), torch.randn(2, T, D_MODEL)
    with torch.no_grad():
        y, final = mixer(x)
        state, ys = mixer.init_state(2), []
        for t in range(T):
            y_t, state = mixer.step(x[:, t], state)
            ys.append(y_t)
    assert_close(f"{kind} y", y, torch.stack(ys, 1), 1e-4)
    for i, (a, b) in enumerate(zip(final, state)):
        if torch.is_tensor(a):
            assert_close(f"{kind} state[{i}]", a.float(), b.float(), 1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_pieces_with_state_equal_one_pass_and_gradients_flow(kind):
    mixer, x = make(kind), torch.randn(2, 37, D_MODEL, requires_grad=True)
    y, _ = mixer(x)
    y1, s1 = mixer(x[:, :10])
    y2, s2 = mixer(x[:, 10:25], s1)
    y3, _ = mixer(x[:, 25:], s2)
    assert_close(f"{kind} y", y, torch.cat([y1, y2, y3], 1), 1e-5)
    y.pow(2).mean().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for name, p in mixer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), f"{kind}.{name} gets no finite gradient"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        (torch.randn(2, 5, D_MODEL + 1), ValueError, "d_model=32"),
        (torch.randn(5, D_MODEL), ValueError, r"\[B, T, 32\]"),
        (torch.ones(2, 5, D_MODEL, dtype=torch.long), TypeError, "floating-point"),
        (torch.randn(2, 0, D_MODEL), ValueError, "empty sequence"),
    ],
    ids=["wrong-width", "2d", "int-dtype", "empty"],
)
def test_bad_input_is_rejected_before_any_compute(kind, x, error, match):
    with pytest.raises(error, match=match):
        make(kind)(x)


@pytest.mark.parametrize("kind", KINDS)
def test_step_without_state_says_what_to_do(kind):
    with pytest.raises(ValueError, match="init_state"):
        make(kind).step(torch.randn(2, D_MODEL), None)
