"""DMS assays from fake sdists in the real file formats: numbering, wild-type checks, evaluate(); real data marked."""

import dataclasses
import io
import tarfile

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr

from zoo.backbone import BackboneConfig
from zoo.data.artifacts import ArtifactError, sha256_file
from zoo.domains.protein import dms
from zoo.domains.protein.dms import (
    ASSAYS,
    Assay,
    SdistArtifact,
    evaluate,
    hxb2_labels,
    load_assay,
    load_homologs,
    substitution_scores,
)
from zoo.domains.protein.mutations import score_mutations
from zoo.model import ModelConfig, SeqModel

AA = "ACDEFGHIKLMNPQRSTVWY"


def prefs_csv(sites: list[str], seed: int) -> str:
    rng = np.random.default_rng(seed)
    values = rng.dirichlet(np.ones(20), size=len(sites))
    frame = pd.DataFrame(values, columns=list(AA))
    frame.insert(0, "site", sites)
    return frame.to_csv(index=False)


def write_sdist(folder, name: str, version: str, files: dict[str, str]) -> None:
    """A ``<name>-<version>.tar.gz`` holding ``files`` below its top folder, as a real sdist."""
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(folder / f"{name}-{version}.tar.gz", "w:gz") as tar:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{name}-{version}/{path}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def fake_spec(monkeypatch, tmp_path, name: str, files: dict[str, str], sdist="dms_tools2", **pins) -> None:
    """Point ASSAYS[name] at a fake sdist in tmp_path/mirror, its members pinned to the fake files' sha256."""
    spec = ASSAYS[name]
    write_sdist(tmp_path / "mirror", sdist, spec.artifact.version, files)
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    members = {}
    for key, (member, _) in spec.members.items():
        (scratch / key).write_text(files[member])
        members[key] = (member, pins.get(key, sha256_file(scratch / key)))
    homologs = None
    if spec.homologs is not None and spec.homologs[0] in files:
        (scratch / "homologs").write_text(files[spec.homologs[0]])
        homologs = (spec.homologs[0], sha256_file(scratch / "homologs"))
    artifact = SdistArtifact(sdist, spec.artifact.version)  # no pin: the fake file is only read from the mirror
    monkeypatch.setitem(ASSAYS, name, dataclasses.replace(spec, artifact=artifact, members=members, homologs=homologs))


def load(name, tmp_path):
    return load_assay(name, cache_dir=tmp_path / "cache", mirror=tmp_path / "mirror")


HA_FILES = {
    "examples/Doud2016/results/prefs/summary_avgprefs.csv": prefs_csv(["1", "2", "3", "4", "5"], seed=0),
    "examples/Doud2016/data/WSN-HA.fasta": ">coding sequence of HA\natgaaggcaaaa\nctataa\n",  # M K A K L stop
    "examples/Doud2016/data/HA_alignment.fasta": ">a\nATGAAG---GCATAA\n>frameshift\nATGAAGG\n>stop\nATGTAAAAG\n",
}

# BF520 "MRVGKEQ" against HXB2 "MRVKEAQ": G is an insertion after HXB2 site 3 (label 3a), HXB2 site 6 is absent.
ENV_SITES = ["2", "3", "3a", "4", "7"]
ENV_FILES = {
    **{f"examples/Lee2018/data/Env_BF520_replicate-{k}_prefs_rescaled.csv": prefs_csv(ENV_SITES, seed=k)
       for k in (1, 2, 3)},
    "examples/Haddox2018/data/BF520_env.fasta": ">BF520\nATGAGAGTGGGGAAGGAACAGTAA\n",
    "examples/Haddox2018/data/Env_protalignment_manualtweaks.fasta": ">HXB2\nMRV-KEAQ\n>BF520\nMRVGKE-Q\n",
    "examples/Lee2018/data/BG505_to_BF520_prefs_dist.csv":
        "site,RMSDcorrected,BG505,BF520\n2,0.1,K,R\n3a,0.2,-,G\n7,0.3,Q,Q\n",
}  # fmt: skip

SPIKE_CSV = """sequential_site,reference_site,wildtype,mutant,phenotype,effect,effect_std,times_seen,n_libraries
1,1,M,I,observed,-2.2,0.8,8.75,3
1,1,M,M,observed,0.0,0.0,,3
1,1,M,*,observed,-4.0,0.1,2,3
2,2,F,L,observed,0.5,0.1,3,2
2,2,F,-,observed,-1.0,0.1,3,2
3,5,V,A,observed,-0.25,0.2,4,3
3,5,V,W,observed,0.75,0.2,4,3
"""
SPIKE_FILES = {"notebooks/Omicron_BA.1_muteffects_observed.csv": SPIKE_CSV}


