"""Converters for official Mamba, Mamba-2 and xLSTM checkpoints: logits parity with the original code.

Each test builds a tiny randomly initialised original model (transformers' ``*ForCausalLM`` or NX-AI's
``xLSTMLarge``), writes it in its project's layout (config.json + safetensors) to a temporary folder and
loads it through ``zoo.hub.convert``; the logits must agree to 1e-4 in fp32. transformers 5 always writes
safetensors from ``save_pretrained`` (it has no ``safe_serialization`` switch any more).

mamba_ssm itself cannot be installed here (it builds only with CUDA), so its layout is written by hand:
mamba_ssm's ``config.json`` keys and weight names (``backbone.embedding.weight``, ...), filled with the
weights of the transformers model, whose module tree and math are mamba_ssm's.
"""

import dataclasses
import json

import pytest
import safetensors.torch
import torch
import transformers
import xlstm.xlstm_large.model as xlstm_large

from zoo.hub.convert import (
    CONVERTERS,
    IncompatibleCheckpointError,
    convert,
    detect_source,
    mamba,
    mamba2,
    mamba_ssm,
    xlstm,
)
from zoo.io import load_pretrained, save_pretrained
from zoo.model import ModelConfig, SeqModel
from zoo.registry import get_entry

MODULES = {"transformers-mamba": mamba, "transformers-mamba2": mamba2, "mamba-ssm": mamba_ssm, "xlstm": xlstm}
# the xLSTM backend on its CPU path, in fp32, accepting any length
XLSTM_CPU_KERNELS = {
    "chunkwise_kernel": "chunkwise--native_autograd",
    "sequence_kernel": "native_sequence__native",
    "step_kernel": "native",
    "mode": "inference",
    "autocast_kernel_dtype": "float32",
}


