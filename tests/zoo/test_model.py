"""SeqModel behaviour: state continuation, decode, RC equivariance, bad input, save/load."""

import math
import os
import stat

import pytest
import torch

import zoo
from zoo.backbone import BackboneConfig
from zoo.data.artifacts import atomic_file
from zoo.io import load_pretrained, save_pretrained
from zoo.layers.mlp import MLPConfig
from zoo.model import VOCABULARIES, ModelConfig, SeqModel
from zoo.testing import assert_close
from zoo.training.checkpoint import atomic_torch_save
from zoo.vocab import DNA_TOKENS, dna_complement_map


def tiny(pattern="MS", **kwargs) -> SeqModel:
    backbone = kwargs.pop("backbone", None) or BackboneConfig(
        d_model=32, pattern=pattern, mlp=MLPConfig(expand=2)
    )
    return SeqModel(ModelConfig(backbone=backbone, **kwargs)).eval()


def dna_ids(batch=2, length=24) -> torch.Tensor:
    return torch.randint(7, 12, (batch, length))


def test_vocab_is_padded_and_head_is_tied():
    model = tiny()
    assert model.config.vocab_size == 16 and len(DNA_TOKENS) == 12
    assert model.lm_head.weight is model.backbone.embeddings.weight
    assert model(dna_ids()).logits.shape == (2, 24, 16)


def test_forward_in_pieces_with_state_equals_one_pass():
    model, ids = tiny("MSmsH"), dna_ids(length=30)
    with torch.no_grad():
        full = model(ids)
        first = model(ids[:, :13])
        second = model(ids[:, 13:], state=first.state)
    assert_close("logits", full.logits, torch.cat([first.logits, second.logits], 1), 1e-5)


def test_step_equals_forward():
    model, ids = tiny("MSAm"), dna_ids(length=12)
    with torch.no_grad():
        full = model(ids).logits
        state, steps = model.init_state(2), []
        for t in range(ids.shape[1]):
            out = model.step(ids[:, t], state)
            state = out.state
            steps.append(out.logits)
    assert_close("logits", full, torch.stack(steps, 1), 1e-4)


def test_reverse_complement_equivariance_is_exact():
    backbone = BackboneConfig(d_model=32, pattern="MM", bidirectional=True)
    model = tiny(backbone=backbone, rc_equivariant=True)
    ids = dna_ids()
    complement = torch.tensor(dna_complement_map(16))
    rc_ids = complement[ids].flip(1)
    with torch.no_grad():
        out, out_rc = model(ids), model(rc_ids)
    # The RC input's logits are the complement of the forward logits, read backwards.
    assert_close("logits", out.logits[..., complement].flip(1), out_rc.logits, 1e-5)
    assert_close("hidden", out.hidden.flip(1).flip(-1), out_rc.hidden, 1e-5)
    with pytest.raises(RuntimeError, match="both directions"):
        model.step(ids[:, 0], None)


def test_bidirectional_backbone_sees_the_future():
    model = tiny(backbone=BackboneConfig(d_model=32, pattern="M", bidirectional=True))
    ids = dna_ids(1, 10)
    changed = ids.clone()
    changed[0, -1] = 7 if ids[0, -1] != 7 else 8
    with torch.no_grad():
        a, b = model(ids).logits, model(changed).logits
    assert not torch.allclose(a[0, 0], b[0, 0]), "the first position should depend on the last token"
    fwd = model.backbone.layers[0].mixer
    assert fwd.rev.in_proj is fwd.fwd.in_proj, "Caduceus ties in/out projections across directions"


