"""benchmarks/protein_splits.py: the held-out similarity it prints, on synthetic protein families."""

import numpy as np

from zoo.domains.protein.corpus import Corpus

AA = np.array(list("ACDEFGHIKLMNPQRSTVWY"))


def _families(n=40, members=3, seed=0):
    rng = np.random.default_rng(seed)
    seqs = []
    for _ in range(n):
        ancestor = rng.choice(AA, size=120)
        for _ in range(members):
            child = ancestor.copy()
            hit = rng.random(120) > 0.9
            child[hit] = rng.choice(AA, size=int(hit.sum()))
            seqs.append("".join(child))
    return seqs


def test_held_out_similarity_tells_a_cluster_split_from_a_random_one(load_benchmark, monkeypatch, capsys):
    script = load_benchmark("protein_splits")
    seqs = _families()
    family = np.repeat(np.arange(40), 3)
    by_family = np.where(family < 32, "train", np.where(family < 36, "val", "test"))
    random = np.random.default_rng(1).permutation(by_family)
    assert script.held_out_similarity(seqs, by_family, sample=100, seed=0).max() < 0.1
    leaky = script.held_out_similarity(seqs, random, sample=5, seed=0)
    assert len(leaky) == 5 and leaky.max() > 0.3

    corpus = Corpus("fake", [f"p{i}" for i in range(len(seqs))], seqs, family, by_family)
    monkeypatch.setattr(script, "load_corpus", lambda name, cache_dir=None: corpus)
    script.main(["--corpus", "fake", "--sample", "10"])
    out = capsys.readouterr().out
    assert "96" in out and "40 clusters" in out and "of 10 held-out" in out and "share >= 0.1: 0.0%" in out
