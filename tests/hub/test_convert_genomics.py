"""Converters for official HyenaDNA and Caduceus checkpoints (zoo.hub.convert.hyenadna / .caduceus).

The official code is not installable here and the Hub is unreachable, so each test writes a checkpoint in
the official layout: the key names, shapes and config fields below are transcribed from the published
code (LongSafari ``modeling_hyena.py`` / ``configuration_hyena.py`` of the ``*-seqlen-hf`` repos,
HazyResearch ``standalone_hyenadna.py`` for the Lightning ``*-seqlen`` layout, kuleshov-group
``caduceus/modeling_caduceus.py`` / ``modeling_rcps.py`` / ``configuration_caduceus.py``), filled with random
values, saved as safetensors + config.json. The converted model is compared with a re-implementation of
the official forward written from that code (``_hyena_reference`` / ``_caduceus_reference``), which reads
the official tensors by their official names; a wrong rename, a swapped norm or a mis-mirrored layer
changes the logits.
"""

import json
import math

import pytest
import safetensors.torch
import torch
import torch.nn.functional as F

from zoo.hub.convert import IncompatibleCheckpointError, convert, detect_source
from zoo.hub.convert import caduceus as caduceus_converter
from zoo.hub.convert import hyenadna as hyenadna_converter
from zoo.layers.mamba import Mamba, MambaConfig
from zoo.testing import assert_close
from zoo.vocab import dna_complement_map

D, N_LAYER, D_INNER, FILTER_ORDER, EMB_DIM, L_MAX = 16, 2, 64, 8, 5, 34
VOCAB = 16  # 12 character tokens padded to a multiple of 8
T = 20


def _write(folder, config, state):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    return folder


def _ids(batch=2, length=T):
    return torch.randint(7, 12, (batch, length))


def _one_line(err):
    text = str(err.value)
    assert "\n" not in text and text, "errors are one line"
    return text


# HyenaDNA ------------------------------------------------------------------------------------------------

#: a LongSafari ``*-seqlen-hf`` config.json (fields of configuration_hyena.py), at test size
HF_CONFIG = {
    "architectures": ["HyenaDNAForCausalLM"],
    "model_type": "hyenadna",
    "activation_freq": 10,
    "d_inner": D_INNER,
    "d_model": D,
    "emb_dim": EMB_DIM,
    "embed_dropout": 0.1,
    "filter_order": FILTER_ORDER,
    "hyena_dropout": 0.0,
    "hyena_filter_dropout": 0.0,
    "hyena_order": 2,
    "initializer_range": 0.02,
    "layer_norm_epsilon": 1e-5,
    "max_seq_len": L_MAX,
    "n_layer": N_LAYER,
    "num_inner_mlps": 2,
    "pad_vocab_size_multiple": 8,
    "short_filter_order": 3,
    "train_freq": True,
    "use_bias": True,
    "vocab_size": 12,
    "torch_dtype": "float32",
}

#: a LongSafari ``*-seqlen`` (Lightning) config.json: the training code's backbone_cfg, at test size
LIGHTNING_CONFIG = {
    "d_model": D,
    "n_layer": N_LAYER,
    "d_inner": D_INNER,
    "vocab_size": 12,
    "resid_dropout": 0.0,
    "embed_dropout": 0.1,
    "fused_mlp": False,
    "fused_dropout_add_ln": True,
    "checkpoint_mixer": True,
    "checkpoint_mlp": True,
    "residual_in_fp32": True,
    "pad_vocab_size_multiple": 8,
    "return_hidden_state": True,
    "layer": {
        "_name_": "hyena",
        "emb_dim": EMB_DIM,
        "filter_order": FILTER_ORDER,
        "local_order": 3,
        "l_max": L_MAX,
        "modulate": True,
        "w": 10,
        "lr": 6e-4,
        "wd": 0.0,
        "lr_pos_emb": 0.0,
    },
}


