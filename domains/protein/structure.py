"""Structure-derived protein tasks from the sidechainnet 1.0.1 wheel (BSD-3): per-residue secondary structure
and SCOPe fold classification.

Sources (members of the pinned wheel, each pinned by sha256):

* ``full_protein_dssp_annotations.json``: 159,026 PDB chains ``{"<PDB>_<model>_<chain>": {"Sequence", "DSSP"}}``
  (82,813 distinct sequences). ``DSSP`` holds one character per residue of ``Sequence``: the 8 DSSP states
  ``H G I E B T S`` and ``L`` for coil (DSSP's blank). The file has no character for residues without
  coordinates: they are ``L`` too (96% of the residues of N-terminal His tags, which are almost never
  resolved, are ``L``), so unobserved residues cannot be told from coil inside a chain. They sit mostly at the
  chain ends, so ``terminal_coil="ignore"`` (the default) labels the leading and trailing ``L`` runs -100
  (no loss, not scored); DSSP's own blank (``" "``, sidechainnet's "no DSSP" character) and ``?`` are
  always -100.
* ``single_domain_dssp_annotations.json``: 93,212 ASTRAL domains ``{"<PDB>_<sid>": {"Sequence", "DSSP",
  "SCCS"}}`` (28,086 distinct sequences); ``SCCS`` is ``class.fold.superfamily.family`` (``a.1.1.0``).
* ``astral_data.txt``: seven SCOPe ``dir.des`` releases (2.07 first, down to 2.01) concatenated; used for the
  names of folds and superfamilies. Its ``px`` lines reclassify a few domains between releases (101 of 80,109
  shared domains change superfamily), so the label is the domain's own ``SCCS`` from the JSON: the one
  ProteinNet assigned with the sequence.

Labels (``Q8_CLASSES`` / ``Q3_CLASSES``; the Q3 reduction is the standard one of DSSP-trained predictors)::

    Q8   H (alpha helix)  G (3-10 helix)  I (pi helix)  E (strand)  B (bridge)  T (turn)  S (bend)  C (coil; file L)
    Q3   H <- H, G, I     E <- E, B       C <- T, S, L

Tables (cached as ``<cache>/parsed/<task>-<key>.csv.gz``, ``key`` hashing the pins and options):

* ``load_secondary_structure()``: one row per distinct sequence: ``id`` (first chain in sorted order holding
  it), ``sequence``, ``dssp`` (the file's string), ``cluster``, ``split``. Identical sequences are merged (the
  first chain's DSSP is kept) and the splits hold out whole clusters of similar sequences
  (``zoo.domains.protein.similarity``), never random chains.
* ``load_scope_fold()``: one row per distinct domain sequence: ``sequence``, ``label`` (index into the folds),
  ``split``, ``fold``, ``superfamily``, ``family``, ``sid``. Remote-homology split as in TAPE: every
  superfamily lies in one split only, and val/test folds are folds seen in training.

Sizes with the defaults (seed 0; measured, asserted by the ``data`` tests)::

    secondary-structure  76,936 distinct chains of >= 40 residues in 21,185 clusters (exact single linkage
                         at 10% shared 5-mers; the largest, 30,939 chains, trains);
                         train 61,548 / val 7,694 / test 7,694 chains,
                         16,414,444 / 2,052,316 / 2,043,206 residues; 460 chains are longer than 1,024
    scope-fold           339 folds with >= 10 training sequences (of 866); train 24,010 / val 1,243 /
                         test 1,124 domains; 618 / 160 / 107 superfamilies; val / test cover 89 / 52 folds
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from zoo.data.artifacts import PyPIArtifact, atomic_file, default_cache_dir
from zoo.domains.genomics.datasets import LabelledTask, PinnedMember, check_no_leak

logger = logging.getLogger(__name__)

#: Bump when a parser or splitter changes, so tables cached by an older one are not reused.
PARSED_FORMAT = 2
SEED = 0
#: Shorter chains (peptide ligands, fragments) are left out of the secondary-structure task: they rarely have
#: structure of their own, and a fragment shares its k-mers with every protein it comes from, so it would join
#: unrelated families into one similarity cluster (with all chains, one cluster took most of the data).
MIN_CHAIN_LENGTH = 40
SPLITS = ("train", "val", "test")
IGNORE_INDEX = -100

SIDECHAINNET = PyPIArtifact(
    "sidechainnet",
    "1.0.1",
    "sidechainnet-1.0.1-py2.py3-none-any.whl",
    sha256="604f57ffb2ae35e293aaf2cdb3e5bbb79907930dddf963da602d4f9445429d78",
)
_RESOURCES = "sidechainnet/resources/"
FULL_DSSP = PinnedMember(
    SIDECHAINNET,
    _RESOURCES + "full_protein_dssp_annotations.json",
    "f742beecbade17273c2cf7cbebc1e9af95685453a1df68fc1e61b1cbda16a7e4",
)
DOMAIN_DSSP = PinnedMember(
    SIDECHAINNET,
    _RESOURCES + "single_domain_dssp_annotations.json",
    "725bcc1ebe8e228bf59481b9705b57e445320eb39491abb047cafd80ffb53085",
)
ASTRAL = PinnedMember(
    SIDECHAINNET, _RESOURCES + "astral_data.txt", "bff4d64e7d68771ffa5ae3f2a29d906549d28d82be06960a5ba3c874c9810fbf"
)

Labels = Literal["q8", "q3"]
TerminalCoil = Literal["ignore", "label"]
Q8_CLASSES = ("H", "G", "I", "E", "B", "T", "S", "C")
Q3_CLASSES = ("H", "E", "C")
#: DSSP character of the file -> Q8 class name.
FILE_TO_Q8 = {"H": "H", "G": "G", "I": "I", "E": "E", "B": "B", "T": "T", "S": "S", "L": "C"}
Q8_TO_Q3 = {"H": "H", "G": "H", "I": "H", "E": "E", "B": "E", "T": "C", "S": "C", "C": "C"}
#: Characters meaning "no secondary structure known here" (sidechainnet's pad / no-DSSP blank, "?").
UNOBSERVED = " ?"
CLASSES: dict[str, tuple[str, ...]] = {"q8": Q8_CLASSES, "q3": Q3_CLASSES}

#: Folds with fewer training sequences than this are dropped from ``scope-fold`` (rows of every split).
SCOPE_MIN_TRAIN = 10
#: Target share of rows (secondary structure: of clusters' sequences; scope-fold: of each fold's sequences,
#: approximate since superfamilies stay whole) in train / val / test.
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)


def _lookup(labels: Labels) -> np.ndarray:
    """Byte -> class index of ``labels``; IGNORE_INDEX for unobserved, -1 for characters that are errors."""
    if labels not in CLASSES:
        raise ValueError(f"labels must be 'q8' or 'q3', got {labels!r}")
    table = np.full(256, -1, dtype=np.int64)
    index = {name: i for i, name in enumerate(CLASSES[labels])}
    for char, q8 in FILE_TO_Q8.items():
        table[ord(char)] = index[q8 if labels == "q8" else Q8_TO_Q3[q8]]
    for char in UNOBSERVED:
        table[ord(char)] = IGNORE_INDEX
    return table


_TABLES = {labels: _lookup(labels) for labels in CLASSES}


def dssp_to_labels(
    dssp: str, labels: Labels = "q3", terminal_coil: TerminalCoil = "ignore", where: str = "DSSP string"
) -> np.ndarray:
    """Class indices ``[L]`` int64 of a DSSP string of the file's alphabet (``HGIEBTSL``; see the module docstring).

    Unobserved residues (``" "``, ``"?"``) are -100; with ``terminal_coil="ignore"`` so are the leading and
    trailing runs of ``L`` (where the residues without coordinates are). Other characters are errors naming
    ``where`` and the position.
    """
    if terminal_coil not in ("ignore", "label"):
        raise ValueError(f"terminal_coil must be 'ignore' or 'label', got {terminal_coil!r}")
    table = _TABLES.get(labels)
    if table is None:
        raise ValueError(f"labels must be 'q8' or 'q3', got {labels!r}")
    try:
        codes = np.frombuffer(dssp.encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError:
        bad = next(i for i, c in enumerate(dssp) if ord(c) > 127)
        raise ValueError(f"{where}: non-ASCII DSSP character {dssp[bad]!r} at position {bad}") from None
    out = table[codes]
    if (out == -1).any():
        bad = int(np.argmax(out == -1))
        raise ValueError(
            f"{where}: DSSP character {dssp[bad]!r} at position {bad} is not one of "
            f"{''.join(FILE_TO_Q8)} (states) or {UNOBSERVED!r} (unobserved)"
        )
    if terminal_coil == "ignore":
        start, end = len(dssp) - len(dssp.lstrip("L")), len(dssp.rstrip("L"))
        out[:start] = IGNORE_INDEX
        out[max(end, start) :] = IGNORE_INDEX
    return out


# Parsing ---------------------------------------------------------------------------------------------------


def read_dssp_json(path: str | Path) -> pd.DataFrame:
    """Records of a sidechainnet DSSP JSON: ``id``, ``sequence``, ``dssp`` (and ``sccs`` when present).

    A record whose DSSP string is not as long as its sequence is an error naming the chain.
    """
    with open(path) as handle:
        data = json.load(handle)
    if not isinstance(data, dict) or not data:
        raise ValueError(f"{path}: expected a non-empty JSON object of chains")
    rows = []
    for key, record in data.items():
        missing = [f for f in ("Sequence", "DSSP") if f not in record]
        if missing:
            raise ValueError(f"{path}: chain {key} has no {', '.join(missing)} (fields: {list(record)})")
        sequence, dssp = record["Sequence"], record["DSSP"]
        if len(sequence) != len(dssp):
            raise ValueError(
                f"{path}: chain {key} has {len(sequence)} residues but a DSSP string of {len(dssp)} characters"
            )
        rows.append((key, sequence, dssp, record.get("SCCS")))
    frame = pd.DataFrame(rows, columns=["id", "sequence", "dssp", "sccs"])
    if frame["sccs"].isna().all():
        frame = frame.drop(columns="sccs")
    return frame


def read_scope_names(path: str | Path) -> dict[str, str]:
    """``sccs -> name`` of every class, fold, superfamily and family in a SCOPe ``dir.des`` file.

    The file may hold several releases one after the other; the first release's name wins.
    """
    frame = pd.read_csv(
        path,
        sep="\t",
        comment="#",
        header=None,
        names=["sunid", "level", "sccs", "sid", "name"],
        quoting=csv.QUOTE_NONE,  # names contain quotes
        dtype=str,
        keep_default_na=False,
    )
    named = frame[frame["level"].isin(["cl", "cf", "sf", "fa"])].drop_duplicates("sccs")
    return dict(zip(named["sccs"], named["name"]))


def split_sccs(sccs: pd.Series) -> pd.DataFrame:
    """``class.fold.superfamily.family`` strings -> columns ``fold`` (``a.1``), ``superfamily`` (``a.1.1``),
    ``family`` (``a.1.1.1``); a string without four dot-separated fields is an error naming it."""
    parts = sccs.str.split(".")
    bad = parts.str.len() != 4
    if bad.any():
        raise ValueError(f"SCCS {sccs[bad].iloc[0]!r} is not class.fold.superfamily.family (e.g. a.1.1.1)")
    return pd.DataFrame(
        {"fold": parts.str[:2].str.join("."), "superfamily": parts.str[:3].str.join("."), "family": sccs},
        index=sccs.index,
    )


def _first_per_sequence(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per distinct sequence: the one with the smallest ``id`` (deterministic, file order aside)."""
    return frame.sort_values("id", kind="stable").drop_duplicates("sequence").reset_index(drop=True)


