"""Named protein tasks: PSORTb / modlAMP parsers on tiny fakes in the real formats, similarity splits, the cache;
the real tables (``data`` tier)."""

import dataclasses
import hashlib
import io
import logging
import tarfile
import zipfile

import numpy as np
import pandas as pd
import pytest

from zoo.data.artifacts import DebianArtifact, PyPIArtifact
from zoo.domains.genomics.datasets import PinnedMember
from zoo.domains.protein.datasets import (
    LOCALISATIONS,
    TASKS,
    check_splits,
    get_task,
    load_labelled,
    parse_amp,
    parse_localisation,
    read_amp_csv,
    read_psortb,
    similarity_split,
)

AA = np.array(list("ACDEFGHIKLMNPQRSTVWY"))


def _protein(rng, n):
    # A common start, as many real proteins share: held-out and training rows then share a k-mer or two (far
    # below any clustering threshold), as in any real data set; the hold-out check is exercised on that.
    return "MSKGE" + "".join(rng.choice(AA, size=n - 5))


def _variant(rng, seq, n_subs=1):
    chars = list(seq)
    for i in rng.choice(len(seq), size=n_subs, replace=False):
        chars[i] = AA[(np.flatnonzero(AA == chars[i])[0] + 1) % 20]
    return "".join(chars)


def _fasta(records, width=60):
    """FASTA text wrapped at ``width`` like the PSORTb files."""
    out = []
    for header, seq in records:
        out.append(f">{header}\n" + "".join(seq[i : i + width] + "\n" for i in range(0, len(seq), width)))
    return "".join(out)


def _families(rng, n_families, per_family, length, labels):
    """Random protein families (members one substitution apart), each with one label."""
    rows = []
    for f in range(n_families):
        root = _protein(rng, length)
        for m in range(per_family):
            rows.append((f, labels[f % len(labels)], root if m == 0 else _variant(rng, root)))
    return rows


# PSORTb localisation -------------------------------------------------------------------------------------


@pytest.fixture
def psortb_files(tmp_path):
    """Three sclblast files in PSORTb's header format, with the real oddities: a second bracket, both spellings
    of Cellwall / OuterMembrane, multi-localised and conflicting entries, one sequence line ending in '^M'."""
    rng = np.random.default_rng(0)
    shared, neg_only, pos_only = _protein(rng, 130), _protein(rng, 90), _protein(rng, 75)
    multi, conflict, broken = _protein(rng, 80), _protein(rng, 70), _protein(rng, 60)
    outer = _protein(rng, 85)
    gramneg = [
        ("16125160 [Cytoplasmic] [Flagellar] flagellar motor switch protein [Caulobacter crescentus CB15]", shared),
        ("1001 [Periplasmic] Periplasmic binding protein", neg_only),
        ("1002 [OuterMembrane,Extracellular] autotransporter", multi),
        ("1003 [Outermembrane] porin", outer),
        ("586037 [CytoplasmicMembrane] transporter", conflict),
    ]
    grampos = [
        ("133466 [Cytoplasmic] RNA polymerase sigma factor rpoD (Sigma-A) (Sigma-43)", shared.lower()),
        ("126670 [Cellwall] M protein, serotype 6 precursor", pos_only),
        ("586037 [CytoplasmicMembrane] transporter", conflict),
    ]
    archaea = [
        ("133466 [Cytoplasmic] RNA polymerase sigma factor", shared),
        ("586037 [Cytoplasmic] transporter", conflict),
        ("62286585 [Cytoplasmic] Arylsulfatase precursor^M", broken + "^M"),
        ("1002 [Extracellular] autotransporter", multi),
    ]
    paths = {}
    for group, records in (("gramneg", gramneg), ("grampos", grampos), ("archaea", archaea)):
        paths[group] = tmp_path / f"{group}.sclblast"
        paths[group].write_text(_fasta(records))
    seqs = {"shared": shared, "neg_only": neg_only, "pos_only": pos_only, "multi": multi, "conflict": conflict}
    return paths, seqs | {"broken": broken, "outer": outer}