def _hyena_layer_tensors(prefix, mixer, mlp):
    """One HyenaBlock by name and shape (HyenaOperator + HyenaFilter + Mlp + two LayerNorms)."""
    f = f"{prefix}{mixer}filter_fn."
    t = torch.linspace(0, 1, L_MAX)[None, :, None]
    return {
        f"{prefix}{mixer}in_proj.weight": torch.randn(3 * D, D) / math.sqrt(D),
        f"{prefix}{mixer}in_proj.bias": torch.randn(3 * D) * 0.1,
        f"{prefix}{mixer}short_filter.weight": torch.randn(3 * D, 1, 3) * 0.5,
        f"{prefix}{mixer}short_filter.bias": torch.randn(3 * D) * 0.1,
        f"{prefix}{mixer}out_proj.weight": torch.randn(D, D) / math.sqrt(D),
        f"{prefix}{mixer}out_proj.bias": torch.randn(D) * 0.1,
        f + "bias": torch.randn(D),
        f + "pos_emb.z": torch.randn(1, L_MAX, EMB_DIM),
        f + "pos_emb.t": t + 0.01 * torch.rand_like(t),
        f + "implicit_filter.0.weight": torch.randn(FILTER_ORDER, EMB_DIM),
        f + "implicit_filter.0.bias": torch.randn(FILTER_ORDER),
        f + "implicit_filter.1.freq": 10 + torch.randn(1, FILTER_ORDER),
        f + "implicit_filter.2.weight": torch.randn(FILTER_ORDER, FILTER_ORDER) / math.sqrt(FILTER_ORDER),
        f + "implicit_filter.2.bias": torch.randn(FILTER_ORDER),
        f + "implicit_filter.4.weight": torch.randn(FILTER_ORDER, FILTER_ORDER) / math.sqrt(FILTER_ORDER),
        f + "implicit_filter.4.bias": torch.randn(FILTER_ORDER),
        f + "implicit_filter.6.weight": torch.randn(D, FILTER_ORDER) / math.sqrt(FILTER_ORDER),
        f + "modulation.deltas": torch.linspace(math.log(1e-2) / 1.5, math.log(1e-2) / 0.3, D)[None, None]
        * (1 + 0.1 * torch.rand(D)),
        f"{prefix}norm1.weight": 1 + 0.1 * torch.randn(D),
        f"{prefix}norm1.bias": 0.1 * torch.randn(D),
        f"{prefix}{mlp}fc1.weight": torch.randn(D_INNER, D) / math.sqrt(D),
        f"{prefix}{mlp}fc1.bias": 0.1 * torch.randn(D_INNER),
        f"{prefix}{mlp}fc2.weight": torch.randn(D, D_INNER) / math.sqrt(D_INNER),
        f"{prefix}{mlp}fc2.bias": 0.1 * torch.randn(D),
        f"{prefix}norm2.weight": 1 + 0.1 * torch.randn(D),
        f"{prefix}norm2.bias": 0.1 * torch.randn(D),
    }


def hf_hyena_state():
    """HyenaDNAForCausalLM's state dict: ``hyena.backbone.*`` and a tied ``lm_head``.

    The Sin module is shared by the filter MLP, so its ``freq`` sits under indices 1, 3 and 5; the file keeps
    only index 1 (modeling_hyena.py lists ``freq`` in ``_keys_to_ignore_on_load_missing`` for this reason).
    """
    state = {"hyena.backbone.embeddings.word_embeddings.weight": torch.randn(VOCAB, D)}
    for i in range(N_LAYER):
        state.update(_hyena_layer_tensors(f"hyena.backbone.layers.{i}.", "mixer.", "mlp."))
    state["hyena.backbone.ln_f.weight"] = 1 + 0.1 * torch.randn(D)
    state["hyena.backbone.ln_f.bias"] = 0.1 * torch.randn(D)
    state["lm_head.weight"] = state["hyena.backbone.embeddings.word_embeddings.weight"].clone()
    return state


def lightning_hyena_state():
    """The Lightning checkpoint's state dict: ``model.backbone.*``, gradient-checkpointing ``.layer`` infixes,
    every copy of the shared ``freq`` and the tied ``model.lm_head.weight``."""
    state = {"model.backbone.embeddings.word_embeddings.weight": torch.randn(VOCAB, D)}
    for i in range(N_LAYER):
        layer = _hyena_layer_tensors(f"model.backbone.layers.{i}.", "mixer.layer.", "mlp.layer.")
        freq = next(v for k, v in layer.items() if k.endswith("implicit_filter.1.freq"))
        prefix = f"model.backbone.layers.{i}.mixer.layer.filter_fn.implicit_filter."
        layer[prefix + "3.freq"], layer[prefix + "5.freq"] = freq.clone(), freq.clone()
        state.update(layer)
    state["model.backbone.ln_f.weight"] = 1 + 0.1 * torch.randn(D)
    state["model.backbone.ln_f.bias"] = 0.1 * torch.randn(D)
    state["model.lm_head.weight"] = state["model.backbone.embeddings.word_embeddings.weight"].clone()
    return state


