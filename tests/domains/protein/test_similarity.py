"""Similarity hold-out: k-mer clustering on synthetic protein families, cluster-level splits, the exact check."""

import numpy as np
import pytest

from zoo.domains.protein.similarity import (
    cluster_sequences,
    hold_out_strictly,
    kmer_matrix,
    nearest_train_similarity,
    shared_fraction,
    split_by_cluster,
)

AA = np.array(list("ACDEFGHIKLMNPQRSTVWY"))


def _family_corpus(n_families=60, members=4, identity=0.95, seed=0):
    """Random families: each a random ancestor and ``members`` copies with ``1 - identity`` substitutions."""
    rng = np.random.default_rng(seed)
    seqs, family = [], []
    for f in range(n_families):
        ancestor = rng.choice(AA, size=int(rng.integers(60, 200)))
        for _ in range(members):
            child = ancestor.copy()
            hit = rng.random(len(child)) > identity
            child[hit] = rng.choice(AA, size=int(hit.sum()))
            seqs.append("".join(child))
            family.append(f)
    return seqs, np.array(family)


def test_kmer_matrix_counts_distinct_valid_kmers():
    matrix = kmer_matrix(["ACDEFA", "acdef", "ACXDEFGH", "AC"], k=3)
    # ACD CDE DEF EFA; lowercase reads as uppercase; k-mers with X are skipped (DEF EFG FGH); too short: none.
    assert np.diff(matrix.indptr).tolist() == [4, 3, 3, 0]
    assert shared_fraction(matrix, np.array([[0, 1], [0, 2], [1, 3]])).tolist() == [1.0, pytest.approx(1 / 3), 0.0]


@pytest.mark.parametrize("method", ["exact", "sketch"])
def test_families_cluster_together_and_unrelated_sequences_apart(method):
    seqs, family = _family_corpus()
    ids = cluster_sequences(seqs, method=method)
    assert ids[0] == 0 and ids.dtype == np.int64
    # Near-identical members share a cluster; different random families never do.
    for f in range(family.max() + 1):
        assert len(set(ids[family == f].tolist())) == 1, f"family {f} split apart"
    assert len(set(ids.tolist())) == family.max() + 1


def test_identical_sequences_and_fragments_join_their_parent():
    seqs, _ = _family_corpus(n_families=5, members=1)
    ids = cluster_sequences([*seqs, seqs[2], seqs[3][10:50]])
    assert ids[5] == ids[2] and ids[6] == ids[3] and len(set(ids[:5].tolist())) == 5


def test_threshold_decides_what_is_similar():
    rng = np.random.default_rng(1)
    a = rng.choice(AA, size=300)
    b = a.copy()
    hit = rng.random(300) < 0.3  # ~70% identity: about 0.7**5 = 17% of 5-mers survive
    b[hit] = rng.choice(AA, size=int(hit.sum()))
    pair = ["".join(a), "".join(b)]
    shared = shared_fraction(kmer_matrix(pair), np.array([[0, 1]]))[0]
    assert 0.05 < shared < 0.35
    assert cluster_sequences(pair, min_shared=shared - 0.01).tolist() == [0, 0]
    assert cluster_sequences(pair, min_shared=shared + 0.01).tolist() == [0, 1]


def test_split_keeps_clusters_whole_and_no_held_out_sequence_resembles_training():
    seqs, _ = _family_corpus(n_families=100, members=3, identity=0.9)
    ids = cluster_sequences(seqs)
    split = split_by_cluster(ids, (0.8, 0.1, 0.1), seed=3)
    assert {s: int((split == s).sum()) for s in ("train", "val", "test")} == {"train": 240, "val": 30, "test": 30}
    for c in np.unique(ids):
        assert len(set(split[ids == c].tolist())) == 1
    nearest = nearest_train_similarity(seqs, split)
    assert np.isnan(nearest[split == "train"]).all()
    assert np.nanmax(nearest) < 0.1
    # A random split of the same data leaks: held-out members have training siblings.
    leaky = np.random.default_rng(0).permutation(np.array(["train"] * 240 + ["val"] * 30 + ["test"] * 30))
    assert np.nanmax(nearest_train_similarity(seqs, leaky)) > 0.3
    assert (split_by_cluster(ids, (0.8, 0.1, 0.1), seed=3) == split).all()
    assert not (split_by_cluster(ids, (0.8, 0.1, 0.1), seed=4) == split).all()


def test_strict_hold_out_moves_leaking_clusters_into_train_until_none_resembles_training():
    seqs, _ = _family_corpus(n_families=100, members=4, identity=0.75)
    # A two-k-mer sketch misses many family pairs, as the default sketch does on Swiss-Prot's large families.
    ids = cluster_sequences(seqs, method="sketch", sketch_size=2)
    split = split_by_cluster(ids, (0.8, 0.1, 0.1), seed=0)
    assert (nearest_train_similarity(seqs, split) >= 0.1).sum() > 10, "the sketch split leaks"
    strict = hold_out_strictly(kmer_matrix(seqs), ids, split, min_shared=0.1)
    assert np.nanmax(nearest_train_similarity(seqs, strict)) < 0.1
    assert ((strict == split) | (strict == "train")).all(), "held-out rows only ever move into train"
    assert all(len(set(strict[ids == c].tolist())) == 1 for c in np.unique(ids)), "clusters stay whole"
    assert 0 < (strict == "test").sum() < (split == "test").sum()
    # After exact clustering nothing resembles training across splits: a no-op.
    exact = cluster_sequences(seqs, method="exact")
    exact_split = split_by_cluster(exact, (0.8, 0.1, 0.1), seed=0)
    assert (hold_out_strictly(kmer_matrix(seqs), exact, exact_split) == exact_split).all()


def test_a_cluster_too_large_for_a_held_out_split_trains():
    ids = np.array([0] * 50 + list(range(1, 51)))
    split = split_by_cluster(ids, (0.8, 0.1, 0.1))
    assert (split[:50] == "train").all() and (split == "val").sum() == 10 and (split == "test").sum() == 10


def test_bad_split_arguments_are_named():
    with pytest.raises(ValueError, match="summing to 1"):
        split_by_cluster(np.arange(10), (0.5, 0.1, 0.1))
    with pytest.raises(ValueError, match="no cluster fits the test split"):
        split_by_cluster([*np.zeros(10, dtype=int).tolist(), 1], (0.8, 0.1, 0.1))
    with pytest.raises(ValueError, match="min_shared"):
        cluster_sequences(["ACDEFG"], min_shared=0.0)