def perturbed(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with every parameter moved off its init (ones, zeros) so a dropped term would show."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def assert_same_logits(theirs, ours: SeqModel, vocab: int, length: int = 37) -> None:
    ids = torch.randint(0, vocab, (2, length))
    with torch.no_grad():
        expected = theirs(ids)
        expected = expected if isinstance(expected, torch.Tensor) else expected.logits
        actual = ours(ids).logits
    assert actual.shape == expected.shape
    diff = float((expected.float() - actual).abs().max())
    assert diff < 1e-4, f"max abs logit diff {diff:.2e}"


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def hf_mamba(tie: bool = True) -> "transformers.MambaForCausalLM":
    config = transformers.MambaConfig(
        vocab_size=48,
        hidden_size=32,
        num_hidden_layers=2,
        state_size=8,
        conv_kernel=4,
        expand=2,
        time_step_rank=3,
        use_bias=True,
        use_conv_bias=True,
        layer_norm_epsilon=1e-4,
        tie_word_embeddings=tie,
        use_cache=False,
    )
    return perturbed(transformers.MambaForCausalLM(config))


def hf_mamba2() -> "transformers.Mamba2ForCausalLM":
    config = transformers.Mamba2Config(
        vocab_size=40,
        hidden_size=32,
        num_hidden_layers=2,
        num_heads=8,
        head_dim=8,
        state_size=16,
        n_groups=2,
        expand=2,
        conv_kernel=4,
        chunk_size=16,
        layer_norm_epsilon=1e-4,
        tie_word_embeddings=False,
        use_cache=False,
    )
    return perturbed(transformers.Mamba2ForCausalLM(config))


def hf_xlstm(**overrides) -> "transformers.xLSTMForCausalLM":
    kwargs = dict(
        vocab_size=40,
        hidden_size=32,
        num_hidden_layers=2,
        num_heads=2,
        chunk_size=16,
        gate_soft_cap=3.0,
        output_logit_soft_cap=2.0,
        norm_eps=1e-5,
        use_cache=False,
        **XLSTM_CPU_KERNELS,
    )
    return perturbed(transformers.xLSTMForCausalLM(transformers.xLSTMConfig(**(kwargs | overrides))))


@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_transformers_mamba_converts_with_the_same_logits(tmp_path, tie):
    theirs = hf_mamba(tie)
    theirs.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert detect_source(tmp_path) == "transformers-mamba"
    ours = convert("transformers-mamba", tmp_path)
    assert ours.config.tie_embeddings is tie and ours.config.backbone.mixers.mamba.dt_rank == 3
    assert_same_logits(theirs, ours, 48)


def test_transformers_mamba2_converts_with_the_same_logits(tmp_path):
    theirs = hf_mamba2()
    theirs.save_pretrained(tmp_path)
    assert detect_source(tmp_path) == "transformers-mamba2"
    ours = convert("transformers-mamba2", tmp_path)
    assert ours.config.backbone.mixers.mamba2.ngroups == 2 and ours.config.backbone.norm_eps == 1e-4
    assert_same_logits(theirs, ours, 40)


def test_transformers_xlstm_converts_with_the_same_logits(tmp_path):
    theirs = hf_xlstm()
    theirs.save_pretrained(tmp_path)
    assert detect_source(tmp_path) == "xlstm"
    ours = convert("xlstm", tmp_path)
    assert ours.config.logit_soft_cap == 2.0 and ours.config.backbone.mixers.mlstm.gate_soft_cap == 3.0
    assert_same_logits(theirs, ours, 40)


def write_mamba_ssm(folder, theirs, ssm_cfg: dict, vocab: int, tie: bool, drop: str | None = None) -> None:
    """A mamba_ssm ``MambaLMHeadModel`` folder holding ``theirs``' (a transformers model) weights; ``drop``
    leaves one name of a tied pair out, as a safetensors conversion of a pickled checkpoint does."""
    state = {k.replace("backbone.embeddings.", "backbone.embedding."): v for k, v in theirs.state_dict().items()}
    state = {k: v.clone() for k, v in state.items() if k != drop}  # save_file refuses shared memory (tied)
    safetensors.torch.save_file(state, str(folder / "model.safetensors"))
    config = {
        "d_model": theirs.config.hidden_size,
        "d_intermediate": 0,
        "n_layer": theirs.config.num_hidden_layers,
        "vocab_size": vocab,
        "ssm_cfg": ssm_cfg,
        "attn_layer_idx": [],
        "attn_cfg": {},
        "rms_norm": True,
        "residual_in_fp32": True,
        "fused_add_norm": True,
        "pad_vocab_size_multiple": 8,
        "tie_embeddings": tie,
        "norm_epsilon": 1e-4,
    }
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    "drop", [None, "lm_head.weight", "backbone.embedding.weight"], ids=["both-names", "no-head", "no-embedding"]
)
def test_mamba_ssm_mamba1_folder_converts_with_the_same_logits(tmp_path, drop):
    theirs = hf_mamba(tie=True)
    # 45 tokens padded to a multiple of 8: the 48 embedding rows of the transformers model
    ssm_cfg = {"d_state": 8, "d_conv": 4, "expand": 2, "dt_rank": 3, "bias": True}
    write_mamba_ssm(tmp_path, theirs, ssm_cfg, 45, True, drop=drop)
    assert detect_source(tmp_path) == "mamba-ssm"
    ours = convert("mamba-ssm", tmp_path)
    assert (ours.config.n_tokens, ours.config.vocab_size) == (45, 48)
    assert_same_logits(theirs, ours, 45)


def test_mamba_ssm_mamba2_folder_converts_with_the_same_logits(tmp_path):
    theirs = hf_mamba2()
    ssm_cfg = {
        "layer": "Mamba2",
        "d_state": 16,
        "d_conv": 4,
        "expand": 2,
        "headdim": 8,
        "ngroups": 2,
        "chunk_size": 16,
        "rmsnorm": True,
        "norm_before_gate": False,
        "dt_limit": [0.0, float("inf")],
    }
    write_mamba_ssm(tmp_path, theirs, ssm_cfg, 40, False)
    # mamba_ssm's gated norm has eps 1e-5 fixed; the transformers model shares its 1e-4 with the block norms
    for layer in theirs.backbone.layers:
        layer.mixer.norm.variance_epsilon = 1e-5
    ours = convert("mamba-ssm", tmp_path)
    assert ours.config.backbone.pattern == "SS"
    assert_same_logits(theirs, ours, 40)


def xlstm_large_model(weight_mode: str) -> "xlstm_large.xLSTMLarge":
    config = xlstm_large.xLSTMLargeConfig(
        embedding_dim=32,
        num_heads=2,
        num_blocks=2,
        vocab_size=40,
        chunk_size=16,
        ffn_proj_factor=2.6667,
        gate_soft_cap=3.0,
        output_logit_soft_cap=2.0,
        weight_mode=weight_mode,
        **XLSTM_CPU_KERNELS,
    )
    return perturbed(xlstm_large.xLSTMLarge(config))