def _fftconv(u, k, bias):
    """HyenaDNA's fftconv: causal convolution of ``u [B, D, T]`` with ``k [D, T]`` plus ``u * bias``."""
    n = 2 * u.shape[-1]
    y = torch.fft.irfft(torch.fft.rfft(u, n=n) * torch.fft.rfft(k, n=n) / n, n=n, norm="forward")[..., : u.shape[-1]]
    return y + u * bias[:, None]


def _hyena_reference(state, prefix, mixer, mlp, ids, eps=1e-5):
    """The official HyenaDNA LM forward, written from modeling_hyena.py, on official key names."""
    s = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    x = s["backbone.embeddings.word_embeddings.weight"][ids]
    length = ids.shape[1]
    for i in range(N_LAYER):
        p, m = f"backbone.layers.{i}.", f"backbone.layers.{i}.{mixer}"
        h = F.layer_norm(x, (D,), s[p + "norm1.weight"], s[p + "norm1.bias"], 1e-5)
        u = F.linear(h, s[m + "in_proj.weight"], s[m + "in_proj.bias"]).transpose(1, 2)
        uc = F.conv1d(u, s[m + "short_filter.weight"], s[m + "short_filter.bias"], padding=2, groups=3 * D)
        x0, x1, v = uc[..., :length].split(D, dim=1)
        f = m + "filter_fn."
        z, t = s[f + "pos_emb.z"][:, :length], s[f + "pos_emb.t"][:, :length]
        freq = s[f + "implicit_filter.1.freq"]
        k = torch.sin(freq * F.linear(z, s[f + "implicit_filter.0.weight"], s[f + "implicit_filter.0.bias"]))
        for j in (2, 4):
            k = torch.sin(freq * F.linear(k, s[f + f"implicit_filter.{j}.weight"], s[f + f"implicit_filter.{j}.bias"]))
        k = F.linear(k, s[f + "implicit_filter.6.weight"])
        k = k * (torch.exp(-t * s[f + "modulation.deltas"].abs()) + 0.05)
        y = _fftconv(v * x1, k[0].transpose(0, 1), s[f + "bias"])
        x = x + F.linear((y * x0).transpose(1, 2), s[m + "out_proj.weight"], s[m + "out_proj.bias"])
        h = F.layer_norm(x, (D,), s[p + "norm2.weight"], s[p + "norm2.bias"], 1e-5)
        h = F.gelu(F.linear(h, s[p + mlp + "fc1.weight"], s[p + mlp + "fc1.bias"]), approximate="tanh")
        x = x + F.linear(h, s[p + mlp + "fc2.weight"], s[p + mlp + "fc2.bias"])
    x = F.layer_norm(x, (D,), s["backbone.ln_f.weight"], s["backbone.ln_f.bias"], eps)
    # the -hf head sits outside the "hyena." prefix; the Lightning one is "model.lm_head"
    head = state.get("lm_head.weight", s.get("lm_head.weight", s["backbone.embeddings.word_embeddings.weight"]))
    return F.linear(x, head)


HYENA_LAYOUTS = {
    "hf": (HF_CONFIG, hf_hyena_state, "hyena.", "mixer.", "mlp."),
    "lightning": (LIGHTNING_CONFIG, lightning_hyena_state, "model.", "mixer.layer.", "mlp.layer."),
}


@pytest.mark.parametrize("layout", list(HYENA_LAYOUTS))
def test_hyenadna_converts_strictly_and_matches_the_official_forward(tmp_path, layout):
    config, make_state, prefix, mixer, mlp = HYENA_LAYOUTS[layout]
    state = make_state()
    folder = _write(tmp_path / layout, config, state)
    assert hyenadna_converter.matches(config) and detect_source(folder) == "hyenadna"
    model = convert("hyenadna", folder)
    assert model.config.backbone.pattern == "HH" and model.config.vocab_size == VOCAB
    assert model.config.backbone.mixers.hyena.l_max == L_MAX
    ids = _ids()
    with torch.no_grad():
        logits = model(ids).logits
    assert_close(f"hyenadna-{layout}", _hyena_reference(state, prefix, mixer, mlp, ids), logits, 1e-5)