def test_ha_preferences_become_log_ratios_on_the_translated_wild_type(monkeypatch, tmp_path):
    fake_spec(monkeypatch, tmp_path, "ha-doud2016", HA_FILES)
    assay = load("ha-doud2016", tmp_path)
    assert assay.wildtype == "MKAKL"
    assert len(assay.mutations) == 5 * 19
    prefs_text = HA_FILES["examples/Doud2016/results/prefs/summary_avgprefs.csv"]
    prefs = pd.read_csv(io.StringIO(prefs_text)).set_index("site")
    row = assay.mutations.set_index("mutation").loc["A3W"]
    assert row["score"] == pytest.approx(np.log(prefs.loc[3, "W"] / prefs.loc[3, "A"]))
    assert row["site"] == "3"
    assert "dms_tools2==2.6.12" in assay.source


def test_ha_prefs_in_another_numbering_are_an_error(monkeypatch, tmp_path):
    shifted = prefs_csv(["2", "3", "4", "5", "6"], 0)
    files = {**HA_FILES, "examples/Doud2016/results/prefs/summary_avgprefs.csv": shifted}
    fake_spec(monkeypatch, tmp_path, "ha-doud2016", files)
    with pytest.raises(ValueError, match=r"expected sequential sites 1..5 .* from 2 to 6"):
        load("ha-doud2016", tmp_path)


def test_hxb2_labels_number_insertions_with_letters():
    assert hxb2_labels("MRV-KEAQ", "MRVGKE-Q") == ["1", "2", "3", "3a", "4", "5", "7"]
    assert hxb2_labels("MR--V", "MRGGV") == ["1", "2", "2a", "2b", "3"]


def test_env_replicates_are_averaged_and_hxb2_sites_map_to_bf520_positions(monkeypatch, tmp_path):
    fake_spec(monkeypatch, tmp_path, "env-bf520-haddox2018", ENV_FILES)
    assay = load("env-bf520-haddox2018", tmp_path)
    assert assay.wildtype == "MRVGKEQ"
    assert len(assay.mutations) == len(ENV_SITES) * 19
    reps = [pd.read_csv(io.StringIO(ENV_FILES[f"examples/Lee2018/data/Env_BF520_replicate-{k}_prefs_rescaled.csv"]),
                        dtype={"site": str}).set_index("site") for k in (1, 2, 3)]  # fmt: skip
    mean = sum(reps) / 3
    table = assay.mutations.set_index("mutation")
    # HXB2 3a is BF520 residue 4 (G); HXB2 7 is residue 7 (Q).
    assert table.loc["G4A", "site"] == "3a"
    assert table.loc["G4A", "score"] == pytest.approx(np.log(mean.loc["3a", "A"] / mean.loc["3a", "G"]))
    assert table.loc["Q7C", "site"] == "7"
    assert not any(m.startswith("M1") or m[1:-1] == "6" for m in table.index)


def test_env_wild_type_mismatch_is_an_error(monkeypatch, tmp_path):
    wrong = {**ENV_FILES, "examples/Lee2018/data/BG505_to_BF520_prefs_dist.csv": "site,BG505,BF520\n4,K,R\n"}
    fake_spec(monkeypatch, tmp_path, "env-bf520-haddox2018", wrong)
    with pytest.raises(ValueError, match=r"HXB2 site 4: BF520 residue K .* differs from R"):
        load("env-bf520-haddox2018", tmp_path)


def test_spike_keeps_amino_acid_substitutions_and_reads_the_wild_type_from_the_sites(monkeypatch, tmp_path):
    fake_spec(monkeypatch, tmp_path, "spike-ba1-cell-entry", SPIKE_FILES, sdist="polyclonal")
    assay = load("spike-ba1-cell-entry", tmp_path)
    assert assay.wildtype == "MFV"
    assert assay.mutations["mutation"].tolist() == ["M1I", "F2L", "V3A", "V3W"]
    assert assay.mutations["score"].tolist() == [-2.2, 0.5, -0.25, 0.75]
    assert assay.mutations["site"].tolist() == ["1", "2", "5", "5"]


def test_spike_conflicting_wild_type_is_an_error(monkeypatch, tmp_path):
    files = {"notebooks/Omicron_BA.1_muteffects_observed.csv": SPIKE_CSV + "3,5,L,A,observed,0.1,0.1,1,1\n"}
    fake_spec(monkeypatch, tmp_path, "spike-ba1-cell-entry", files, sdist="polyclonal")
    with pytest.raises(ValueError, match="sequential site 3 has several wild-type residues"):
        load("spike-ba1-cell-entry", tmp_path)