# Secondary structure ---------------------------------------------------------------------------------------


def parse_secondary_structure(
    path: str | Path, max_chains: int | None = None, seed: int = SEED, min_length: int = 1
) -> pd.DataFrame:
    """The secondary-structure table (module docstring) from ``full_protein_dssp_annotations.json``.

    ``max_chains`` keeps a seeded random subset of that many distinct sequences before clustering (quick runs).
    """
    from zoo.domains.protein.similarity import cluster_sequences, split_by_cluster

    frame = _first_per_sequence(read_dssp_json(path))
    frame = frame[frame["sequence"].str.len() >= min_length].reset_index(drop=True)
    if max_chains is not None:
        if max_chains <= 0:
            raise ValueError(f"max_chains must be positive, got {max_chains}")
        if max_chains < len(frame):
            keep = np.sort(np.random.default_rng(seed).choice(len(frame), max_chains, replace=False))
            frame = frame.iloc[keep].reset_index(drop=True)
    # Exact pairwise comparison (~2 min once for the 77k chains, then cached): the sketch would miss pairs and
    # let similar chains straddle the splits.
    clusters = np.asarray(cluster_sequences(frame["sequence"].tolist(), method="exact"))
    split = np.asarray(split_by_cluster(clusters, fractions=SPLIT_FRACTIONS, seed=seed))
    frame = frame.assign(cluster=clusters, split=split)[["id", "sequence", "dssp", "cluster", "split"]]
    return _finish(frame)