@pytest.mark.parametrize("weight_mode", ["single", "fused"])
@pytest.mark.parametrize("config_style", ["xlstm_large", "transformers"])
def test_nxai_xlstm_large_folder_converts_with_the_same_logits(tmp_path, weight_mode, config_style):
    theirs = xlstm_large_model(weight_mode)
    safetensors.torch.save_file(theirs.state_dict(), str(tmp_path / "model.safetensors"))
    config = dataclasses.asdict(theirs.config)  # the fields of NX-AI's config.yaml
    if config_style == "transformers":  # as on the Hub (NX-AI/xLSTM-7b): model_type for AutoConfig
        config |= {"model_type": "xlstm", "architectures": ["xLSTMForCausalLM"]}
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert detect_source(tmp_path) == "xlstm"
    ours = convert("xlstm", tmp_path)
    assert ours.config.backbone.mixers.mlstm.weight_mode == weight_mode
    assert_same_logits(theirs, ours, 40)


def test_matches_picks_exactly_one_converter_and_none_for_seqzoo(tmp_path):
    assert set(MODULES) <= set(CONVERTERS)
    configs = {
        "transformers-mamba": hf_mamba().config.to_dict(),
        "transformers-mamba2": hf_mamba2().config.to_dict(),
        "xlstm": hf_xlstm().config.to_dict(),
        "mamba-ssm": {
            "d_model": 768,
            "n_layer": 24,
            "vocab_size": 50277,
            "ssm_cfg": {},
            "rms_norm": True,
            "residual_in_fp32": True,
            "fused_add_norm": True,
            "pad_vocab_size_multiple": 8,
        },
    }
    for source, config in configs.items():
        assert [s for s, module in MODULES.items() if module.matches(config)] == [source]
    # HyenaDNA's original config shares d_model / n_layer / vocab_size with mamba_ssm's
    hyena = {"d_model": 128, "n_layer": 2, "vocab_size": 12, "layer": {"_name_": "hyena"}}
    assert not any(module.matches(hyena) for module in MODULES.values())
    save_pretrained(SeqModel(ModelConfig()), tmp_path)
    assert detect_source(tmp_path) is None
    seqzoo_config = json.loads((tmp_path / "config.json").read_text())
    assert not any(module.matches(seqzoo_config) for module in MODULES.values())


def test_converted_model_keeps_its_foreign_vocabulary_through_save_and_load(tmp_path):
    theirs = hf_xlstm()
    theirs.save_pretrained(tmp_path / "hf")
    ours = convert("xlstm", tmp_path / "hf")
    assert (ours.config.vocab, ours.config.foreign_vocab_size, ours.config.vocab_size) == ("foreign", 40, 40)
    save_pretrained(ours, tmp_path / "ours")
    again = load_pretrained(tmp_path / "ours")
    assert again.config == ours.config
    assert_same_logits(theirs, again, 40)
    with pytest.raises(ValueError, match=r"token id 40, outside the foreign vocabulary \[0, 40\)"):
        again(torch.tensor([[1, 40]]))


def test_pickle_only_folder_is_refused_without_reading_it(tmp_path):
    hf_mamba().config.save_pretrained(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"not even a pickle: it must never be opened")
    with pytest.raises(IncompatibleCheckpointError) as excinfo:
        convert("transformers-mamba", tmp_path)
    assert "pytorch_model.bin" in one_line_error(excinfo) and "never loads pickle" in str(excinfo.value)


@pytest.mark.parametrize(
    ("source", "make", "override", "option"),
    [
        ("transformers-mamba2", hf_mamba2, {"rms_norm": False}, "mamba2 with rms_norm=False"),
        ("transformers-mamba2", hf_mamba2, {"norm_before_gate": True}, "norm_before_gate=True"),
        ("transformers-mamba", hf_mamba, {"hidden_act": "gelu"}, "mamba with hidden_act='gelu'"),
        ("xlstm", hf_xlstm, {"use_bias": True}, "xlstm with use_bias=True"),
        ("xlstm", hf_xlstm, {"add_out_norm": False}, "add_out_norm=False"),
        ("xlstm", hf_xlstm, {"embedding_dim": 64}, "hidden_size / embedding_dim"),
    ],
    ids=["mamba2-rmsnorm", "mamba2-norm-before-gate", "mamba-act", "xlstm-bias", "xlstm-out-norm", "xlstm-dims"],
)
def test_unsupported_option_is_a_one_line_error_naming_it(tmp_path, source, make, override, option):
    make().save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text()) | override
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(IncompatibleCheckpointError) as excinfo:
        convert(source, tmp_path)
    assert option in one_line_error(excinfo)


