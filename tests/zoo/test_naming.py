"""did_you_mean: the close-match hint every unknown task or dataset name gets."""

from zoo.naming import did_you_mean


def test_close_names_are_suggested_in_order_of_similarity():
    assert did_you_mean("etth", ["etth1", "household-power"]) == "did you mean 'etth1'? "
    assert did_you_mean("species", ["speciess", "specie", "promoters"]) == "did you mean 'speciess', 'specie'? "


def test_nothing_close_gives_no_hint():
    assert did_you_mean("zzz", ["etth1", "household-power"]) == ""
