"""Named sequence-level protein tasks from pinned public data: one table of sequences, labels and splits per task.

Contract of ``load_labelled(name)`` (as ``zoo.domains.genomics.datasets.load_labelled``): a ``pd.DataFrame`` with
``sequence`` (uppercase ``str``), ``label`` (``int`` index into ``TASKS[name].classes``), ``split`` (``train`` /
``val`` / ``test``) and, except for ``scope-fold``, ``cluster`` (sequence-similarity cluster id). Splits are
drawn over whole clusters (``zoo.domains.protein.similarity``), never over single rows, so a test protein has no
close homolog in training; every load checks that no sequence and no cluster occurs in two splits.

================  ==========  ===========================================================================
task              kind        rows, split
================  ==========  ===========================================================================
``localisation``  6 classes   bacterial / archaeal proteins with one experimentally known subcellular
                              localisation (PSORTb 3 reference sets); 80/10/10 over 5-mer clusters (~63% id.)
``amp``           2 classes   peptides of 7-174 residues, antimicrobial (AMP) vs UniProt non-AMP
                              (modlAMP); 80/10/10 over 4-mer clusters (~71% id.)
``scope-fold``    fold index  SCOPe domains by fold, superfamilies held out (``zoo.domains.protein.structure``)
================  ==========  ===========================================================================

Each table is built once and cached as ``<cache>/parsed/labelled-<task>-<key>-v<format>.csv.gz``, ``key`` hashing
the pinned sha256s and the split parameters. GPL data is fetched into the user's cache at run time, never shipped.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from zoo.data.artifacts import DebianArtifact, PyPIArtifact, atomic_file, default_cache_dir
from zoo.domains.genomics.corpus import SPLITS

# The task spec and pinned member are domain-neutral dataclasses (their genome/corpus fields stay empty here):
# one spec shape for both registries, so LabelledSequenceDataModule reads either the same way.
from zoo.domains.genomics.datasets import LabelledTask, PinnedMember, check_no_leak
from zoo.domains.protein import structure
from zoo.domains.protein.tokenizer import ProteinTokenizer
from zoo.naming import did_you_mean

logger = logging.getLogger(__name__)

#: Bump when a parser or the split changes, so tables cached by an older one are not reused.
PARSED_FORMAT = 2
SEED = 0
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)

_PSORTB = DebianArtifact(
    "psortb",
    "3.0.6+dfsg-3+b2",
    "pool/main/p/psortb/psortb_3.0.6+dfsg-3+b2_amd64.deb",
    sha256="c54bddf82b21bc534d720bd93d814228472f5b95bd4383d8dc332fa35c2533f0",
)
_MODLAMP = PyPIArtifact(
    "modlamp",
    "4.3.3",
    "modlamp-4.3.3-py3-none-any.whl",
    sha256="6948bcbc4a9614d10b6b47a051d4576c42fe8e5487fbbeb3cfe0d8033eb27f91",
)

#: PSORTb reference-set file of each organism group, in the order the groups are read.
PSORTB_GROUPS = ("gramneg", "grampos", "archaea")
#: Localisation classes, in label order.
LOCALISATIONS = ("Cytoplasmic", "CytoplasmicMembrane", "Periplasmic", "OuterMembrane", "Extracellular", "CellWall")
# The headers spell some names in two ways (``Cellwall``, ``Outermembrane`` once): compare case-insensitively.
_LOCALISATION_INDEX = {name.lower(): i for i, name in enumerate(LOCALISATIONS)}
#: Clustering of full-length proteins (median 419 residues): 5-mers, linked when 10% of the shorter one's 5-mers
#: occur in the other (about 63% identity, see ``zoo.domains.protein.similarity``).
LOCALISATION_K, LOCALISATION_MIN_SHARED = 5, 0.1
#: Peptides (median 32 residues, 7 at least): shorter k-mers than for proteins, so that a 7-residue peptide still
#: has 4 k-mers. Not 3-mers: AMPs are K/L/R/G-rich, so unrelated peptides share 3-mers by composition; at the
#: threshold matching ~63% identity (0.63 ** 3 = 0.25) single linkage chains 1,240 of the 4,620 peptides into one
#: cluster and the exact hold-out check leaves 89 test peptides. 4-mers at 0.25 (~71% identity for scattered
#: substitutions: 0.71 ** 4) give clusters of at most 300 and 360 test peptides.
AMP_K, AMP_MIN_SHARED = 4, 0.25

TASKS: dict[str, LabelledTask] = {
    "localisation": LabelledTask(
        name="localisation",
        task="classification",
        classes=LOCALISATIONS,
        description="bacterial and archaeal proteins with one known subcellular localisation (PSORTb 3 reference "
        "sets of Gram-negative, Gram-positive and archaeal proteins, pooled and deduplicated; multi-localised and "
        f"conflicting sequences dropped); {LOCALISATION_K}-mer similarity clusters split 80/10/10",
        source="Debian psortb 3.0.6+dfsg-3+b2, usr/lib/psort/conf/analysis/sclblast/{gramneg,grampos,archaea}/sclblast",
        license="GPL-2.0-or-later",
        citation="Yu et al. (2010) PSORTb 3.0: improved protein subcellular localization prediction with refined "
        "localization subcategories and predictive capabilities for all prokaryotes. Bioinformatics 26:1608-1615",
        members=tuple(
            PinnedMember(_PSORTB, f"usr/lib/psort/conf/analysis/sclblast/{group}/sclblast", sha256)
            for group, sha256 in (
                ("gramneg", "ba36a54d80fd8b70fb78490c9a3e41174947bc5801e70107e34f23d73eb31379"),
                ("grampos", "57995dd0c830159032dec2954e55a9d852d6bfe9e6209cd5086c5eaa8d3e69bb"),
                ("archaea", "937a60f1f435b65fbdb72e7d9f50a392580d7aa4a2da249fd2a46d0d5b00708b"),
            )
        ),
    ),
    "amp": LabelledTask(
        name="amp",
        task="classification",
        classes=("non-AMP", "AMP"),
        description="peptides, antimicrobial (AMP) vs UniProt peptides without antimicrobial annotation "
        f"(deduplicated; sequences with both labels dropped); {AMP_K}-mer similarity clusters split 80/10/10",
        source="PyPI modlamp 4.3.3 wheel, modlamp/data/AMPvsUniProt.csv",
        license="BSD-3-Clause",
        citation="Mueller et al. (2017) modlAMP: Python for antimicrobial peptides. Bioinformatics 33:2753-2755",
        members=(
            PinnedMember(
                _MODLAMP,
                "modlamp/data/AMPvsUniProt.csv",
                "e1db3dd659179118dcfca63723385f2f0c95c49d27060a90f7a9d5848250eb48",
            ),
        ),
    ),
    # Built and checked (superfamily hold-out) by the structure module; registered here so that every named
    # protein task resolves from one registry.
    "scope-fold": structure.TASKS["scope-fold"],
}
#: Tasks whose tables another module builds: name -> its ``load_labelled``.
_DELEGATED: dict[str, Callable[..., pd.DataFrame]] = {"scope-fold": structure.load_labelled}


def get_task(name: str) -> LabelledTask:
    """The task ``name``; an unknown name is an error suggesting the closest known ones."""
    if name not in TASKS:
        known = ", ".join(sorted(TASKS))
        raise ValueError(f"unknown protein task {name!r}; {did_you_mean(name, TASKS)}known tasks: {known}")
    return TASKS[name]


def load_labelled(name: str, cache_dir: str | Path | None = None, mirror: str | Path | None = None) -> pd.DataFrame:
    """The table of task ``name`` (see the module docstring), fetched, parsed, split and cached once.

    ``cache_dir`` defaults to ``zoo.data.default_cache_dir()``; ``mirror`` is a folder holding the artifact
    files, for machines without index access.
    """
    task = get_task(name)
    if name in _DELEGATED:
        frame = _DELEGATED[name](name, cache_dir=cache_dir, mirror=mirror)
        check_no_leak(frame, name)
        return frame
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    parsed = cache / "parsed" / f"labelled-{task.name}-{_table_key(task)}-v{PARSED_FORMAT}.csv.gz"
    dtypes = {"sequence": str, "split": str, "label": "int64", "cluster": "int64"}
    if parsed.is_file():
        try:
            frame = pd.read_csv(parsed, dtype=dtypes, keep_default_na=False)
            check_splits(frame, str(parsed))
            return frame
        except (OSError, ValueError, EOFError) as error:
            logger.warning("ignoring unreadable table %s (%s); building it again", parsed, error)
    logger.info("building protein task %s (once; cached as %s)", task.name, parsed)
    paths = [m.fetch(cache, mirror) for m in task.members]
    frame = _BUILDERS[task.name](paths)
    parsed.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(parsed) as handle:
        # mtime 0: the same table gives the same bytes.
        frame.to_csv(handle, index=False, compression={"method": "gzip", "mtime": 0})
    return frame


def check_splits(frame: pd.DataFrame, where: str = "table") -> None:
    """Raise if a sequence (identical, case-insensitive) or a similarity cluster occurs in two splits."""
    check_no_leak(frame, where)
    spread = frame.groupby("cluster")["split"].nunique()
    leaked = spread[spread > 1]
    if len(leaked):
        raise ValueError(f"{where}: {len(leaked)} similarity clusters span two splits, e.g. cluster {leaked.index[0]}")


def similarity_split(
    frame: pd.DataFrame,
    k: int,
    min_shared: float,
    fractions: tuple[float, float, float] = SPLIT_FRACTIONS,
    seed: int = SEED,
) -> pd.DataFrame:
    """``frame`` plus ``cluster`` (k-mer similarity clusters of ``sequence``) and ``split`` (whole clusters drawn
    into train/val/test by ``fractions``), rows sorted by split, label and sequence, checked by ``check_splits``.

    The clustering compares every pair exactly (``method="exact"``; these tables have tens of thousands of
    sequences at most), so single linkage leaves no pair sharing ``min_shared`` of its k-mers across clusters,
    hence across splits: the hold-out is exact by construction.
    """
    # Imported here: clustering is only needed when a table is built, not when a cached one is read.
    from zoo.domains.protein.similarity import cluster_sequences, split_by_cluster

    sequences = frame["sequence"].tolist()
    clusters = np.asarray(cluster_sequences(sequences, k=k, min_shared=min_shared, seed=seed, method="exact"))
    split = np.asarray(split_by_cluster(clusters, fractions=fractions, seed=seed))
    frame = frame.assign(cluster=clusters.astype(np.int64), split=pd.Categorical(split, categories=SPLITS))
    frame = frame.sort_values(["split", "label", "sequence"], kind="stable").reset_index(drop=True)
    frame["split"] = frame["split"].astype(str)
    check_splits(frame)
    return frame


# Localisation (PSORTb) -----------------------------------------------------------------------------------

_PSORTB_HEADER = re.compile(r"(\S+) \[([^\]]+)\]")


def read_psortb(path: str | Path, group: str) -> pd.DataFrame:
    """Records of a PSORTb ``sclblast`` FASTA file: ``id``, ``group``, ``localisations`` (tuple of class
    indices), ``sequence`` (uppercase).

    Headers read ``>ID [Loc1,Loc2] description``; an unknown localisation or a header without one names the record.
    """
    from Bio import SeqIO

    rows = []
    with open(path, encoding="ascii", errors="replace") as handle:
        for record in SeqIO.parse(handle, "fasta"):
            match = _PSORTB_HEADER.match(record.description)
            if match is None:
                raise ValueError(f"{path}: record {record.id!r} has no '[Localisation]' after its id")
            names = match[2].split(",")
            unknown = [n for n in names if n.strip().lower() not in _LOCALISATION_INDEX]
            if unknown:
                raise ValueError(
                    f"{path}: record {record.id!r} has localisation {unknown[0]!r}, not one of {list(LOCALISATIONS)}"
                )
            locs = tuple(sorted({_LOCALISATION_INDEX[n.strip().lower()] for n in names}))
            rows.append((record.id, group, locs, str(record.seq).upper()))
    if not rows:
        raise ValueError(f"{path}: no FASTA records")
    return pd.DataFrame(rows, columns=["id", "group", "localisations", "sequence"])


def parse_localisation(
    paths: Mapping[str, str | Path],
    k: int = LOCALISATION_K,
    min_shared: float = LOCALISATION_MIN_SHARED,
    seed: int = SEED,
) -> pd.DataFrame:
    """One row per distinct sequence with one localisation: ``sequence``, ``label``, ``split``, ``cluster``,
    ``id`` (first record's id) and ``groups`` (the files it occurs in, ``;``-joined).

    ``paths`` maps a group name (``PSORTB_GROUPS``) to its ``sclblast`` file. The three files are one task: they
    share most sequences (cytoplasmic and membrane proteins are listed for every group). A sequence is dropped
    when any record gives it more than one localisation (multi-localised), when its records disagree, or when it
    holds characters that are not residues (a few archaeal records carry a literal ``^M``).
    """
    records = pd.concat([read_psortb(path, group) for group, path in paths.items()], ignore_index=True)
    tokenizer = ProteinTokenizer()
    valid = records["sequence"].map(lambda s: _is_protein(s, tokenizer))
    if not valid.all():
        logger.info("localisation: dropping %d records with non-residue characters", int((~valid).sum()))
    records = records[valid]
    by_sequence = records.groupby("sequence", sort=False)
    labels = by_sequence["localisations"].agg(lambda x: set(x))
    single = labels.map(lambda s: len(s) == 1 and len(next(iter(s))) == 1)
    logger.info(
        "localisation: %d distinct sequences, %d dropped as multi-localised or conflicting",
        len(labels),
        int((~single).sum()),
    )
    keep = labels.index[single.to_numpy()]
    frame = pd.DataFrame(
        {
            "sequence": keep,
            "label": [next(iter(labels[s]))[0] for s in keep],
            "id": by_sequence["id"].first()[keep].to_numpy(),
            "groups": by_sequence["group"].agg(lambda g: ";".join(sorted(set(g))))[keep].to_numpy(),
        }
    )
    frame = similarity_split(frame, k=k, min_shared=min_shared, seed=seed)
    return frame[["sequence", "label", "split", "cluster", "id", "groups"]]


# Antimicrobial peptides (modlAMP) ------------------------------------------------------------------------

#: Class names as the header of ``AMPvsUniProt.csv`` gives them, in label order.
AMP_FILE_CLASSES = ("UniProt", "AMP")


def read_amp_csv(path: str | Path) -> pd.DataFrame:
    """``sequence`` (uppercase), ``label`` (0 UniProt, 1 AMP) of modlAMP's ``AMPvsUniProt.csv``.

    The first line is scikit-learn's dataset header ``n_rows,n_features,class0,class1``; it is checked against
    the rows and ``AMP_FILE_CLASSES``.
    """
    with open(path) as handle:
        header = handle.readline().strip().split(",")
    if len(header) != 4 or not header[0].isdigit() or tuple(header[2:]) != AMP_FILE_CLASSES:
        raise ValueError(
            f"{path}: first line {','.join(header)!r} is not 'N,1,{','.join(AMP_FILE_CLASSES)}' (modlAMP's format)"
        )
    frame = pd.read_csv(path, skiprows=1, header=None, names=["sequence", "label"], skipinitialspace=True)
    if len(frame) != int(header[0]):
        raise ValueError(f"{path}: the header announces {header[0]} rows, the file has {len(frame)}")
    if not frame["label"].isin([0, 1]).all():
        bad = frame.loc[~frame["label"].isin([0, 1]), "label"].iloc[0]
        raise ValueError(f"{path}: label {bad} is not 0 ({AMP_FILE_CLASSES[0]}) or 1 ({AMP_FILE_CLASSES[1]})")
    return frame.assign(sequence=frame["sequence"].str.strip().str.upper(), label=frame["label"].astype(np.int64))


def parse_amp(path: str | Path, k: int = AMP_K, min_shared: float = AMP_MIN_SHARED, seed: int = SEED) -> pd.DataFrame:
    """Distinct peptides of ``AMPvsUniProt.csv``: ``sequence``, ``label`` (1 = AMP), ``split``, ``cluster``.

    Duplicates are merged; a peptide listed with both labels is dropped (it cannot be scored).
    """
    frame = read_amp_csv(path)
    n_labels = frame.groupby("sequence")["label"].transform("nunique")
    logger.info("amp: dropping %d rows of peptides listed with both labels", int((n_labels > 1).sum()))
    frame = frame[n_labels == 1].drop_duplicates("sequence").reset_index(drop=True)
    frame = similarity_split(frame, k=k, min_shared=min_shared, seed=seed)
    return frame[["sequence", "label", "split", "cluster"]]


# Building, caching ---------------------------------------------------------------------------------------


def _is_protein(sequence: str, tokenizer: ProteinTokenizer) -> bool:
    try:
        tokenizer.encode(sequence)
    except ValueError:
        return False
    return True


_BUILDERS: dict[str, Callable[[list[Path]], pd.DataFrame]] = {
    "localisation": lambda paths: parse_localisation(dict(zip(PSORTB_GROUPS, paths))),
    "amp": lambda paths: parse_amp(paths[0]),
}
_SPLIT_PARAMETERS = {"localisation": (LOCALISATION_K, LOCALISATION_MIN_SHARED), "amp": (AMP_K, AMP_MIN_SHARED)}


def _table_key(task: LabelledTask) -> str:
    """Hash of every pin the table is built from: members, split parameters, format."""
    pins = [task.name, str(PARSED_FORMAT), str(SEED), str(SPLIT_FRACTIONS), str(_SPLIT_PARAMETERS.get(task.name))]
    pins += [f"{m.member}={m.sha256}" for m in task.members]
    return hashlib.sha256("\n".join(pins).encode()).hexdigest()[:16]