def test_read_psortb_parses_localisations_in_both_spellings(psortb_files):
    paths, seqs = psortb_files
    neg = read_psortb(paths["gramneg"], "gramneg")
    assert neg["id"].tolist() == ["16125160", "1001", "1002", "1003", "586037"]
    index = LOCALISATIONS.index
    assert neg["localisations"].tolist() == [
        (index("Cytoplasmic"),),
        (index("Periplasmic"),),
        (index("OuterMembrane"), index("Extracellular")),
        (index("OuterMembrane"),),
        (index("CytoplasmicMembrane"),),
    ]
    assert neg["sequence"].iloc[0] == seqs["shared"] and set(neg["group"]) == {"gramneg"}
    pos = read_psortb(paths["grampos"], "grampos")
    assert pos["localisations"].iloc[1] == (index("CellWall"),)
    assert pos["sequence"].iloc[0] == seqs["shared"], "lowercase residues are read as uppercase"


def test_read_psortb_names_bad_headers(tmp_path):
    path = tmp_path / "bad"
    path.write_text(">42 [Nucleus] not bacterial\nACDE\n")
    with pytest.raises(ValueError, match=r"record '42' has localisation 'Nucleus', not one of \['Cytoplasmic'"):
        read_psortb(path, "gramneg")
    path.write_text(">43 no localisation\nACDE\n")
    with pytest.raises(ValueError, match=r"record '43' has no '\[Localisation\]' after its id"):
        read_psortb(path, "gramneg")


def test_localisation_pools_groups_and_drops_multi_conflicting_and_broken(psortb_files, caplog):
    paths, seqs = psortb_files
    rng = np.random.default_rng(1)
    # Families so that every split gets rows; appended to the gram-negative file.
    families = _families(rng, 30, 3, 60, ["Cytoplasmic", "Extracellular"])
    with open(paths["gramneg"], "a") as handle:
        handle.write(_fasta([(f"9{i} [{label}] family {f}", s) for i, (f, label, s) in enumerate(families)]))
    with caplog.at_level(logging.INFO, logger="zoo.domains.protein.datasets"):
        frame = parse_localisation(paths)
    assert "dropping 1 records with non-residue characters" in caplog.text
    assert list(frame.columns) == ["sequence", "label", "split", "cluster", "id", "groups"]
    by_seq = frame.set_index("sequence")
    for dropped in ("multi", "conflict", "broken"):
        assert seqs[dropped] not in by_seq.index, dropped
    assert by_seq.loc[seqs["shared"], "label"] == LOCALISATIONS.index("Cytoplasmic")
    assert by_seq.loc[seqs["shared"], "groups"] == "archaea;gramneg;grampos"
    assert by_seq.loc[seqs["shared"], "id"] == "16125160"
    assert by_seq.loc[seqs["pos_only"], "label"] == LOCALISATIONS.index("CellWall")
    assert by_seq.loc[seqs["outer"], "label"] == LOCALISATIONS.index("OuterMembrane")
    assert by_seq.loc[seqs["neg_only"], "groups"] == "gramneg"
    assert len(frame) == 4 + len(families) and frame["sequence"].is_unique
    # Split invariants: whole families stay together, every split has rows.
    family_of = {s: f for f, _, s in families}
    spread = frame[frame["sequence"].isin(family_of)].groupby(frame["sequence"].map(family_of))["split"].nunique()
    assert (spread == 1).all()
    assert set(frame["split"]) == {"train", "val", "test"}
    check_splits(frame)


# Antimicrobial peptides ----------------------------------------------------------------------------------


def _amp_text(rows):
    """modlAMP's CSV: a scikit-learn header line, then 'SEQUENCE, LABEL' rows."""
    return f"{len(rows)},1,UniProt,AMP\n" + "".join(f"{s}, {label}\n" for s, label in rows)


def test_read_amp_csv_checks_the_header(tmp_path):
    path = tmp_path / "amp.csv"
    path.write_text(_amp_text([("GLWSKIKEVGKEAAKAAAKAAGKAALGAVSEAV", 1), ("sggGDGSGMWFGPRL", 0)]))
    frame = read_amp_csv(path)
    assert frame["sequence"].tolist() == ["GLWSKIKEVGKEAAKAAAKAAGKAALGAVSEAV", "SGGGDGSGMWFGPRL"]
    assert frame["label"].tolist() == [1, 0] and frame["label"].dtype == np.int64
    path.write_text("3,1,UniProt,AMP\nGLWSK, 1\n")
    with pytest.raises(ValueError, match="the header announces 3 rows, the file has 1"):
        read_amp_csv(path)
    path.write_text("1,1,AMP,UniProt\nGLWSK, 1\n")
    with pytest.raises(ValueError, match=r"first line '1,1,AMP,UniProt' is not 'N,1,UniProt,AMP'"):
        read_amp_csv(path)
    path.write_text("1,1,UniProt,AMP\nGLWSK, 2\n")
    with pytest.raises(ValueError, match="label 2 is not 0"):
        read_amp_csv(path)


