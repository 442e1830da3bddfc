"""Entries of official checkpoints: their architectures match what the official models publish."""

import pytest

import zoo
from zoo.api import parameter_count
from zoo.model import count_parameters
from zoo.registry import get_entry

# Parameter counts of the loaded official -hf models (``sum(p.numel() for p in model.parameters())``), as a
# public project pinned to the same revisions recorded them. They include the untied lm_head and exclude the
# positional features ``z``, which the -hf code keeps as a buffer while seqzoo learns them.
PUBLISHED_PARAMETERS = {
    "hyenadna-tiny-1k": 438_144,
    "hyenadna-small-32k": 3_281_664,
    "hyenadna-medium-160k": 6_554_624,
}


# Parameter counts public projects measured on the loaded official checkpoints (Caduceus through its remote
# code, Mamba through transformers / mamba_ssm); seqzoo's counts are the same tensors.
PUBLISHED_COUNTS = {
    "caduceus-ps-131k": 7_725_312,
    "caduceus-ps-1k": 1_934_592,
    "caduceus-ps-1k-d118": 470_702,
    "mamba-130m": 129_135_360,
    "mamba2-130m": 128_989_632,
}


@pytest.mark.parametrize(("name", "published"), PUBLISHED_COUNTS.items())
def test_official_entries_have_the_published_parameter_counts(name, published):
    assert parameter_count(get_entry(name)) == published


@pytest.mark.parametrize(("name", "published"), PUBLISHED_PARAMETERS.items())
def test_official_hyenadna_architectures_have_the_published_parameter_counts(name, published):
    model = zoo.load(name, pretrained=False)
    z = sum(layer.mixer.filter_fn.pos_emb.z.numel() for layer in model.backbone.layers)
    assert count_parameters(model) - z == published


def test_official_entries_pin_full_commit_hashes():
    for name in zoo.list_models():
        weights = get_entry(name).weights
        if weights is not None and weights.source != "seqzoo":
            assert len(weights.revision) == 40 and int(weights.revision, 16) >= 0, f"{name}: pin a full commit"
            assert weights.sha256 is None or len(weights.sha256) == 64