@pytest.mark.parametrize(
    ("ssm_cfg", "top", "option"),
    [
        ({"layer": "Mamba2", "rmsnorm": False}, {}, "mamba2 with rmsnorm=False"),
        ({"layer": "Mamba2", "D_has_hdim": True}, {}, "D_has_hdim=True"),
        ({}, {"attn_layer_idx": [1]}, "attn_layer_idx"),
        ({}, {"d_intermediate": 64}, "d_intermediate=64"),
        ({"d_state": 8, "some_new_option": 1}, {}, "ssm_cfg.some_new_option"),
    ],
    ids=["rmsnorm", "D-has-hdim", "attention", "mlp", "unknown"],
)
def test_unsupported_mamba_ssm_option_is_a_one_line_error(tmp_path, ssm_cfg, top, option):
    write_mamba_ssm(tmp_path, hf_mamba(), ssm_cfg, 45, True)
    config = json.loads((tmp_path / "config.json").read_text()) | top
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(IncompatibleCheckpointError) as excinfo:
        convert("mamba-ssm", tmp_path)
    assert option in one_line_error(excinfo)


@pytest.mark.parametrize("change", ["missing", "unexpected", "shape", "untied-head"])
def test_weights_that_do_not_match_the_config_are_a_one_line_error(tmp_path, change):
    theirs = hf_mamba(tie=True)
    theirs.save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    state = safetensors.torch.load_file(str(path))
    expected = {
        "missing": "missing weight 'backbone.layers.1.mixer.D'",
        "unexpected": "unexpected weight 'backbone.layers.1.mixer.extra'",
        "shape": "weight 'backbone.layers.1.mixer.D' has shape (3,)",
        "untied-head": "lm_head.weight differs",
    }[change]
    if change == "missing":
        del state["backbone.layers.1.mixer.D"]
    elif change == "unexpected":
        state["backbone.layers.1.mixer.extra"] = torch.zeros(2)
    elif change == "shape":
        state["backbone.layers.1.mixer.D"] = torch.zeros(3)
    else:
        state["lm_head.weight"] = torch.randn_like(state["backbone.embeddings.weight"])
    safetensors.torch.save_file(state, str(path))
    with pytest.raises(IncompatibleCheckpointError) as excinfo:
        convert("transformers-mamba", tmp_path)
    assert expected in one_line_error(excinfo)


def _official_state(name: str) -> dict[str, torch.Tensor]:
    """The official model of entry ``name`` built on the meta device from the entry's published config,
    its state dict renamed to seqzoo's keys by the converter's own mapping."""
    from zoo.entries.mamba import mamba_hf_config
    from zoo.entries.xlstm import XLSTM_7B_CONFIG

    backbone = get_entry(name).config.backbone
    with torch.device("meta"):
        if name.startswith("mamba-"):
            published = mamba_hf_config(backbone.d_model, len(backbone.pattern))
            config = transformers.MambaConfig(**{k: v for k, v in published.items() if k != "model_type"})
            return transformers.MambaForCausalLM(config).state_dict()
        config = transformers.xLSTMConfig(**{k: v for k, v in XLSTM_7B_CONFIG.items() if k != "model_type"})
        return xlstm.state_dict_to_seqzoo(transformers.xLSTMForCausalLM(config).state_dict())


@pytest.mark.parametrize("name", ["mamba-130m", "mamba-370m", "mamba-790m", "xlstm-7b"])
def test_official_language_entries_have_the_official_models_tensors(name):
    # Every tensor the official model has, under the converter's name and with its shape, and nothing else:
    # what a strict load of the real checkpoint needs (built on the meta device: xlstm-7b has 6.9B parameters).
    theirs = {key: tuple(value.shape) for key, value in _official_state(name).items()}
    with torch.device("meta"):
        ours = {key: tuple(value.shape) for key, value in SeqModel(get_entry(name).config).state_dict().items()}
    assert ours == theirs