def test_hyenadna_parameters_hold_the_official_tensors(tmp_path):
    state = hf_hyena_state()
    emb = "hyena.backbone.embeddings.word_embeddings.weight"
    state[emb][7] = torch.arange(D, dtype=torch.float32)  # token "A"
    state["lm_head.weight"] = state[emb].clone()
    state["hyena.backbone.layers.1.norm2.weight"] = torch.linspace(-1, 1, D)
    model = convert("hyenadna", _write(tmp_path / "ckpt", HF_CONFIG, state))
    layer = model.backbone.layers[1]
    assert torch.equal(model.backbone.embeddings.weight[7], torch.arange(D, dtype=torch.float32))
    assert model.lm_head.weight is model.backbone.embeddings.weight, "the -hf head is tied to the embeddings"
    assert torch.equal(layer.norm_mlp.weight, torch.linspace(-1, 1, D)), "norm2 is the MLP's pre-norm"
    assert torch.equal(layer.norm.weight, state["hyena.backbone.layers.1.norm1.weight"])
    filt = layer.mixer.filter_fn
    official = "hyena.backbone.layers.1.mixer.filter_fn."
    assert torch.equal(filt.pos_emb.z, state[official + "pos_emb.z"])
    assert torch.equal(filt.pos_emb.t, state[official + "pos_emb.t"])
    assert torch.equal(filt.modulation.deltas, state[official + "modulation.deltas"])
    for index in (1, 3, 5):  # the shared Sin: one tensor under every index
        assert torch.equal(filt.implicit_filter[index].freq, state[official + "implicit_filter.1.freq"])
    assert filt.implicit_filter[1].freq is filt.implicit_filter[5].freq


def test_hyenadna_hf_head_that_differs_from_the_embeddings_is_converted_untied(tmp_path):
    # The -hf model class keeps its own lm_head (the published parameter counts include it), so a head that
    # differs is the official model's real head, not a corrupt file: convert it untied and use it.
    state = hf_hyena_state()
    state["lm_head.weight"] = torch.randn(VOCAB, D)
    model = convert("hyenadna", _write(tmp_path / "ckpt", HF_CONFIG, state))
    assert not model.config.tie_embeddings
    assert torch.equal(model.lm_head.weight, state["lm_head.weight"])
    ids = _ids()
    with torch.no_grad():
        logits = model(ids).logits
    assert_close("untied head", _hyena_reference(state, "hyena.", "mixer.", "mlp.", ids), logits, 1e-5)


def test_hyenadna_forward_depends_on_every_official_tensor(tmp_path):
    state = hf_hyena_state()
    ids = _ids(1)
    with torch.no_grad():
        base = convert("hyenadna", _write(tmp_path / "base", HF_CONFIG, state))(ids).logits
        for n, key in enumerate(k for k in state if k != "lm_head.weight"):
            perturbed = dict(state)
            perturbed[key] = state[key] + 0.5 * torch.randn_like(state[key])
            if key.endswith("word_embeddings.weight"):
                perturbed["lm_head.weight"] = perturbed[key].clone()
            model = convert("hyenadna", _write(tmp_path / f"p{n}", HF_CONFIG, perturbed))
            assert not torch.allclose(model(ids).logits, base), f"perturbing {key} must change the logits"


def test_hyenadna_refuses_pickle_only_folders_without_reading_them(tmp_path):
    folder = tmp_path / "hyenadna-tiny-1k-seqlen"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(LIGHTNING_CONFIG))
    (folder / "weights.ckpt").write_bytes(b"not a pickle: must never be opened")
    with pytest.raises(IncompatibleCheckpointError) as err:
        convert("hyenadna", folder)
    text = _one_line(err)
    assert "weights.ckpt" in text and "safetensors only" in text and "-hf" in text


@pytest.mark.parametrize(
    ("change", "option"),
    [
        ({"hyena_order": 3}, "hyena_order=3"),
        ({"short_filter_order": 5}, "short_filter_order=5"),
        ({"vocab_size": 30}, "vocab_size=30"),
        ({"layer_norm_epsilon": 1e-6}, "layer_norm_epsilon"),
    ],
    ids=["order", "short-filter", "vocab", "eps"],
)
def test_hyenadna_unsupported_options_are_named(tmp_path, change, option):
    folder = _write(tmp_path / "ckpt", {**HF_CONFIG, **change}, hf_hyena_state())
    with pytest.raises(IncompatibleCheckpointError) as err:
        convert("hyenadna", folder)
    assert option in _one_line(err)


