"""benchmarks/protein.py on tiny synthetic stand-ins: rows, the CSV resume / skip logic, missing weights as rows,
the mean ± std and targets tables, the perplexity and DMS parts, homolog selection. No network; no number of a
real model is asserted (random models stand in for pretrained ones)."""

import math

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

import zoo
from zoo.domains.protein import corpus, datasets, dms, structure
from zoo.domains.protein.tokenizer import STANDARD
from zoo.vocab import PROTEIN_TOKENS

FAMILY = "prot-transformer-small"
MOTIF = "KKLLKK"
HELIX, STRAND = set("AELK"), set("VIY")


def _peptides(seed: int) -> pd.DataFrame:
    """20-residue peptides, class 1 (AMP) holds MOTIF; 48 train, 16 val, 16 test."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, split in enumerate(["train"] * 48 + ["val"] * 16 + ["test"] * 16):
        seq = "".join(rng.choice(list("DEGNPQST"), size=20))
        if i % 2:
            seq = seq[:7] + MOTIF + seq[13:]
        rows.append({"sequence": seq, "label": i % 2, "split": split, "cluster": i})
    return pd.DataFrame(rows)


def _chains(n: int = 40) -> pd.DataFrame:
    """Chains whose DSSP follows the residue: AELK helix, VIY strand, others coil (a rule one residue shows)."""
    rng = np.random.default_rng(1)
    rows = []
    for i in range(n):
        seq = "G" + "".join(rng.choice(list(STANDARD), size=28)) + "G"
        dssp = "".join("H" if aa in HELIX else "E" if aa in STRAND else "L" for aa in seq)
        rows.append({"id": f"1abc_{i}", "sequence": seq, "dssp": dssp, "cluster": i,
                     "split": "train" if i < 28 else "val" if i < 34 else "test"})  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture
def bench(load_benchmark, monkeypatch):
    """The script with toy tables behind the real task names, and ``zoo.load(pretrained=True)`` failing as for
    unpublished weights."""
    monkeypatch.setattr(datasets, "load_labelled", lambda name, cache_dir=None, mirror=None: _peptides(0))
    monkeypatch.setattr(structure, "load_secondary_structure", lambda **kwargs: _chains())
    load = zoo.load

    def load_without_weights(name, pretrained=True, **kwargs):
        if pretrained:
            raise ValueError(f"{name!r} has no published weights yet")
        return load(name, pretrained=False, **kwargs)

    monkeypatch.setattr(zoo, "load", load_without_weights)
    return load_benchmark("protein")


def _args(bench, tmp_path, *extra):
    return bench.parse_args(["--tasks", "secondary-structure-q3,amp", "--families", FAMILY, "--seeds", "0", "1",
                             "--steps", "1", "--batch-size", "8", "--max-length", "32", "--parts", "finetune",
                             "--out", str(tmp_path / "runs.csv"), *extra])  # fmt: skip


def _quiet() -> Console:
    return Console(quiet=True)


def test_finetune_rows_resume_and_render(bench, tmp_path, monkeypatch):
    args = _args(bench, tmp_path)
    frame = bench.run(args, _quiet())
    # 2 tasks x 2 seeds x (pretrained, scratch, baseline)
    assert len(frame) == 12 and frame["key"].is_unique
    missing = frame[frame["init"] == "pretrained"]
    assert (missing["status"] == bench.NO_WEIGHTS).all() and missing["accuracy"].isna().all()
    ok = frame[frame["init"] != "pretrained"]
    assert (ok["status"] == "ok").all()
    assert ok[["accuracy", "balanced_accuracy", "f1"]].stack().between(0, 1).all()
    baselines = ok[ok["init"] == "-"].set_index(["task", "seed"])
    # The baselines learn the planted rules (a residue's own identity; a motif's 3-mers).
    assert (baselines.loc["secondary-structure-q3", "model"] == bench.WINDOW_MODEL).all()
    assert (baselines.loc["secondary-structure-q3", "accuracy"] > 0.95).all()
    assert (baselines.loc["amp", "model"] == bench.KMER_MODEL).all()
    assert (baselines.loc["amp", "accuracy"] > 0.9).all()
    assert baselines.loc["amp", "note"].str.startswith("k=").all()
    # Residues scored: the labelled residues of the 6 test chains (end runs of coil are unlabelled).
    test_chains = _chains().iloc[34:]
    labelled = sum(len(d.strip("L")) for d in test_chains["dssp"])
    assert (ok.loc[ok["task"] == "secondary-structure-q3", "n"] == labelled).all()
    assert (ok.loc[ok["task"] == "amp", "n"] == 16).all()
    on_disk = pd.read_csv(args.out)
    assert sorted(on_disk["key"]) == sorted(frame["key"])

    # Resume: only runs that are not ``ok`` are redone (here the missing weights), nothing else is called.
    calls = []
    for name in ("run_finetune", "run_baseline"):
        real = getattr(bench, name)
        monkeypatch.setattr(bench, name, lambda *a, _real=real, _name=name: calls.append((_name, a[:-1])) or _real(*a))
    assert len(bench.run(args, _quiet())) == 12
    retried = [("run_finetune", (task, FAMILY, True, seed)) for task in ("secondary-structure-q3", "amp")
               for seed in (0, 1)]  # fmt: skip
    assert sorted(calls) == sorted(retried)
    # An interrupted run: a row lost from the CSV is the only one recomputed.
    lost = frame[(frame["model"] == bench.KMER_MODEL) & (frame["seed"].astype(str) == "1")].iloc[0]
    on_disk[on_disk["key"] != lost["key"]].to_csv(args.out, index=False)
    calls.clear()
    bench.run(args, _quiet())
    assert sorted(calls) == sorted([*retried, ("run_baseline", ("amp", 1))])

    # A run that raises becomes an error row and the others go on.
    monkeypatch.setattr(bench, "run_baseline", lambda *a: (_ for _ in ()).throw(RuntimeError("out of memory")))
    monkeypatch.setattr(bench, "run_finetune", lambda task, family, pretrained, seed, args: bench.make_row(
        "finetune", task, family, "pretrained" if pretrained else "scratch", "-", seed, bench.finetune_config(args),
        status=bench.NO_WEIGHTS if pretrained else "ok", accuracy=None if pretrained else 0.5))  # fmt: skip
    forced = bench.run(_args(bench, tmp_path, "--force"), _quiet())
    errors = forced[forced["init"] == "-"]
    assert len(errors) == 4 and errors["status"].str.startswith("error: RuntimeError: out of memory").all()

    # The table: mean ± sample std over the two seeds, computed here from the rows of the first run.
    text = bench.render(frame, args, "python benchmarks/protein.py --quick")
    kmer = frame[(frame["task"] == "amp") & (frame["model"] == bench.KMER_MODEL)]
    expected = f"{kmer['accuracy'].mean():.3f} ± {kmer['accuracy'].std(ddof=1):.3f}"
    line = next(x for x in text.splitlines() if x.startswith(f"| amp | {bench.KMER_MODEL} |"))
    assert f"| 2 | {expected} |" in line and "| ok (k=" in line
    assert f"| amp | {FAMILY} | pretrained | 0 |" in text and bench.NO_WEIGHTS in text
    assert "Command: `python benchmarks/protein.py --quick`" in text and "Machine: " in text
    targets = [x for x in text.splitlines() if x.startswith("| finetune |")]
    assert len(targets) == 4 and all("n/a (no pretrained weights" in x for x in targets)
    assert "error: RuntimeError: out of memory" in bench.render(forced, args, "cmd")

    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n<!-- protein:start -->\nOLD SECTION\n<!-- protein:end -->\n\nkept\n")
    bench.replace_section(results, bench.SECTION, text)
    assert "OLD SECTION" not in results.read_text() and "kept" in results.read_text()


def _families(rng, n_families: int, members: int, length: int) -> list[str]:
    """Sequences in families of close variants (3 point mutations from a random ancestor)."""
    out = []
    for _ in range(n_families):
        ancestor = list(rng.choice(list(STANDARD), size=length))
        for _ in range(members):
            variant = ancestor.copy()
            for i in rng.choice(length, size=3, replace=False):
                variant[i] = rng.choice(list(STANDARD))
            out.append("".join(variant))
    return out


def test_perplexity_and_dms_parts(bench, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    sequences = _families(rng, 24, 3, 40)
    names = [f"p{i}" for i in range(len(sequences))]
    toy = corpus.build_corpus("uniprot-20k", names, sequences, fractions=(0.5, 0.25, 0.25), seed=0)
    monkeypatch.setattr(corpus, "load_corpus", lambda *a, **k: toy)
    wildtype = "".join(rng.choice(list(STANDARD), size=30))
    mutations = pd.DataFrame({"mutation": [f"{wildtype[i]}{i + 1}{aa}" for i in range(0, 30, 3) for aa in "ACD"
                                           if aa != wildtype[i]]})  # fmt: skip
    mutations = mutations.assign(score=rng.normal(size=len(mutations)), site=mutations["mutation"].str[1:-1])
    monkeypatch.setattr(dms, "load_assay", lambda name, **k: dms.Assay(name, wildtype, mutations, "toy", "-"))
    homologs = [wildtype, wildtype[:10] + "W" + wildtype[11:], "".join(rng.choice(list(STANDARD), size=30))]
    monkeypatch.setattr(dms, "load_homologs", lambda name, **k: homologs)
    args = bench.parse_args(["--families", FAMILY, "--parts", "perplexity,dms", "--assays",
                             "ha-doud2016,spike-ba1-cell-entry", "--max-mutations", "12", "--homologs", "2",
                             "--batch-size", "4", "--out", str(tmp_path / "r.csv"), "--write", "none"])  # fmt: skip

    frame = bench.run(args, _quiet())
    model_rows = frame[frame["model"] == FAMILY]
    spike_context = (model_rows["task"] == "spike-ba1-cell-entry") & (model_rows["context"] == "homologs")
    assert set(model_rows.loc[~spike_context, "status"]) == {bench.NO_WEIGHTS}
    assert model_rows.loc[spike_context, "status"].tolist() == ["n/a: no homologs ship with this assay"]
    blosum = frame[frame["model"] == bench.BLOSUM_MODEL]
    assert (blosum["status"] == "ok").all() and blosum["spearman"].between(-1, 1).all() and (blosum["n"] == 12).all()

    # With weights (a random model stands in): every row is scored.
    monkeypatch.setattr(bench, "load_pretrained",
                        lambda family, device="cpu", weights=None: zoo.load(family, pretrained=False))  # fmt: skip
    frame = bench.run(args, _quiet())
    # The unigram floor: the train split's residue + [EOS] frequencies (add-one), on the same scored tokens.
    unigram = frame[frame["model"] == bench.UNIGRAM_MODEL].iloc[0]
    train = [s for s, split in zip(sequences, toy.split) if split == "train"]
    test = [s for s, split in zip(sequences, toy.split) if split == "test"]
    counts = {aa: sum(s.count(aa) for s in train) for aa in STANDARD} | {"[EOS]": len(train)}
    total = sum(counts.values()) + len(PROTEIN_TOKENS)  # add-one over the whole vocabulary
    expected = -sum(math.log((counts[aa] + 1) / total) for s in test for aa in s) - len(test) * math.log(
        (len(train) + 1) / total)
    assert unigram["status"] == "ok" and unigram["tokens"] == sum(len(s) + 1 for s in test)
    assert unigram["nats"] == pytest.approx(expected / unigram["tokens"], rel=1e-9)
    perplexity = frame[(frame["part"] == "perplexity") & (frame["model"] == FAMILY)].set_index("context")
    assert (perplexity["status"] == "ok").all()
    # Only the query's residues + [EOS] are scored, context or not: the same token count both ways.
    test_sequences = [s for s, split in zip(sequences, toy.split) if split == "test"]
    assert (perplexity["tokens"] == sum(len(s) + 1 for s in test_sequences)).all()
    assert perplexity["perplexity"].between(1, 100).all()  # a random model: about the vocabulary size (40)
    assert np.allclose(perplexity["perplexity"].astype(float), np.exp(perplexity["nats"].astype(float)))
    assert np.allclose(perplexity["bits"], perplexity["nats"] / math.log(2))
    assert perplexity.loc["cluster", "note"] == f"{len(test_sequences)} of {len(test_sequences)} queries have homologs"
    ha = frame[(frame["task"] == "ha-doud2016") & (frame["model"] == FAMILY)].set_index("context")
    assert (ha["status"] == "ok").all() and ha["spearman"].between(-1, 1).all() and (ha["n"] == 12).all()
    assert ha.loc["homologs", "note"] == "2 homologs, 60 residues"

    text = bench.render(frame, args, "python benchmarks/protein.py")
    assert "### Held-out perplexity (uniprot-20k" in text and f"| {FAMILY} | " in text
    dms_part = text.split("### DMS zero-shot")[1]
    assert "| ha-doud2016 | ESM-2 650M (published) | 0.507 |" in dms_part
    assert "| ProteinGym average (217 assays) | ESM-2 8M (published) | 0.226 |" in dms_part
    assert "| dms | ha-doud2016 | prot-transformer-small | homologs > no context | " in text
    assert "spike-ba1-cell-entry | prot-transformer-small | homologs > no context" not in text


def test_select_homologs_most_similar_first_without_the_wild_type(bench):
    rng = np.random.default_rng(3)
    wildtype = "".join(rng.choice(list(STANDARD), size=60))
    close = wildtype[:30] + "W" + wildtype[31:]
    farther = "".join("G" if i % 6 == 0 else aa for i, aa in enumerate(wildtype))
    unrelated = "".join(rng.choice(list(STANDARD), size=60))
    pool = [unrelated, wildtype, farther, close, close]
    assert bench.select_homologs(wildtype, pool, 2) == [close, farther]
    assert bench.select_homologs(wildtype, pool, 10) == [close, farther, unrelated]
    assert bench.select_homologs(wildtype, pool, 0) == [] and bench.select_homologs(wildtype, [wildtype], 3) == []
    with pytest.raises(ValueError, match="must be >= 0"):
        bench.select_homologs(wildtype, pool, -1)


def test_quick_preset_and_argument_checks(bench):
    args = bench.parse_args(["--quick"])
    assert args.seeds == [0] and args.steps == bench.QUICK["steps"] and args.write is None
    assert args.tasks == list(bench.TASKS) and args.parts == list(bench.PARTS)
    assert bench.parse_args(["--quick", "--steps", "7"]).steps == 7  # an explicit flag wins
    assert bench.parse_args([]).write == bench.ROOT / "RESULTS.md"
    assert bench.parse_args(["--write", "none"]).write is None
    for bad in (["--parts", "finetune,speed"], ["--tasks", "secondary-structure-q9"], ["--assays", "gfp"],
                ["--steps", "0"]):  # fmt: skip
        with pytest.raises(SystemExit):
            bench.parse_args(bad)


def test_report_only_renders_existing_rows_without_running(bench, tmp_path, monkeypatch):
    out = tmp_path / "runs.csv"
    args = bench.parse_args(["--tasks", "amp", "--families", FAMILY, "--seeds", "0", "--parts", "finetune"])
    row = bench.make_row("finetune", "amp", bench.KMER_MODEL, "-", "-", 0, bench.baseline_config(args, "amp"),
                         accuracy=0.75, balanced_accuracy=0.7, f1=0.72, note="k=2 (val accuracy k1 0.6)")  # fmt: skip
    bench.run_table.write_runs(pd.DataFrame([row]), out)
    monkeypatch.setattr(bench, "run", lambda *a, **k: (_ for _ in ()).throw(AssertionError("nothing may run")))
    results = tmp_path / "RESULTS.md"
    bench.main(["--report-only", "--tasks", "amp", "--families", FAMILY, "--seeds", "0", "--parts", "finetune",
                "--out", str(out), "--write", str(results)])  # fmt: skip
    text = results.read_text()
    assert f"| amp | {bench.KMER_MODEL} | - | 1 | 0.750 | 0.700 | 0.720 | ok (k=2) |" in text
    assert "--report-only" in text
    assert "<!-- protein:start -->" in text
