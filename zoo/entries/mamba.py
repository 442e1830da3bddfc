"""Official Mamba and Mamba-2 language models (state-spaces; Gu & Dao, 2023; Dao & Gu, 2024), converted on load.

These are English language models trained on the Pile with the GPT-NeoX tokenizer: seqzoo has no tokenizer
for them (``vocab="foreign"``: pass ids from ``transformers.AutoTokenizer``). They are here as pretrained
backbones to fine-tune or to compare against, and to keep the converters honest against real layouts.
Revisions and checksums are the ones other public projects pin for these repos (the Hub is not reachable
from here to re-read them); ``sha256`` is None where no published value for ``model.safetensors`` was found.
Sizes whose pinned revision could not be tied to safetensors files from here (1.4b, 2.8b; Mamba-2 past 130m,
whose safetensors conversions are unpinned pull requests) are left out rather than guessed.
"""

from zoo.hub.convert import mamba, mamba_ssm
from zoo.registry import Entry, Weights, official_entry


def mamba_hf_config(d_model: int, n_layer: int) -> dict:
    """The published ``config.json`` fields of ``state-spaces/mamba-*-hf`` (the sizes differ in width and depth)."""
    return {
        "model_type": "mamba", "hidden_size": d_model, "num_hidden_layers": n_layer,
        "intermediate_size": 2 * d_model, "state_size": 16, "conv_kernel": 4, "time_step_rank": d_model // 16,
        "vocab_size": 50280, "layer_norm_epsilon": 1e-5, "residual_in_fp32": True, "use_bias": False,
        "use_conv_bias": True, "tie_word_embeddings": True,
    }  # fmt: skip


def _mamba(size: str, d_model: int, n_layer: int, revision: str, sha256: str | None) -> Entry:
    """A ``state-spaces/mamba-<size>-hf`` checkpoint (transformers' ``MambaForCausalLM`` layout)."""
    repo = f"state-spaces/mamba-{size}-hf"
    return official_entry(
        name=f"mamba-{size}",
        family="mamba",
        domain="language",
        description=f"Official Mamba {size} (state-spaces, the Pile, GPT-NeoX tokens), {n_layer} layers, d {d_model}",
        license="Apache-2.0",
        config=mamba.model_config(mamba_hf_config(d_model, n_layer)),
        weights=Weights(repo_id=repo, revision=revision, source="transformers-mamba", sha256=sha256),
        layout="transformers checkpoint",
    )


def _mamba2(size: str, d_model: int, n_layer: int, revision: str, sha256: str | None) -> Entry:
    """A ``state-spaces/mamba2-<size>`` checkpoint (mamba_ssm's ``MambaLMHeadModel`` layout).

    The repo's main branch holds only ``pytorch_model.bin``, which seqzoo never unpickles; the pinned
    revision is the Hub's safetensors conversion of it (the ``SFconvertbot`` pull request, ``refs/pr/1``),
    the same tensors in safetensors.
    """
    repo = f"state-spaces/mamba2-{size}"
    published = {
        "d_model": d_model, "d_intermediate": 0, "n_layer": n_layer, "vocab_size": 50277,
        "ssm_cfg": {"layer": "Mamba2"}, "attn_layer_idx": [], "attn_cfg": {}, "rms_norm": True,
        "residual_in_fp32": True, "fused_add_norm": True, "pad_vocab_size_multiple": 16, "tie_embeddings": True,
    }  # fmt: skip
    return official_entry(
        name=f"mamba2-{size}",
        family="mamba2",
        domain="language",
        description=f"Official Mamba-2 {size} (state-spaces, the Pile, GPT-NeoX tokens), {n_layer} layers, d {d_model}",
        license="Apache-2.0",
        config=mamba_ssm.model_config(published),
        weights=Weights(repo_id=repo, revision=revision, source="mamba-ssm", sha256=sha256),
        layout="mamba_ssm checkpoint (safetensors conversion PR)",
    )


ENTRIES = (
    _mamba("130m", 768, 24, "1e76775f628fbf1350fbe4dbb3d971ba64af25a1",
           "1a5ed29c492ef4d485df3b7c2c8109771696589855b2162ad1ba618b6067cbea"),
    _mamba("370m", 1024, 48, "14e4f0139736c06e3d2bef0ebce116cc6f371b11",
           "8e2386de4c63e64a371cb9bc451421b04a33390103ba5e596ead4ac4c668a2b1"),
    _mamba("790m", 1536, 48, "aa0967938c20baa48bc77fed079210f97ff30eff",
           "3fbcf74674d28034e728b911315e4749cc4fc34ebfab36099f46d92bb657a617"),
    _mamba2("130m", 768, 24, "ea6060f68a4289e9c06f80effa896629ba519216", None),
)  # fmt: skip