def test_hyenadna_lightning_unknown_layer_option_is_named(tmp_path):
    config = {**LIGHTNING_CONFIG, "layer": {**LIGHTNING_CONFIG["layer"], "post_order_ffn": True}}
    with pytest.raises(IncompatibleCheckpointError) as err:
        convert("hyenadna", _write(tmp_path / "ckpt", config, lightning_hyena_state()))
    assert "layer.post_order_ffn" in _one_line(err)


@pytest.mark.parametrize("problem", ["extra", "missing", "untied-head", "freq-disagrees"])
def test_hyenadna_key_mismatches_are_one_line_errors(tmp_path, problem):
    state = lightning_hyena_state()
    if problem == "extra":
        state["model.score.weight"] = torch.randn(2, D)  # a classification head
        expected = "model.score.weight"
    elif problem == "missing":
        del state["model.backbone.ln_f.bias"]
        expected = "backbone.norm_f.bias"
    elif problem == "untied-head":
        state["model.lm_head.weight"] = torch.randn(VOCAB, D)
        expected = "lm_head.weight"
    else:
        state["model.backbone.layers.0.mixer.layer.filter_fn.implicit_filter.5.freq"] += 1
        expected = "Sin"
    with pytest.raises(IncompatibleCheckpointError) as err:
        convert("hyenadna", _write(tmp_path / "ckpt", LIGHTNING_CONFIG, state))
    assert expected.split(".", 1)[-1] in _one_line(err)


# Caduceus ------------------------------------------------------------------------------------------------

D_STATE, D_CONV, EXPAND = 4, 4, 2
DT_RANK = math.ceil(D / 16)
COMPLEMENT = {str(i): c for i, c in enumerate(dna_complement_map(12))}  # the published map (12 tokens)


def caduceus_config(rcps=True, fused=True, n_layer=2, rms_norm=True, **extra):
    """A kuleshov-group Caduceus config.json (fields of configuration_caduceus.py), at test size."""
    return {
        "architectures": ["CaduceusForMaskedLM"],
        "model_type": "caduceus",
        "d_model": D,
        "n_layer": n_layer,
        "vocab_size": 12,
        "pad_vocab_size_multiple": 8,
        "ssm_cfg": {
            "d_state": D_STATE,
            "d_conv": D_CONV,
            "expand": EXPAND,
            "dt_rank": "auto",
            "dt_min": 0.001,
            "dt_max": 0.1,
            "dt_init": "random",
            "dt_scale": 1.0,
            "dt_init_floor": 1e-4,
            "conv_bias": True,
            "bias": False,
            "use_fast_path": True,
        },
        "rms_norm": rms_norm,
        "norm_epsilon": 1e-5,
        "residual_in_fp32": False,
        "fused_add_norm": fused,
        "bidirectional": True,
        "bidirectional_strategy": "add",
        "bidirectional_weight_tie": True,
        "rcps": rcps,
        "complement_map": COMPLEMENT if rcps else None,
        "torch_dtype": "float32",
        **extra,
    }


def _mamba_tensors(prefix, with_projections=True):
    """mamba_ssm's Mamba (no in/out proj bias) by name and shape."""
    d_inner = EXPAND * D
    tensors = {
        prefix + "conv1d.weight": torch.randn(d_inner, 1, D_CONV) * 0.5,
        prefix + "conv1d.bias": torch.randn(d_inner) * 0.1,
        prefix + "x_proj.weight": torch.randn(DT_RANK + 2 * D_STATE, d_inner) / math.sqrt(d_inner),
        prefix + "dt_proj.weight": torch.randn(d_inner, DT_RANK) * 0.5,
        prefix + "dt_proj.bias": torch.log(torch.expm1(0.001 + 0.1 * torch.rand(d_inner))),
        prefix + "A_log": torch.log(torch.arange(1, D_STATE + 1.0).repeat(d_inner, 1)) + 0.1 * torch.randn(d_inner, 1),
        prefix + "D": 1 + 0.1 * torch.randn(d_inner),
    }
    if with_projections:
        tensors[prefix + "in_proj.weight"] = torch.randn(2 * d_inner, D) / math.sqrt(D)
        tensors[prefix + "out_proj.weight"] = torch.randn(D, d_inner) / math.sqrt(d_inner)
    return tensors