def load_secondary_structure(
    max_chains: int | None = None,
    seed: int = SEED,
    cache_dir: str | Path | None = None,
    mirror: str | Path | None = None,
) -> pd.DataFrame:
    """The secondary-structure table, fetched, parsed, clustered and cached once (see the module docstring)."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = _key("secondary-structure", [FULL_DSSP], max_chains=max_chains, seed=seed)
    return _cached(
        cache / "parsed" / f"secondary-structure-{key}-v{PARSED_FORMAT}.csv.gz",
        lambda: parse_secondary_structure(
            FULL_DSSP.fetch(cache, mirror), max_chains=max_chains, seed=seed, min_length=MIN_CHAIN_LENGTH
        ),
        {"id": str, "sequence": str, "dssp": str, "cluster": "int64", "split": str},
    )


def majority_baselines(
    frame: pd.DataFrame, labels: Labels = "q3", terminal_coil: TerminalCoil = "ignore", test: str = "test"
) -> dict[str, float]:
    """Accuracy on split ``test`` of two floors fitted on ``train``: the majority class, and the most frequent
    class of each residue identity (``per_residue``). Counts labelled residues only."""
    counts = {}
    for split in ("train", test):
        rows = frame[frame["split"] == split]
        if rows.empty:
            raise ValueError(f"majority_baselines: split {split!r} has no rows")
        residues = np.frombuffer("".join(rows["sequence"]).encode("ascii"), dtype=np.uint8)
        y = np.concatenate([dssp_to_labels(d, labels, terminal_coil) for d in rows["dssp"]])
        keep = y != IGNORE_INDEX
        counts[split] = (residues[keep], y[keep])
    n_classes = len(CLASSES[labels])
    train_res, train_y = counts["train"]
    table = np.zeros((256, n_classes), dtype=np.int64)
    np.add.at(table, (train_res, train_y), 1)
    majority = int(table.sum(0).argmax())
    # Residues never seen in training fall back to the global majority.
    per_residue = np.where(table.sum(1) > 0, table.argmax(1), majority)
    test_res, test_y = counts[test]
    return {
        "majority": float((test_y == majority).mean()),
        "per_residue": float((per_residue[test_res] == test_y).mean()),
    }


# SCOPe folds -----------------------------------------------------------------------------------------------


def split_superfamilies(
    frame: pd.DataFrame, fractions: tuple[float, float, float] = SPLIT_FRACTIONS, seed: int = SEED
) -> np.ndarray:
    """A split per row of ``frame`` (columns ``fold``, ``superfamily``) holding out whole superfamilies.

    Per fold, its largest superfamily goes to train (so every held-out fold is seen in training); the others,
    in a seeded order, each go to the split furthest below its target share of the fold's rows. A fold with a
    single superfamily is train only.
    """
    rng = np.random.default_rng(seed)
    target = np.asarray(fractions, dtype=np.float64)
    assign: dict[str, str] = {}
    sizes = frame.groupby(["fold", "superfamily"]).size()
    for fold in sorted(sizes.index.get_level_values(0).unique()):
        members = sizes.loc[fold].sort_index()
        largest = members.idxmax()
        assign[largest] = "train"
        filled = np.array([members[largest], 0, 0], dtype=np.float64)
        total = float(members.sum())
        others = [sf for sf in members.index if sf != largest]
        for sf in rng.permutation(np.array(others, dtype=object)) if others else ():
            choice = int(np.argmax(target - filled / total))
            assign[sf] = SPLITS[choice]
            filled[choice] += members[sf]
    return frame["superfamily"].map(assign).to_numpy()


def parse_scope_fold(
    domains: str | Path, astral: str | Path | None = None, min_train: int = SCOPE_MIN_TRAIN, seed: int = SEED
) -> pd.DataFrame:
    """The scope-fold table (module docstring) from ``single_domain_dssp_annotations.json`` (and the SCOPe names
    of ``astral_data.txt``, as a ``fold_name`` column, when given)."""
    frame = read_dssp_json(domains)
    if "sccs" not in frame.columns:
        raise ValueError(f"{domains}: the records have no SCCS field (is this single_domain_dssp_annotations.json?)")
    frame = frame.assign(sid=frame["id"].str.split("_", n=1).str[-1])
    frame = pd.concat([frame, split_sccs(frame["sccs"])], axis=1)
    # The same sequence classified into two superfamilies cannot be split by superfamily: drop it.
    ambiguous = frame.groupby("sequence")["superfamily"].transform("nunique") > 1
    if ambiguous.any():
        logger.info("scope-fold: dropping %d domains whose sequence has two superfamilies", int(ambiguous.sum()))
    frame = _first_per_sequence(frame[~ambiguous])
    frame = frame.assign(split=split_superfamilies(frame, seed=seed))
    train_counts = frame.loc[frame["split"] == "train", "fold"].value_counts()
    folds = sorted(train_counts.index[train_counts >= min_train])
    frame = frame[frame["fold"].isin(folds)]
    frame = frame.assign(label=frame["fold"].map({f: i for i, f in enumerate(folds)}).astype("int64"))
    columns = ["sequence", "label", "split", "fold", "superfamily", "family", "sid"]
    if astral is not None:
        names = read_scope_names(astral)
        frame = frame.assign(fold_name=frame["fold"].map(names).fillna(""))
        columns.append("fold_name")
    out = _finish(frame[columns])
    out.attrs["classes"] = tuple(folds)
    return out


def check_superfamilies_held_out(frame: pd.DataFrame) -> None:
    """Raise if a superfamily occurs in two splits, or a val/test fold has no training row."""
    per = frame.groupby("superfamily")["split"].nunique()
    if (per > 1).any():
        raise ValueError(f"superfamily {per.index[per > 1][0]} occurs in {int(per.max())} splits")
    seen = set(frame.loc[frame["split"] == "train", "fold"])
    unseen = sorted(set(frame.loc[frame["split"] != "train", "fold"]) - seen)
    if unseen:
        raise ValueError(f"val/test folds {unseen[:5]} have no training rows")


def load_scope_fold(
    min_train: int = SCOPE_MIN_TRAIN,
    seed: int = SEED,
    cache_dir: str | Path | None = None,
    mirror: str | Path | None = None,
) -> pd.DataFrame:
    """The scope-fold table, fetched, parsed and cached once; ``frame.attrs["classes"]`` are the fold SCCS that
    ``label`` indexes (``SCOPE_FOLDS`` with the default options)."""
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = _key("scope-fold", [DOMAIN_DSSP, ASTRAL], min_train=min_train, seed=seed)
    frame = _cached(
        cache / "parsed" / f"scope-fold-{key}-v{PARSED_FORMAT}.csv.gz",
        lambda: parse_scope_fold(DOMAIN_DSSP.fetch(cache, mirror), ASTRAL.fetch(cache, mirror), min_train, seed),
        {"sequence": str, "label": "int64", "split": str, "fold": str, "superfamily": str, "family": str},
    )
    check_superfamilies_held_out(frame)
    classes = tuple(sorted(frame["fold"].unique()))
    if (min_train, seed) == (SCOPE_MIN_TRAIN, SEED) and SCOPE_FOLDS and classes != SCOPE_FOLDS:
        raise ValueError(
            f"scope-fold: the data gives {len(classes)} folds, the pinned SCOPE_FOLDS {len(SCOPE_FOLDS)}: "
            "the parser changed; update SCOPE_FOLDS and bump PARSED_FORMAT"
        )
    frame.attrs["classes"] = classes
    return frame


# Registry (LabelledSequenceDataModule-compatible) ----------------------------------------------------------

#: Fold SCCS of ``scope-fold`` with the default options, in label order (measured from the pinned data).
SCOPE_FOLDS: tuple[str, ...] = tuple(
    (
        "a.1 a.100 a.102 a.11 a.116 a.118 a.119 a.121 a.123 a.126 a.128 a.132 a.137 a.138 a.139 a.140 a.149 a.152 "
        "a.156 a.157 a.16 a.160 a.177 a.2 a.204 a.21 a.211 a.22 a.238 a.24 a.245 a.25 a.250 a.26 a.27 a.28 a.280 a.29 "
        "a.3 a.30 a.35 a.39 a.4 a.40 a.41 a.42 a.43 a.45 a.46 a.47 a.48 a.5 a.53 a.56 a.6 a.60 a.61 a.66 a.69 a.7 "
        "a.73 a.74 a.76 a.77 a.8 a.80 a.83 a.87 a.89 a.9 a.91 a.93 a.96 a.99 b.1 b.103 b.106 b.108 b.11 b.113 b.12 "
        "b.121 b.122 b.130 b.15 b.18 b.181 b.19 b.2 b.21 b.22 b.23 b.24 b.26 b.29 b.3 b.30 b.31 b.33 b.34 b.36 b.37 "
        "b.38 b.4 b.40 b.41 b.42 b.43 b.44 b.45 b.46 b.47 b.49 b.50 b.52 b.55 b.6 b.60 b.61 b.62 b.66 b.67 b.68 b.69 "
        "b.7 b.70 b.71 b.72 b.80 b.81 b.82 b.84 b.85 b.96 b.98 c.1 c.10 c.101 c.108 c.109 c.116 c.120 c.121 c.124 "
        "c.13 c.14 c.15 c.17 c.2 c.23 c.25 c.26 c.27 c.28 c.3 c.30 c.31 c.32 c.33 c.36 c.37 c.41 c.42 c.43 c.44 c.45 "
        "c.46 c.47 c.48 c.49 c.5 c.50 c.51 c.52 c.53 c.55 c.56 c.57 c.58 c.59 c.6 c.60 c.61 c.62 c.65 c.66 c.67 c.68 "
        "c.69 c.71 c.72 c.73 c.78 c.8 c.80 c.81 c.84 c.85 c.91 c.92 c.93 c.94 c.95 c.97 d.101 d.104 d.108 d.109 d.110 "
        "d.111 d.113 d.117 d.122 d.126 d.127 d.128 d.129 d.13 d.130 d.131 d.133 d.134 d.136 d.139 d.14 d.142 d.144 "
        "d.145 d.15 d.153 d.157 d.159 d.16 d.162 d.163 d.166 d.167 d.168 d.169 d.17 d.171 d.175 d.176 d.18 d.185 "
        "d.189 d.19 d.198 d.2 d.20 d.21 d.210 d.211 d.218 d.22 d.223 d.240 d.250 d.26 d.265 d.278 d.288 d.299 d.3 "
        "d.31 d.32 d.33 d.344 d.367 d.37 d.38 d.386 d.387 d.41 d.42 d.44 d.45 d.48 d.50 d.51 d.52 d.54 d.58 d.6 d.65 "
        "d.68 d.74 d.75 d.79 d.80 d.81 d.83 d.86 d.87 d.89 d.9 d.92 d.93 d.95 d.96 d.97 e.19 e.23 e.3 e.5 e.6 e.76 "
        "e.8 f.1 f.10 f.13 f.14 f.17 f.19 f.23 f.4 f.46 f.62 f.8 g.10 g.12 g.14 g.17 g.18 g.24 g.27 g.3 g.32 g.37 "
        "g.38 g.39 g.41 g.44 g.49 g.50 g.52 g.7 g.8 g.97"
    ).split()
)

TASKS: dict[str, LabelledTask] = {
    "scope-fold": LabelledTask(
        name="scope-fold",
        task="classification",
        classes=SCOPE_FOLDS,
        description="ASTRAL domain sequences labelled by SCOPe fold; superfamilies held out (each in one split), "
        f"val/test folds seen in training; folds with >= {SCOPE_MIN_TRAIN} training sequences",
        source="PyPI sidechainnet 1.0.1 wheel, sidechainnet/resources/single_domain_dssp_annotations.json "
        "(+ astral_data.txt for names)",
        license="BSD-3-Clause",
        citation="King & Koes (2021) SidechainNet; Chandonia et al. (2019) SCOPe 2.07; AlQuraishi (2019) ProteinNet",
        members=(DOMAIN_DSSP, ASTRAL),
    ),
}


def load_labelled(name: str, cache_dir: str | Path | None = None, mirror: str | Path | None = None) -> pd.DataFrame:
    """The sequence-level table of a task in ``TASKS``: ``sequence``, ``label``, ``split`` (as
    ``zoo.domains.genomics.datasets.load_labelled``)."""
    if name not in TASKS:
        raise ValueError(f"unknown protein structure task {name!r}; known: {', '.join(sorted(TASKS))}")
    frame = load_scope_fold(min_train=SCOPE_MIN_TRAIN, cache_dir=cache_dir, mirror=mirror)
    return frame[["sequence", "label", "split"]]


# Caching ---------------------------------------------------------------------------------------------------


def _key(name: str, members: list[PinnedMember], **options) -> str:
    pins = [name, str(PARSED_FORMAT), *(f"{m.member}={m.sha256}" for m in members)]
    pins += [f"{k}={v!r}" for k, v in sorted(options.items())]
    return hashlib.sha256("\n".join(pins).encode()).hexdigest()[:16]


def _cached(path: Path, build, dtypes: dict) -> pd.DataFrame:
    if path.is_file():
        try:
            frame = pd.read_csv(path, dtype=dtypes, keep_default_na=False)
            check_no_leak(frame, str(path))
            return frame
        except (OSError, ValueError, EOFError) as error:
            logger.warning("ignoring unreadable table %s (%s); building it again", path, error)
    logger.info("building %s (once)", path.name)
    frame = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as handle:
        # mtime 0: the same table gives the same bytes.
        frame.to_csv(handle, index=False, compression={"method": "gzip", "mtime": 0})
    return frame


def _finish(frame: pd.DataFrame) -> pd.DataFrame:
    """Canonical row order (split, then sequence), leak check, fresh index."""
    frame = frame.assign(split=pd.Categorical(frame["split"], categories=SPLITS))
    frame = frame.sort_values(["split", "sequence"], kind="stable").reset_index(drop=True)
    frame["split"] = frame["split"].astype(str)
    check_no_leak(frame)
    return frame
