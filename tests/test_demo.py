"""``zoo demo`` end to end on the real yeast genome, shortened to a few steps and 64 test windows (the full run is
the README's job)."""

import functools
import math

import pandas as pd
import pytest
import torch

import zoo
import zoo.demo
from zoo.cli import main

pytestmark = pytest.mark.data


#: The test chromosome scored on 64 evenly spaced windows, not all 925: the trainer's test pass and the demo's
#: base-by-base scoring each run the model over them, which was most of this module's time.
TEST_WINDOWS = ["--data.init_args.max_test_windows", "64"]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    # Through the CLI as the README runs it; ``zoo demo`` has no flag for the window cap, so it is bound here.
    # 5 steps: the recipe logs the training loss every 5 steps, so metrics.csv still has its train column.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(zoo.demo, "run_demo", functools.partial(zoo.demo.run_demo, overrides=TEST_WINDOWS))
        assert main(["demo", "--out", str(out), "--max-steps", "5"]) == 0
    return out


def test_demo_writes_figure_and_a_reloadable_export(demo_run):
    assert (demo_run / "demo.png").stat().st_size > 10_000
    model = zoo.load(f"local-dir:{demo_run / 'model'}")
    (run,) = demo_run.glob("lightning_logs/version_*")
    trained = torch.load(run / "checkpoints" / "final.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, trained[f"model.{name}"]), name


def test_demo_card_quotes_the_logged_test_metrics(demo_run):
    (run,) = demo_run.glob("lightning_logs/version_*")
    metrics = pd.read_csv(run / "metrics.csv")
    bits = metrics["test/bits_per_token"].dropna().iloc[-1]
    card = (demo_run / "model" / "README.md").read_text()
    assert f"| bits_per_token | {bits:.4f} |" in card
    assert card.startswith("---\n") and "library_name: seqzoo" in card


def test_demo_scores_every_predictor_on_the_same_test_bases(demo_run):
    scores = pd.read_csv(demo_run / "scores.csv", index_col=0)
    markov = [f"Markov order {k}" for k in (2, 4, 6, 8)]
    assert list(scores.index) == ["uniform (no model)", *markov, "hyenadna-tiny (trained)"]
    assert scores.loc["uniform (no model)", "all"] == 2.0
    # Real yeast DNA is compressible by k-mer statistics: every Markov baseline beats 2 bits per base.
    assert (scores.loc[scores.index.str.startswith("Markov"), "all"] < 2.0).all()
    assert math.isfinite(scores.loc["hyenadna-tiny (trained)", "all"])
    assert {"all", "CDS"} <= set(scores.columns)
    # The base-by-base scoring reproduces the trainer's own test metric on the same windows.
    (run,) = demo_run.glob("lightning_logs/version_*")
    logged = pd.read_csv(run / "metrics.csv")["test/bits_per_token"].dropna().iloc[-1]
    assert scores.loc["hyenadna-tiny (trained)", "all"] == pytest.approx(logged, abs=1e-3)