def caduceus_state(config, rev_projections=False, layernorm_bias=False):
    """CaduceusForMaskedLM's state dict; RCPS wrappers add ``embedding.`` / ``submodule.`` / ``lm_head.`` levels.

    ``mamba_rev``'s in/out projections are tied to ``mamba_fwd``'s; by default the file keeps one copy.
    """
    rcps, fused, n_layer = config["rcps"], config["fused_add_norm"], config["n_layer"]
    pre = "caduceus.backbone."
    wrap = "submodule." if rcps and not fused else ""
    emb = pre + ("embeddings.word_embeddings.embedding.weight" if rcps else "embeddings.word_embeddings.weight")
    state = {emb: torch.randn(VOCAB, D)}
    comp = torch.tensor(dna_complement_map(VOCAB))
    if rcps:
        state[pre + "embeddings.word_embeddings.complement_map"] = comp.clone()
    for i in range(n_layer):
        mixer = pre + f"layers.{i}.mixer." + ("submodule." if rcps else "")
        state.update(_mamba_tensors(mixer + "mamba_fwd."))
        state.update(_mamba_tensors(mixer + "mamba_rev.", with_projections=False))
        if rev_projections:
            for name in ("in_proj.weight", "out_proj.weight"):
                state[mixer + "mamba_rev." + name] = state[mixer + "mamba_fwd." + name].clone()
        state[pre + f"layers.{i}.norm.{wrap}weight"] = 1 + 0.2 * torch.randn(D)
        if layernorm_bias:
            state[pre + f"layers.{i}.norm.{wrap}bias"] = 0.1 * torch.randn(D)
    state[pre + f"norm_f.{wrap}weight"] = 1 + 0.2 * torch.randn(D)
    if layernorm_bias:
        state[pre + f"norm_f.{wrap}bias"] = 0.1 * torch.randn(D)
    state["lm_head.lm_head.weight" if rcps else "lm_head.weight"] = state[emb].clone()
    if rcps:
        state["lm_head.complement_map"] = comp.clone()
    return state


def _official_mamba(state, prefix, tie_prefix):
    """A Mamba mixer holding the official tensors (mamba_ssm's module tree, which zoo's Mamba shares)."""
    mamba = Mamba(D, MambaConfig(d_state=D_STATE, d_conv=D_CONV, expand=EXPAND))
    tensors = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    for name in ("in_proj.weight", "out_proj.weight"):
        tensors.setdefault(name, state[tie_prefix + name])
    mamba.load_state_dict(tensors)
    return mamba


def _caduceus_reference(state, config, ids):
    """The official CaduceusForMaskedLM forward, written from modeling_caduceus.py / modeling_rcps.py.

    Returns ``(hidden, logits)``. ``flip`` is the RCPS ``rc``: reverse length and channels.
    """
    rcps, fused, n_layer = config["rcps"], config["fused_add_norm"], config["n_layer"]
    pre = "caduceus.backbone."
    wrap = "submodule." if rcps and not fused else ""
    comp = torch.tensor(dna_complement_map(VOCAB))

    def flip(x):
        return x.flip(-2, -1)

    def norm(x, name):
        w, b = state[f"{pre}{name}.{wrap}weight"], state.get(f"{pre}{name}.{wrap}bias")
        if config["rms_norm"]:
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w
        return F.layer_norm(x, (D,), w, b, 1e-5)

    def bimamba(x, i):
        mixer = pre + f"layers.{i}.mixer." + ("submodule." if rcps else "")
        fwd = _official_mamba(state, mixer + "mamba_fwd.", mixer + "mamba_fwd.")
        rev = _official_mamba(state, mixer + "mamba_rev.", mixer + "mamba_fwd.")
        return fwd(x)[0] + rev(x.flip(1))[0].flip(1)

    if rcps:
        emb = state[pre + "embeddings.word_embeddings.embedding.weight"]
        hidden = torch.cat([emb[ids], flip(emb[comp[ids].flip(-1)])], dim=-1)  # RCPSEmbedding
    else:
        hidden = state[pre + "embeddings.word_embeddings.weight"][ids]
    residual = None
    for i in range(n_layer):
        name = f"layers.{i}.norm"
        if not rcps:  # mamba_ssm Block: Add -> Norm -> Mixer
            residual = hidden if residual is None else hidden + residual
            hidden = bimamba(norm(residual, name), i)
            continue
        if fused:  # RCPSMambaBlock, fused_add_norm: the "fwd" half is read from the second channel half
            res_f = hidden[..., D:] + (0 if residual is None else residual[..., D:])
            res_r = flip(hidden[..., :D]) + (0 if residual is None else flip(residual[..., :D]))
        else:  # RCPSAddNormWrapper(prenorm=True)
            res_f = hidden[..., :D] + (0 if residual is None else residual[..., :D])
            res_r = flip(hidden[..., D:]) + (0 if residual is None else flip(residual[..., D:]))
        hidden = torch.cat([norm(res_f, name), flip(norm(res_r, name))], dim=-1)
        residual = torch.cat([res_f, flip(res_r)], dim=-1)
        # RCPSWrapper: the mixer on the first half and on the rc of the second half
        hidden = torch.cat([bimamba(hidden[..., :D], i), flip(bimamba(flip(hidden[..., D:]), i))], dim=-1)
    if rcps:  # both final-norm paths: the halves in order
        out = torch.cat(
            [
                norm(hidden[..., :D] + residual[..., :D], "norm_f"),
                flip(norm(flip(hidden[..., D:]) + flip(residual[..., D:]), "norm_f")),
            ],
            dim=-1,
        )
        weight = state["lm_head.lm_head.weight"]
        logits = F.linear(out[..., :D], weight) + F.linear(out[..., D:].flip(-1), weight[comp])  # RCPSLMHead
        return out, logits
    out = norm(hidden + residual, "norm_f")
    return out, F.linear(out, state["lm_head.weight"])