def test_a_member_that_differs_from_its_pin_is_refused(monkeypatch, tmp_path):
    fake_spec(monkeypatch, tmp_path, "ha-doud2016", HA_FILES, cds="0" * 64)
    with pytest.raises(ArtifactError, match=r"sha256 mismatch .*WSN-HA\.fasta"):
        load("ha-doud2016", tmp_path)
    members = tmp_path / "cache" / "pypi-sdist" / "dms_tools2-2.6.12" / "members"
    assert not (members / "examples/Doud2016/data/WSN-HA.fasta").exists()


def test_unknown_assay_and_missing_homologs():
    with pytest.raises(KeyError, match="unknown assay 'gfp'; known: env-bf520"):
        load_assay("gfp")
    with pytest.raises(ValueError, match="no homologs ship with the 'spike-ba1-cell-entry'"):
        load_homologs("spike-ba1-cell-entry")


def test_homologs_are_translated_and_broken_records_skipped(monkeypatch, tmp_path):
    fake_spec(monkeypatch, tmp_path, "ha-doud2016", HA_FILES)
    assert load_homologs("ha-doud2016", cache_dir=tmp_path / "cache", mirror=tmp_path / "mirror") == ["MKA"]


def test_substitution_scores_sum_blosum62_over_positions():
    assay = Assay("x", "MKA", pd.DataFrame({"mutation": ["M1I", "K2W", "M1I:K2W"], "score": [0, 0, 0]}), "", "")
    np.testing.assert_array_equal(substitution_scores(assay), [1.0, -3.0, -2.0])  # BLOSUM62: M-I 1, K-W -3


def test_evaluate_correlates_model_scores_with_the_assay():
    torch.manual_seed(0)
    model = SeqModel(ModelConfig(vocab="protein", backbone=BackboneConfig(d_model=16, pattern="M")))
    wildtype = "MKTAYIAKQRQISFVKSHFSRQ"
    rng = np.random.default_rng(0)
    mutations = [f"{wildtype[i]}{i + 1}{aa}" for i in range(len(wildtype)) for aa in "AGW" if aa != wildtype[i]]
    assay = Assay("fake", wildtype, pd.DataFrame({"mutation": mutations, "score": rng.normal(size=len(mutations))}),
                  "", "")  # fmt: skip
    got = evaluate(model, assay, method="wt-marginal")
    scores = score_mutations(model, wildtype, mutations, method="wt-marginal")["score"]
    assert got["n"] == len(mutations)
    assert got["spearman"] == pytest.approx(spearmanr(scores, assay.mutations["score"]).statistic)
    sub = evaluate(model, assay, method="wt-marginal", max_mutations=20, seed=1)
    assert sub["n"] == 20 and -1 <= sub["spearman"] <= 1
    assert evaluate(model, assay, method="wt-marginal", max_mutations=20, seed=1) == sub
    with pytest.raises(ValueError, match="max_mutations must be >= 2"):
        evaluate(model, assay, max_mutations=1)


def test_sdist_download_needs_a_pin(tmp_path):
    with pytest.raises(ArtifactError, match="only downloaded with a sha256 pin"):
        SdistArtifact("dms_tools2", "2.6.12").download(tmp_path)
    assert dms.SdistArtifact("polyclonal", "6.17").filename == "polyclonal-6.17.tar.gz"


@pytest.mark.data
@pytest.mark.parametrize("name", sorted(ASSAYS))
def test_real_assays_have_their_published_sizes(name):
    assay = load_assay(name)
    expected = ASSAYS[name].expected
    assert len(assay.wildtype) == expected["length"]
    assert assay.mutations["site"].nunique() == expected["sites"]
    assert len(assay.mutations) == expected["mutations"]
    assert assay.mutations["score"].notna().all() and np.isfinite(assay.mutations["score"]).all()
    rho = spearmanr(substitution_scores(assay), assay.mutations["score"]).statistic
    assert rho > 0.1  # BLOSUM62 is a weak but real floor on every assay


@pytest.mark.data
def test_real_homologs_are_related_full_length_proteins():
    ha = load_homologs("ha-doud2016")
    assert len(ha) == 34 and all(len(h) == 565 for h in ha)
    env = load_homologs("env-bf520-haddox2018")
    assert len(env) > 1000 and all(800 <= len(s) <= 1000 for s in env)