def _amp_rows(rng):
    families = _families(rng, 40, 2, 30, [0, 1])
    rows = [(s, label) for _, label, s in families]
    both = _protein(rng, 20)
    return families, [*rows, rows[0], (both, 0), (both, 1)], both


def test_amp_dedupes_drops_double_labelled_and_splits_by_cluster(tmp_path):
    families, rows, both = _amp_rows(np.random.default_rng(2))
    path = tmp_path / "AMPvsUniProt.csv"
    path.write_text(_amp_text(rows))
    frame = parse_amp(path)
    assert list(frame.columns) == ["sequence", "label", "split", "cluster"]
    assert len(frame) == len(families) and both not in set(frame["sequence"])
    truth = {s: label for _, label, s in families}
    assert (frame["label"] == frame["sequence"].map(truth)).all()
    family_of = {s: f for f, _, s in families}
    assert (frame.groupby(frame["sequence"].map(family_of))["split"].nunique() == 1).all()
    assert set(frame["split"]) == {"train", "val", "test"}


def test_check_splits_catches_shared_sequences_and_clusters():
    frame = pd.DataFrame(
        {"sequence": ["ACDE", "FGHI", "KLMN"], "split": ["train", "val", "test"], "cluster": [0, 1, 2]}
    )
    check_splits(frame)
    with pytest.raises(ValueError, match=r"1 similarity clusters span two splits, e\.g\. cluster 1"):
        check_splits(frame.assign(cluster=[0, 1, 1]))
    with pytest.raises(ValueError, match="1 sequences occur in two splits"):
        check_splits(frame.assign(sequence=["ACDE", "acde", "KLMN"]))


def test_similarity_split_is_seeded():
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        [(s, label) for _, label, s in _families(rng, 30, 2, 40, [0, 1])], columns=["sequence", "label"]
    )
    a, b = similarity_split(frame, k=3, min_shared=0.25), similarity_split(frame, k=3, min_shared=0.25)
    pd.testing.assert_frame_equal(a, b)


# Registry and cache --------------------------------------------------------------------------------------


def test_registry_and_unknown_names():
    for name, task in TASKS.items():
        assert task.name == name and task.task == "classification" and len(task.classes) >= 2
        assert task.members and all(len(m.sha256) == 64 for m in task.members)
    assert TASKS["scope-fold"].classes and len(TASKS["scope-fold"].classes) > 100
    with pytest.raises(ValueError, match=r"unknown protein task 'localization'; did you mean 'localisation'"):
        get_task("localization")


def _fake_amp_wheel(tmp_path, rows):
    """A fake modlamp wheel holding ``AMPvsUniProt.csv``; returns (folder, artifact, pinned member)."""
    text = _amp_text(rows).encode()
    folder = tmp_path / "mirror"
    folder.mkdir(exist_ok=True)
    wheel = folder / "modlamp-4.3.3-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("modlamp/data/AMPvsUniProt.csv", text)
    artifact = PyPIArtifact("modlamp", "4.3.3", wheel.name, sha256=hashlib.sha256(wheel.read_bytes()).hexdigest())
    member = PinnedMember(artifact, "modlamp/data/AMPvsUniProt.csv", hashlib.sha256(text).hexdigest())
    return folder, member