CADUCEUS_CASES = {
    "ps-fused": {},
    "ps-fused-odd": {"n_layer": 3},
    "ps-unfused": {"fused": False},
    "ps-fused-layernorm": {"rms_norm": False},
    "ph": {"rcps": False},
}


@pytest.mark.parametrize("case", list(CADUCEUS_CASES))
def test_caduceus_converts_strictly_and_matches_the_official_forward(tmp_path, case):
    config = caduceus_config(**CADUCEUS_CASES[case])
    state = caduceus_state(config, rev_projections=case == "ps-unfused", layernorm_bias=not config["rms_norm"])
    folder = _write(tmp_path / case, config, state)
    assert caduceus_converter.matches(config) and detect_source(folder) == "caduceus"
    model = convert("caduceus", folder)
    assert model.config.rc_equivariant == config["rcps"] and model.config.backbone.bidirectional
    ids = _ids(2, 13)
    with torch.no_grad():
        out = model(ids)
        hidden, logits = _caduceus_reference(state, config, ids)
    assert_close(f"caduceus-{case}-hidden", hidden, out.hidden, 1e-5)
    assert_close(f"caduceus-{case}-logits", logits, out.logits, 1e-5)


def test_caduceus_mirrored_layers_hold_reversed_tensors(tmp_path):
    config = caduceus_config(n_layer=2)
    state = caduceus_state(config)
    state["caduceus.backbone.layers.0.norm.weight"] = torch.linspace(0.5, 2, D)
    state["caduceus.backbone.layers.1.norm.weight"] = torch.linspace(0.5, 2, D)
    model = convert("caduceus", _write(tmp_path / "ckpt", config, state))
    mirrored, plain = model.backbone.layers[0], model.backbone.layers[1]
    # fused RCPS: with two layers the strand meets layer 0 mirrored and layer 1 as written
    assert torch.equal(mirrored.norm.weight, torch.linspace(0.5, 2, D).flip(0))
    assert torch.equal(plain.norm.weight, torch.linspace(0.5, 2, D))
    official = "caduceus.backbone.layers.0.mixer.submodule."
    assert torch.equal(mirrored.mixer.fwd.A_log, state[official + "mamba_rev.A_log"]), "directions swap"
    assert torch.equal(mirrored.mixer.fwd.in_proj.weight, state[official + "mamba_fwd.in_proj.weight"].flip(1))
    assert mirrored.mixer.rev.in_proj is mirrored.mixer.fwd.in_proj, "projections stay tied"
    embedding = state["caduceus.backbone.embeddings.word_embeddings.embedding.weight"]
    assert torch.equal(model.backbone.embeddings.weight, embedding), "an even stack keeps the embedding as is"


def test_caduceus_rc_equivariance_survives_conversion(tmp_path):
    config = caduceus_config(n_layer=3)
    model = convert("caduceus", _write(tmp_path / "ckpt", config, caduceus_state(config)))
    comp = torch.tensor(dna_complement_map(VOCAB))
    ids = _ids(1, 11)
    with torch.no_grad():
        logits, rc_logits = model(ids).logits, model(comp[ids].flip(1)).logits
    assert_close("rc", logits.flip(1)[..., comp], rc_logits, 1e-5)


