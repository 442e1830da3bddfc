"""Check a protein corpus's similarity hold-out: split sizes, clusters, and how close held-out sequences come to
training ones (exact k-mer containment, ``nearest_train_similarity``) on a seeded sample.

    python benchmarks/protein_splits.py --corpus swissprot-435k --sample 1000

The first call for a corpus fetches, parses, clusters and splits it (``load_corpus``; minutes for
``swissprot-435k``), later calls read the parsed cache. Prints one table; writes nothing.
"""

from __future__ import annotations

import argparse

import numpy as np
from rich.console import Console
from rich.table import Table

from zoo.domains.protein.corpus import load_corpus
from zoo.domains.protein.similarity import DEFAULT_MIN_SHARED, SPLITS, nearest_train_similarity


def held_out_similarity(sequences: list[str], split: np.ndarray, sample: int, seed: int) -> np.ndarray:
    """Nearest-training similarity of ``sample`` held-out sequences (all of them if fewer), seeded."""
    held = np.flatnonzero(split != "train")
    chosen = np.sort(np.random.default_rng(seed).choice(held, min(sample, len(held)), replace=False))
    rows = np.flatnonzero(split == "train")
    rows = np.sort(np.concatenate([rows, chosen]))
    nearest = nearest_train_similarity([sequences[i] for i in rows], split[rows])
    return nearest[~np.isnan(nearest)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="uniprot-20k", help="uniprot-20k or swissprot-435k")
    parser.add_argument("--sample", type=int, default=1000, help="held-out sequences to measure exactly")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)
    corpus = load_corpus(args.corpus, cache_dir=args.cache_dir)
    table = Table("split", "sequences", "residues", "mean length", title=f"{args.corpus}: similarity hold-out")
    for name, (n, residues) in corpus.sizes().items():
        table.add_row(name, f"{n:,}", f"{residues:,}", f"{residues / max(n, 1):.0f}")
    console = Console()
    console.print(table)
    similarity = held_out_similarity(corpus.sequences, corpus.split, args.sample, args.seed)
    console.print(
        f"{len(np.unique(corpus.cluster_ids)):,} clusters; nearest training similarity of {len(similarity):,} "
        f"held-out sequences ({' + '.join(SPLITS[1:])}): max {similarity.max():.4f}, median "
        f"{np.median(similarity):.4f}, share >= {DEFAULT_MIN_SHARED}: {(similarity >= DEFAULT_MIN_SHARED).mean():.1%}"
    )


if __name__ == "__main__":
    main()