def test_load_labelled_builds_once_then_reads_the_cache_and_rebuilds_a_leaking_one(tmp_path, monkeypatch):
    families, rows, _ = _amp_rows(np.random.default_rng(4))
    mirror, member = _fake_amp_wheel(tmp_path, rows)
    monkeypatch.setitem(TASKS, "amp", dataclasses.replace(TASKS["amp"], members=(member,)))
    cache = tmp_path / "cache"
    frame = load_labelled("amp", cache_dir=cache, mirror=mirror)
    assert len(frame) == len(families) and frame["label"].dtype == np.int64
    (table,) = (cache / "parsed").glob("labelled-amp-*-v*.csv.gz")

    def no_fetch(*args, **kwargs):
        raise AssertionError("the second load must not fetch or parse")

    original = PinnedMember.fetch
    monkeypatch.setattr(PinnedMember, "fetch", no_fetch)
    pd.testing.assert_frame_equal(load_labelled("amp", cache_dir=cache), frame)
    # A cached table whose clusters cross splits fails the check on load and is rebuilt.
    leaking = frame.copy()
    leaking.loc[leaking["split"] == "test", "cluster"] = leaking.loc[leaking["split"] == "train", "cluster"].iloc[0]
    leaking.to_csv(table, index=False, compression="gzip")
    monkeypatch.setattr(PinnedMember, "fetch", original)
    pd.testing.assert_frame_equal(load_labelled("amp", cache_dir=cache, mirror=mirror), frame)


def _deb(files):
    """A minimal .deb (ar archive: debian-binary, control.tar.xz, data.tar.xz)."""

    def member(name, data):
        header = f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        return header + data + (b"\n" if len(data) % 2 else b"")

    def tar(entries):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:xz") as archive:
            for path, data in entries.items():
                info = tarfile.TarInfo("./" + path)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    return (
        b"!<arch>\n"
        + member("debian-binary", b"2.0\n")
        + member("control.tar.xz", tar({}))
        + member("data.tar.xz", tar(files))
    )


def test_load_localisation_from_a_fake_debian_package(tmp_path, monkeypatch, psortb_files):
    paths, seqs = psortb_files
    rng = np.random.default_rng(5)
    families = _families(rng, 30, 2, 50, ["Cytoplasmic", "Periplasmic", "CytoplasmicMembrane"])
    extra = _fasta([(f"8{i} [{label}] family", s) for i, (_, label, s) in enumerate(families)])
    files = {
        f"usr/lib/psort/conf/analysis/sclblast/{group}/sclblast": path.read_bytes()
        + (extra.encode() if group == "gramneg" else b"")
        for group, path in paths.items()
    }
    deb = _deb(files)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    real = TASKS["localisation"].members[0].artifact
    (mirror / real.filename).write_bytes(deb)
    artifact = dataclasses.replace(real, sha256=hashlib.sha256(deb).hexdigest())
    assert isinstance(artifact, DebianArtifact)
    members = tuple(
        PinnedMember(artifact, m.member, hashlib.sha256(files[m.member]).hexdigest())
        for m in TASKS["localisation"].members
    )
    monkeypatch.setitem(TASKS, "localisation", dataclasses.replace(TASKS["localisation"], members=members))
    frame = load_labelled("localisation", cache_dir=tmp_path / "cache", mirror=mirror)
    assert len(frame) == 4 + len(families)
    assert seqs["pos_only"] in set(frame["sequence"]) and seqs["multi"] not in set(frame["sequence"])
    assert set(frame["split"]) == {"train", "val", "test"}


# Real data (may download) --------------------------------------------------------------------------------


def _counts(frame):
    return pd.crosstab(frame["split"], frame["label"]).to_dict("index")


@pytest.mark.data
def test_real_localisation():
    frame = load_labelled("localisation")
    assert len(frame) == 12_364
    assert frame["label"].value_counts().sort_index().tolist() == [8_400, 2_009, 521, 575, 775, 84]
    assert frame["split"].value_counts().to_dict() == REAL_LOCALISATION_SPLITS
    check_splits(frame)


@pytest.mark.data
def test_real_amp():
    frame = load_labelled("amp")
    assert len(frame) == 4_620 and frame["label"].value_counts().to_dict() == {1: 2_540, 0: 2_080}
    assert frame["sequence"].str.len().between(7, 174).all()
    assert frame["split"].value_counts().to_dict() == REAL_AMP_SPLITS
    check_splits(frame)


REAL_LOCALISATION_SPLITS = {"train": 9_892, "val": 1_236, "test": 1_236}
REAL_AMP_SPLITS = {"train": 3_696, "val": 462, "test": 462}