def test_caduceus_forward_depends_on_every_official_tensor(tmp_path):
    config = caduceus_config(n_layer=2)
    state = caduceus_state(config)
    ids = _ids(1, 9)
    head = "lm_head.lm_head.weight"
    with torch.no_grad():
        base = convert("caduceus", _write(tmp_path / "base", config, state))(ids).logits
        for n, key in enumerate(k for k in state if k != head and not k.endswith("complement_map")):
            perturbed = dict(state)
            perturbed[key] = state[key] + 0.5 * torch.randn_like(state[key])
            if key.endswith("embedding.weight"):
                perturbed[head] = perturbed[key].clone()
            model = convert("caduceus", _write(tmp_path / f"p{n}", config, perturbed))
            assert not torch.allclose(model(ids).logits, base), f"perturbing {key} must change the logits"


@pytest.mark.parametrize(
    ("change", "option"),
    [
        ({"bidirectional_strategy": "ew_multiply"}, "bidirectional_strategy='ew_multiply'"),
        ({"ssm_cfg": {"layer": "Mamba2"}}, "ssm_cfg.layer='Mamba2'"),
        ({"ssm_cfg": {"headdim": 64}}, "ssm_cfg.headdim"),
        ({"complement_map": {**COMPLEMENT, "7": 9}}, "complement_map"),
        ({"bidirectional": False}, "bidirectional=False"),
        ({"vocab_size": 40}, "vocab_size=40"),
    ],
    ids=["ew-multiply", "mamba2", "unknown-ssm", "complement", "fused-unidirectional", "vocab"],
)
def test_caduceus_unsupported_options_are_named(tmp_path, change, option):
    config = caduceus_config()
    folder = _write(tmp_path / "ckpt", {**config, **change}, caduceus_state(config))
    with pytest.raises(IncompatibleCheckpointError) as err:
        convert("caduceus", folder)
    assert option in _one_line(err)


@pytest.mark.parametrize("problem", ["extra", "missing", "pickle-only", "untied-rev"])
def test_caduceus_bad_checkpoints_are_one_line_errors(tmp_path, problem):
    config = caduceus_config(rcps=False)
    state = caduceus_state(config, rev_projections=True)
    folder = tmp_path / "ckpt"
    if problem == "extra":
        state["score.weight"] = torch.randn(2, D)  # CaduceusForSequenceClassification's head
        expected = "score.weight"
    elif problem == "missing":
        del state["caduceus.backbone.layers.1.mixer.mamba_rev.A_log"]
        expected = "layers.1.mixer.rev.A_log"
    elif problem == "untied-rev":
        state["caduceus.backbone.layers.0.mixer.mamba_rev.in_proj.weight"] += 1
        expected = "bidirectional_weight_tie"
    if problem == "pickle-only":
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(config))
        (folder / "pytorch_model.bin").write_bytes(b"never opened")
        expected = "pytorch_model.bin"
    else:
        _write(folder, config, state)
    with pytest.raises(IncompatibleCheckpointError) as err:
        convert("caduceus", folder)
    assert expected in _one_line(err)


def test_official_caduceus_entry_gets_its_context_and_warns_on_another_architecture(tmp_path, monkeypatch):
    import dataclasses
    import warnings

    import zoo
    import zoo.api
    from zoo.registry import get_entry

    config = caduceus_config(n_layer=2)
    folder = _write(tmp_path / "ckpt", config, caduceus_state(config))
    monkeypatch.setattr(zoo.api, "download", lambda name, **kwargs: folder)
    converted = convert("caduceus", folder)
    assert converted.config.max_seq_len == 131_072, "the published config.json has no context: the converter guesses"

    # The real entry promises d_model 118 and 4 layers; this checkpoint is another architecture.
    message = (
        r"caduceus-ps-1k-d118: the checkpoint at kuleshov-group/\S+@51d88e32\w+ "
        r"has backbone\.d_model=16 where the entry says 118"
    )
    with pytest.warns(UserWarning, match=message):
        model = zoo.load("caduceus-ps-1k-d118")
    assert model.config.max_seq_len == 1024 and model.config.backbone.d_model == D

    # An entry describing exactly this checkpoint loads without a warning, with the entry's context.
    entry = dataclasses.replace(
        get_entry("caduceus-ps-1k-d118"), config=dataclasses.replace(converted.config, max_seq_len=1024)
    )
    monkeypatch.setattr(zoo.api, "get_entry", lambda name: entry)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = zoo.load("caduceus-ps-1k-d118")
    assert model.config == entry.config
    ids = _ids(2, 13)
    with torch.no_grad():
        assert torch.equal(model(ids).logits, converted(ids).logits)
