import pytest

import zoo
from zoo.registry import UnknownModelError


def test_list_models_filters_with_wildcards_and_domain():
    dna = zoo.list_models("*dna*")
    assert "hyenadna-tiny" in dna and "hybridna-small" in dna
    assert all("dna" in name for name in dna)
    assert zoo.list_models() == sorted(zoo.list_models())
    assert set(zoo.list_models(domain="protein")) >= {"prot-xlstm-small", "protmamba-small"}


def test_unknown_name_lists_close_matches():
    with pytest.raises(
        UnknownModelError, match=r"unknown model 'hybridna-smal'\. Did you mean: hybridna-small"
    ):
        zoo.load("hybridna-smal", pretrained=False)


def test_pretrained_without_published_weights_says_so():
    with pytest.raises(
        ValueError, match=r"no published weights yet; use zoo.load\('caduceus-small', pretrained=False\)"
    ):
        zoo.load("caduceus-small")


def test_info_reports_size_context_and_licence_without_building_weights():
    facts = zoo.info("hyenadna-tiny")
    assert facts.context == 1024 and facts.pattern == "HH"
    assert facts.license == "Apache-2.0"
    model = zoo.load("hyenadna-tiny", pretrained=False)
    assert facts.parameters == sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def test_names_are_kebab_case():
    for name in zoo.list_models():
        assert name == name.lower() and " " not in name and "_" not in name, name