def test_causal_backbone_does_not_see_the_future():
    model, ids = tiny("MSAmsH"), dna_ids(1, 10)
    changed = ids.clone()
    changed[0, -1] = 7 if ids[0, -1] != 7 else 8
    with torch.no_grad():
        a, b = model(ids).logits, model(changed).logits
    # Hyena's FFT convolution mixes round-off across positions, so compare at fp32 precision, not bits.
    assert_close("past positions", a[0, :-1], b[0, :-1], 1e-6)
    assert not torch.allclose(a[0, -1], b[0, -1])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"input_ids": torch.tensor([[7, 8, 99]])},
            ValueError,
            r"token id 99, outside the dna vocabulary \[0, 12\)",
        ),
        ({"input_ids": torch.tensor([[-1, 8]])}, ValueError, "token id -1"),
        ({"input_ids": torch.tensor([7.0, 8.0])}, TypeError, "integer tensor"),
        ({"input_ids": torch.tensor([7, 8])}, ValueError, r"shape \[B, T\]"),
        ({"input_ids": torch.zeros(2, 0, dtype=torch.long)}, ValueError, "empty sequence"),
        ({}, ValueError, "exactly one of input_ids"),
        ({"inputs_embeds": torch.full((1, 4, 32), float("nan"))}, ValueError, "128 NaN/Inf"),
        ({"inputs_embeds": torch.zeros(1, 4, 31)}, ValueError, r"shape \[B, T, 32\]"),
    ],
    ids=[
        "id-too-large",
        "negative-id",
        "float-ids",
        "1d-ids",
        "empty",
        "nothing",
        "nan-embeds",
        "wrong-width",
    ],
)
def test_bad_input_gives_clear_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        tiny()(**kwargs)


def test_continuous_input_model_has_no_vocabulary():
    model = tiny(vocab=None)
    out = model(inputs_embeds=torch.randn(2, 9, 32))
    assert out.logits is None and out.hidden.shape == (2, 9, 32)
    with pytest.raises(ValueError, match="no vocabulary"):
        model(dna_ids())


def test_save_and_load_round_trip_is_bit_exact(tmp_path):
    model, ids = tiny("SA"), dna_ids()
    save_pretrained(model, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    again = zoo.load(f"local-dir:{tmp_path / 'm'}")
    assert again.config == model.config
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name
    with torch.no_grad():
        assert torch.equal(model(ids).logits, again.eval()(ids).logits)


def test_saved_files_get_the_users_file_mode_not_the_temporary_files(tmp_path):
    # Files are written to owner-only (0600) temporaries and renamed into place; a shared cache or a snapshot
    # shipped in the package must end up with the mode a plain open() would give (here umask 022 -> 0644).
    old = os.umask(0o022)
    try:
        save_pretrained(tiny("M"), tmp_path / "m")
        atomic_torch_save({"x": 1}, tmp_path / "last.ckpt")
        with atomic_file(tmp_path / "cached.bin") as handle:
            handle.write(b"data")
    finally:
        os.umask(old)
    files = [*(tmp_path / "m").iterdir(), tmp_path / "last.ckpt", tmp_path / "cached.bin"]
    assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {f.name: 0o644 for f in files}


def test_loading_a_foreign_or_broken_folder_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a seqzoo model folder"):
        load_pretrained(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "mamba"}')
    with pytest.raises(ValueError, match="not a seqzoo config"):
        load_pretrained(tmp_path)
    save_pretrained(tiny("M"), tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors does not exist"):
        load_pretrained(tmp_path / "m")


@pytest.mark.parametrize("name", ["hyenadna-tiny", "hybridna-small", "prot-xlstm-small"])
def test_fresh_language_model_starts_near_uniform_loss(name):
    # A tied N(0, 1) embedding made the first loss ~80 nats; training must start near log(vocab).
    model = zoo.load(name, pretrained=False)
    n_tokens = len(VOCABULARIES[model.config.vocab])
    ids = torch.randint(7, n_tokens, (2, 129))
    loss = torch.nn.functional.cross_entropy(model(ids[:, :-1]).logits.transpose(1, 2), ids[:, 1:])
    assert abs(loss.item() - math.log(model.config.vocab_size)) < 0.5
