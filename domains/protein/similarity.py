"""Hold-out by sequence similarity: k-mer clustering of proteins and cluster-level train / val / test splits.

A random split of a protein corpus leaks: close homologs of test proteins sit in the training set, so test
perplexity measures recall, not generalisation. Here sequences are clustered by shared k-mers (single linkage)
and whole clusters go to one split.

Similarity of two sequences ``a``, ``b`` (``a`` the one with fewer distinct k-mers)::

    shared(a, b) = |kmers(a) & kmers(b)| / |kmers(a)|        in [0, 1]

the fraction of the shorter sequence's distinct k-mers (of the 20 standard residues; k-mers with X B Z U O
or other letters are skipped) found in the other. Containment rather than Jaccard, so that a fragment of a
training protein counts as similar to it. Relation to mmseqs2 identity clustering (approximate): if two
sequences of the same length differ by scattered substitutions at identity ``p``, a k-mer survives with
probability ``p**k``, so ``min_shared = p**k``; with ``k = 5``: 0.10 ~ 63% identity, 0.2 ~ 72%, 0.33 ~ 80%,
0.59 ~ 90%. Indels and clustered substitutions preserve more k-mers than that, so in practice the threshold
sits somewhat below the stated identity; k-mers cannot see the 30% identity that alignment-based clustering
reaches. mmseqs2 itself is a C++ binary (not on PyPI), hence this approximation.

``method="sketch"`` follows mmseqs2's *linclust* idea, which keeps it linear in the corpus size (never N x N):

1. every sequence selects its ``sketch_size`` k-mers of smallest hash (seeded);
2. sequences that selected the same k-mer are candidate pairs with that group's longest member;
3. each candidate pair's exact ``shared`` is computed from a sparse (sequence x k-mer) matrix and pairs with
   ``shared >= min_shared`` are edges; clusters are the connected components (``scipy.sparse.csgraph``).

Step 2 misses pairs that share few k-mers (short sequences, pairs near the threshold): on the 20k UniProt
sequences of ``uniprot-20k`` it finds 8,688 clusters where the exact single linkage has 6,797. So
``method="auto"`` compares all pairs exactly (step 2 replaced by a chunked sparse product, cost ~N**2 through
chance matches) up to ``EXACT_LIMIT`` sequences and uses the sketch beyond; ``nearest_train_similarity``
measures any split exactly. On Swiss-Prot (435k sequences, large families) the sketch leaves most test
sequences with a training neighbour above the threshold, so ``hold_out_strictly`` then moves every held-out
cluster that resembles training into train, measured exactly (``zoo.domains.protein.corpus`` gives the numbers).
Why not ``datasketch``'s MinHash LSH: it estimates Jaccard (not containment) with one Python object per
sequence; numpy over the whole corpus at once verifies pairs exactly, with no Python loop per sequence.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

SPLITS = ("train", "val", "test")
#: Default k-mer length: 20**5 = 3.2M possible 5-mers, so unrelated proteins share almost none.
DEFAULT_K = 5
#: Default ``min_shared``: about 63% identity for k = 5 (see the module docstring).
DEFAULT_MIN_SHARED = 0.1

_STANDARD = "ACDEFGHIKLMNPQRSTVWY"
_INVALID = 31
_CODE = np.full(256, _INVALID, dtype=np.int64)
for _i, _aa in enumerate(_STANDARD):
    _CODE[ord(_aa)] = _CODE[ord(_aa.lower())] = _i
#: Residues per chunk of the k-mer extraction: bounds its peak memory (a few int64 arrays of this size).
_CHUNK_RESIDUES = 4_000_000
_PAIR_CHUNK = 200_000


def kmer_matrix(seqs: Sequence[str], k: int = DEFAULT_K) -> sp.csr_matrix:
    """Binary sparse matrix ``[N, K]``: entry ``(i, j)`` is 1 if sequence ``i`` holds distinct k-mer ``j``.

    Columns are the k-mers present in ``seqs`` (compacted, in sorted k-mer code order). Row sums are the
    numbers of distinct valid k-mers (0 for a sequence shorter than ``k``).
    """
    if not 1 <= k <= 12:
        raise ValueError(f"k must lie in [1, 12] (5 bits per residue in an int64), got {k}")
    keys, start = [], 0
    while start < len(seqs):
        stop, residues = start, 0
        while stop < len(seqs) and (residues < _CHUNK_RESIDUES or stop == start):
            residues += len(seqs[stop]) + 1
            stop += 1
        keys.append(_row_kmers(seqs[start:stop], k, start))
        start = stop
    key = np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)
    rows, codes = key >> (5 * k), key & ((1 << (5 * k)) - 1)
    if 5 * k <= 26:
        # A presence table over all 2**(5k) codes is cheaper than sorting the k-mers.
        present = np.zeros(1 << (5 * k), dtype=bool)
        present[codes] = True
        n_columns, cols = int(present.sum()), (np.cumsum(present) - 1)[codes]
    else:
        columns, cols = _unique_inverse(codes)
        n_columns = len(columns)
    data = np.ones(len(key), dtype=np.uint8)
    # Keys are sorted by (row, code), so rows come out grouped: build the CSR arrays directly.
    indptr = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=len(seqs)), out=indptr[1:])
    return sp.csr_matrix((data, cols.astype(np.int64), indptr), shape=(len(seqs), max(n_columns, 1)))


def _row_kmers(seqs: Sequence[str], k: int, first_row: int) -> np.ndarray:
    """Sorted unique ``row << 5k | code`` of the valid k-mers of ``seqs`` (rows counted from ``first_row``)."""
    # One separator (an invalid residue) after each sequence, so no k-mer spans two sequences.
    text = "\x00".join(seqs) + "\x00"
    values = _CODE[np.frombuffer(text.encode("latin-1", errors="replace"), dtype=np.uint8)]
    n = len(values) - k + 1
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    codes = np.zeros(n, dtype=np.int64)
    valid = np.ones(n, dtype=bool)
    for j in range(k):
        part = values[j : j + n]
        codes = (codes << 5) | part
        valid &= part != _INVALID
    lengths = np.fromiter((len(s) + 1 for s in seqs), dtype=np.int64, count=len(seqs))
    rows = np.repeat(np.arange(first_row, first_row + len(seqs), dtype=np.int64), lengths)[:n]
    return _unique((rows[valid] << (5 * k)) | codes[valid])


# Sort-based unique: numpy 2's default hash-based np.unique is several times slower on these int64 arrays.
def _unique(values: np.ndarray) -> np.ndarray:
    values = np.sort(values)
    return values[np.r_[True, values[1:] != values[:-1]]] if len(values) else values


def _unique_inverse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    new = np.r_[True, ordered[1:] != ordered[:-1]] if len(values) else np.zeros(0, dtype=bool)
    inverse = np.empty(len(values), dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return ordered[new], inverse


def _hash(values: np.ndarray, seed: int) -> np.ndarray:
    """A seeded 64-bit mix (splitmix64's finaliser) of non-negative int64 values, as uint64."""
    with np.errstate(over="ignore"):
        x = values.astype(np.uint64) + np.uint64((0x9E3779B97F4A7C15 * (seed + 1)) % 2**64)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def candidate_pairs(matrix: sp.csr_matrix, sketch_size: int = 20, seed: int = 0) -> np.ndarray:
    """``[P, 2]`` int64 pairs ``(center, member)`` of sequences that selected a common minimum-hash k-mer."""
    n_rows = matrix.shape[0]
    counts = np.diff(matrix.indptr)
    rows = np.repeat(np.arange(n_rows, dtype=np.int64), counts)
    # Sort each row's k-mers by hash (rows stay grouped: the row is the high half of the key).
    order = np.argsort((rows.astype(np.uint64) << np.uint64(32)) | (_hash(matrix.indices, seed) >> np.uint64(32)))
    rank = np.arange(len(order)) - np.repeat(matrix.indptr[:-1], counts)
    chosen = order[rank < sketch_size]
    kmer, member = matrix.indices[chosen], rows[chosen]
    # Group by k-mer; in each group the longest sequence (most k-mers; then the lowest index) is the center.
    by_kmer = np.lexsort((member, -counts[member], kmer))
    kmer, member = kmer[by_kmer], member[by_kmer]
    first = np.r_[True, kmer[1:] != kmer[:-1]]
    center = member[np.flatnonzero(first)[np.cumsum(first) - 1]]
    keep = center != member
    packed = _unique(center[keep] * n_rows + member[keep])
    return np.stack([packed // n_rows, packed % n_rows], axis=1)


def shared_fraction(matrix: sp.csr_matrix, pairs: np.ndarray) -> np.ndarray:
    """``shared`` (module docstring) of each row pair ``[P, 2]`` of a ``kmer_matrix``; 0 where one has no k-mer."""
    counts = np.diff(matrix.indptr)
    out = np.zeros(len(pairs), dtype=np.float64)
    for lo in range(0, len(pairs), _PAIR_CHUNK):
        a, b = pairs[lo : lo + _PAIR_CHUNK, 0], pairs[lo : lo + _PAIR_CHUNK, 1]
        common = np.asarray(matrix[a].multiply(matrix[b]).sum(axis=1)).ravel()
        smaller = np.minimum(counts[a], counts[b])
        out[lo : lo + len(a)] = np.divide(common, smaller, out=np.zeros(len(a)), where=smaller > 0)
    return out


Method = Literal["auto", "exact", "sketch"]
#: ``method="auto"`` compares all pairs up to this many sequences (about 20 s for 20k UniProt sequences).
EXACT_LIMIT = 50_000


def cluster_sequences(
    seqs: Sequence[str],
    k: int = DEFAULT_K,
    min_shared: float = DEFAULT_MIN_SHARED,
    seed: int = 0,
    method: Method = "auto",
    sketch_size: int = 20,
    matrix: sp.csr_matrix | None = None,
) -> np.ndarray:
    """Cluster id ``[N]`` int64 per sequence: single linkage over pairs with ``shared >= min_shared``.

    ``method="exact"`` finds every such pair (a chunked sparse product of the k-mer matrix with itself: cost
    grows as N**2 through chance k-mer matches); ``"sketch"`` finds candidates as mmseqs2's linclust does
    (linear; misses pairs that share few k-mers, so held-out sequences may resemble training ones a little
    above the threshold); ``"auto"`` is exact up to ``EXACT_LIMIT`` sequences. ``seed`` picks the sketch's hash.
    ``matrix``: ``kmer_matrix(seqs, k)`` when the caller has it already (minutes for Swiss-Prot).
    Ids are numbered in order of first appearance (sequence 0 is in cluster 0).
    """
    if not 0.0 < min_shared <= 1.0:
        raise ValueError(f"min_shared must lie in (0, 1], got {min_shared}")
    if method not in ("auto", "exact", "sketch"):
        raise ValueError(f"method must be 'auto', 'exact' or 'sketch', got {method!r}")
    if sketch_size < 1:
        raise ValueError(f"sketch_size must be at least 1, got {sketch_size}")
    n = len(seqs)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    matrix = kmer_matrix(seqs, k) if matrix is None else matrix
    if method == "exact" or (method == "auto" and n <= EXACT_LIMIT):
        edges = _exact_pairs(matrix, min_shared)
    else:
        pairs = candidate_pairs(matrix, sketch_size, seed)
        edges = pairs[shared_fraction(matrix, pairs) >= min_shared]
    return _components(n, edges)


def _exact_pairs(matrix: sp.csr_matrix, min_shared: float, rows_per_chunk: int = 2048) -> np.ndarray:
    """``[P, 2]`` every pair ``i < j`` with ``shared >= min_shared``."""
    counts = np.diff(matrix.indptr)
    whole_t = matrix.T.tocsr().astype(np.int32)
    edges = []
    for lo in range(0, matrix.shape[0], rows_per_chunk):
        product = matrix[lo : lo + rows_per_chunk].astype(np.int32) @ whole_t
        # Straight from the CSR arrays, dropping pairs b <= a before any widening copy: the product holds
        # millions of chance matches per chunk, so each full-size temporary costs.
        a = np.repeat(np.arange(lo, lo + product.shape[0], dtype=np.int64), np.diff(product.indptr))
        keep = product.indices > a
        a, b, common = a[keep], product.indices[keep].astype(np.int64), product.data[keep]
        keep = common >= min_shared * np.minimum(counts[a], counts[b])
        edges.append(np.stack([a[keep], b[keep]], axis=1))
    return np.concatenate(edges)


def _components(n: int, edges: np.ndarray) -> np.ndarray:
    graph = sp.coo_matrix((np.ones(len(edges), dtype=np.int8), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return _renumber(labels)


def _renumber(labels: np.ndarray) -> np.ndarray:
    """Cluster ids in order of first appearance: ``[7, 7, 2, 7]`` -> ``[0, 0, 1, 0]``."""
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[inverse]


def split_by_cluster(
    cluster_ids: np.ndarray, fractions: tuple[float, float, float] = (0.9, 0.05, 0.05), seed: int = 0
) -> np.ndarray:
    """``"train"`` / ``"val"`` / ``"test"`` per sequence ``[N]``; every cluster lies in one split.

    Clusters are visited in a seeded random order; one goes to val (then test) while it fits that split's
    target of ``fraction * N`` sequences, else to train. A cluster larger than a held-out target therefore
    always trains, and the held-out splits are filled with whole clusters up to their targets.
    """
    cluster_ids = np.asarray(cluster_ids)
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be three non-negative numbers (train, val, test) summing to 1: {fractions}")
    clusters, inverse, sizes = np.unique(cluster_ids, return_inverse=True, return_counts=True)
    n = len(cluster_ids)
    targets = [round(f * n) for f in fractions[1:]]
    filled = [0, 0]
    assignment = np.zeros(len(clusters), dtype=np.int64)  # 0 train, 1 val, 2 test
    for c in np.random.default_rng(seed).permutation(len(clusters)):
        for s in (0, 1):
            if filled[s] + sizes[c] <= targets[s]:
                filled[s] += sizes[c]
                assignment[c] = s + 1
                break
        if filled == targets:
            break
    for s, name in ((0, "val"), (1, "test")):
        if targets[s] > 0 and filled[s] == 0:
            raise ValueError(
                f"no cluster fits the {name} split ({targets[s]} of {n} sequences): raise its fraction or min_shared"
            )
    return np.array(SPLITS, dtype=object)[assignment[inverse]].astype(str)


def nearest_train_similarity(
    seqs: Sequence[str], split: np.ndarray, k: int = DEFAULT_K, rows_per_chunk: int = 2048
) -> np.ndarray:
    """Exact ``max shared(s, t)`` over training sequences ``t``, for every held-out sequence ``s`` ``[N]`` float
    (NaN for training rows, 0 where nothing is shared). A split is sound at ``min_shared`` if the max is below it.

    Cost is the sparse product held-out x train (chunked over held-out rows), not N x N dense memory.
    """
    matrix = kmer_matrix(seqs, k)
    split = np.asarray(split)
    held = np.flatnonzero(split != "train")
    best = np.full(len(split), np.nan)
    best[held] = _best_shared(matrix, held, np.flatnonzero(split == "train"), rows_per_chunk)
    return best


def _best_shared(matrix: sp.csr_matrix, rows: np.ndarray, against: np.ndarray, rows_per_chunk: int) -> np.ndarray:
    """``[len(rows)]``: each row's exact max ``shared`` with any sequence of ``against`` (0 if none shared)."""
    counts = np.diff(matrix.indptr)
    best = np.zeros(len(rows))
    if len(rows) == 0 or len(against) == 0:
        return best
    against_t = matrix[against].T.tocsr().astype(np.int32)
    for lo in range(0, len(rows), rows_per_chunk):
        chunk = rows[lo : lo + rows_per_chunk]
        product = (matrix[chunk].astype(np.int32) @ against_t).tocoo()
        if product.nnz == 0:
            continue
        smaller = np.minimum(counts[chunk[product.row]], counts[against[product.col]])
        sim = product.data / np.maximum(smaller, 1)
        # Best per row: sort by (row, similarity) and keep each row's last entry.
        order = np.lexsort((sim, product.row))
        last = np.r_[product.row[order][1:] != product.row[order][:-1], True]
        top = order[last]
        best[lo + product.row[top]] = sim[top]
    return best


def hold_out_strictly(
    matrix: sp.csr_matrix,
    cluster_ids: np.ndarray,
    split: np.ndarray,
    min_shared: float = DEFAULT_MIN_SHARED,
    rows_per_chunk: int = 2048,
) -> np.ndarray:
    """``split`` with every held-out cluster that resembles training moved into train, until none does.

    The sketch clustering misses pairs, so a cluster-level split of a large corpus can hold out sequences with
    close training relatives (on Swiss-Prot, most of them). Each round measures the held-out rows exactly
    against the rows that joined train in the previous round (all of train in the first) and moves every
    cluster with a member at ``shared >= min_shared`` to train; it ends when a round moves nothing, so
    afterwards ``nearest_train_similarity`` is below ``min_shared`` for every held-out sequence. Clusters
    stay whole; held-out splits only shrink. Cost: the sparse product held-out x train, once, plus smaller
    products for the moved rows.
    """
    split = np.asarray(split).copy()
    cluster_ids = np.asarray(cluster_ids)
    against = np.flatnonzero(split == "train")
    while True:
        held = np.flatnonzero(split != "train")
        leaked = held[_best_shared(matrix, held, against, rows_per_chunk) >= min_shared]
        if len(leaked) == 0:
            return split
        against = held[np.isin(cluster_ids[held], np.unique(cluster_ids[leaked]))]
        split[against] = "train"
