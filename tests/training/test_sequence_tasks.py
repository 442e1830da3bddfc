"""Fine-tuning tasks: pooling, reverse-complement inference, end-to-end learning, metrics against scipy."""

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import pearsonr, spearmanr

from zoo.backbone import BackboneConfig
from zoo.domains.genomics.labelled import LabelledSequenceDataModule, collate
from zoo.domains.genomics.tokenizer import DNATokenizer
from zoo.model import ModelConfig
from zoo.training.heads import SequenceHead, fold_strands, hidden_width, pool
from zoo.training.sequence_tasks import (
    SequenceClassificationTask,
    SequenceRegressionTask,
    TokenClassificationTask,
    reverse_complement_padded,
)
from zoo.training.task import CHECKPOINT_KEY

TOKENIZER = DNATokenizer()


# tiny matrices: one intra-op thread (the one_thread fixture of tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_config(**kwargs) -> ModelConfig:
    """One attention layer, width 32: the fastest zoo model on CPU."""
    return ModelConfig(backbone=BackboneConfig(d_model=32, pattern="A"), max_seq_len=128, **kwargs)


def _batch(seqs):
    return collate([{"input_ids": TOKENIZER.encode(s), "label": 0} for s in seqs])


def _rc(seqs):
    return [TOKENIZER.decode(TOKENIZER.reverse_complement(TOKENIZER.encode(s))) for s in seqs]


def test_pool_matches_hand_computation_with_padding():
    hidden = torch.randn(3, 5, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    hidden[~mask] = 1e4  # padding must never leak into any pooling
    lengths = [3, 5, 1]
    expected = {
        "mean": torch.stack([hidden[i, :n].mean(0) for i, n in enumerate(lengths)]),
        "max": torch.stack([hidden[i, :n].max(0).values for i, n in enumerate(lengths)]),
        "last": torch.stack([hidden[i, n - 1] for i, n in enumerate(lengths)]),
        "cls": hidden[:, 0],
    }
    for how, want in expected.items():
        torch.testing.assert_close(pool(hidden, mask, how), want, msg=how)
    with pytest.raises(ValueError, match="'median' is not one of"):
        pool(hidden, mask, "median")
    with pytest.raises(ValueError, match="row 1 of the batch has no unpadded position"):
        pool(hidden, torch.tensor([[1, 0, 0, 0, 0], [0] * 5, [1] * 5], dtype=torch.bool), "mean")


def test_heads_and_widths():
    assert SequenceHead(8, 3)(torch.randn(2, 8)).shape == (2, 3)
    mlp = SequenceHead(8, 3, hidden=16)
    assert mlp(torch.randn(2, 8)).shape == (2, 3) and sum(isinstance(m, torch.nn.Linear) for m in mlp.modules()) == 2
    x = torch.randn(2, 3, 6)
    torch.testing.assert_close(fold_strands(x), (x[..., :3] + x[..., 3:].flip(-1)) / 2)
    task = SequenceClassificationTask(2, config=tiny_config(rc_equivariant=True))
    assert hidden_width(task.model) == 64 and task.head.net[-1].in_features == 32, "strands are folded"


def test_reverse_complement_padded_keeps_padding_on_the_right():
    seqs = ["AACGT", "GGA", "T"]
    batch = _batch(seqs)
    complement = torch.tensor(TOKENIZER._complement)
    rc_ids, _ = reverse_complement_padded(batch["input_ids"], batch["attention_mask"], complement)
    assert torch.equal(rc_ids, _batch(_rc(seqs))["input_ids"])


SEQS = ["ACGTTGCAAGT", "GGGATTACA", "TTTTACGCGCGAT", "CA"]


@pytest.mark.parametrize("task_class", [SequenceClassificationTask, SequenceRegressionTask])
def test_rc_inference_makes_predictions_strand_invariant_exactly(task_class):
    torch.manual_seed(0)
    args = (2,) if task_class is SequenceClassificationTask else ()
    task = task_class(*args, config=tiny_config(), rc_inference=True).eval()
    with torch.no_grad():
        forward, reverse = task.predict_step(_batch(SEQS), 0), task.predict_step(_batch(_rc(SEQS)), 0)
        assert torch.equal(forward, reverse)
        task.rc_inference = False  # one strand alone is not invariant: the check above can fail
        assert not torch.allclose(task.predict_step(_batch(SEQS), 0), task.predict_step(_batch(_rc(SEQS)), 0))


def test_token_rc_inference_aligns_positions():
    torch.manual_seed(0)
    task = TokenClassificationTask(3, config=tiny_config(), rc_inference=True).eval()
    with torch.no_grad():
        forward, reverse = task.predict_step(_batch(SEQS), 0), task.predict_step(_batch(_rc(SEQS)), 0)
    for row, seq in enumerate(SEQS):
        n = len(seq)
        assert torch.equal(forward[row, :n], reverse[row, :n].flip(0)), "base t of x is base n-1-t of rc(x)"


def test_rc_equivariant_model_is_invariant_without_a_second_pass():
    torch.manual_seed(0)
    config = ModelConfig(backbone=BackboneConfig(d_model=16, pattern="A"), max_seq_len=64, rc_equivariant=True)
    task = SequenceClassificationTask(2, config=config, rc_inference=True).eval()
    assert task.rc_inference is False
    seqs = ["ACGTTGCAAGTA", "GGGATTACATTA"]  # equal lengths: no padding that only one strand reads
    with torch.no_grad():
        torch.testing.assert_close(task.predict_step(_batch(seqs), 0), task.predict_step(_batch(_rc(seqs)), 0))


def _rich(base: str, n: int, rng) -> list[str]:
    others = [b for b in "ACGT" if b != base]
    out = []
    for _ in range(n):
        length = int(rng.integers(24, 40))
        out.append("".join(base if rng.random() < 0.6 else rng.choice(others) for _ in range(length)))
    return out


def _trainer(tmp_path, max_steps, **kwargs) -> pl.Trainer:
    return pl.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
        **kwargs,
    )


def test_tiny_model_learns_a_separable_task_and_tests_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    seqs = _rich("A", 80, rng) + _rich("C", 80, rng)
    labels = ["a_rich"] * 80 + ["c_rich"] * 80
    path = tmp_path / "toy.csv"
    pd.DataFrame({"sequence": seqs, "label": labels}).to_csv(path, index=False)
    dm = LabelledSequenceDataModule(path=str(path), batch_size=16, val_fraction=0.2, test_fraction=0.2, seed=1)
    torch.manual_seed(0)
    task = SequenceClassificationTask(2, config=tiny_config(), optimizer=lambda p: torch.optim.AdamW(p, lr=1e-2))
    trainer = _trainer(tmp_path, max_steps=30, check_val_every_n_epoch=5)
    trainer.fit(task, dm)
    assert trainer.callback_metrics["val/accuracy"] > 0.9
    results = trainer.test(task, dm, verbose=False)[0]
    assert {"test/accuracy", "test/auroc", "test/mcc", "test/f1", "test/loss"} <= set(results)
    assert results["test/accuracy"] > 0.9 and results["test/auroc"] > 0.9
    probabilities = torch.cat(trainer.predict(task, dm))
    test = dm.frame[dm.frame.split == "test"]
    assert probabilities.shape == (len(test), 2)
    torch.testing.assert_close(probabilities.sum(-1), torch.ones(len(test)))
    accuracy = (probabilities.argmax(-1).numpy() == test["label"].to_numpy()).mean()
    assert accuracy == pytest.approx(results["test/accuracy"], abs=1e-6)
    checkpoint = torch.load(
        trainer.checkpoint_callback.best_model_path or trainer.checkpoint_callback.last_model_path, weights_only=False
    )
    assert any(k.startswith("head.") for k in checkpoint["state_dict"])
    assert checkpoint[CHECKPOINT_KEY]["task"] == "zoo.training.sequence_tasks.SequenceClassificationTask"


def test_num_classes_must_match_the_data(tmp_path):
    path = tmp_path / "three.csv"
    pd.DataFrame(
        {"sequence": ["ACGT", "AAAA", "CCCC"], "label": ["x", "y", "z"], "split": ["train", "val", "test"]}
    ).to_csv(path, index=False)
    task = SequenceClassificationTask(2, config=tiny_config())
    with pytest.raises(ValueError, match=r"model.num_classes=2 but the data has 3 classes \['x', 'y', 'z'\]"):
        _trainer(tmp_path, max_steps=1).fit(task, LabelledSequenceDataModule(path=str(path)))


def test_regression_metrics_match_scipy_on_the_original_scale(tmp_path):
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGT"), size=int(rng.integers(20, 30)))) for _ in range(60)]
    values = np.array([100.0 + 30.0 * s.count("G") / len(s) for s in seqs]) + rng.normal(0, 1, 60)
    path = tmp_path / "reg.csv"
    pd.DataFrame({"sequence": seqs, "label": values}).to_csv(path, index=False)
    dm = LabelledSequenceDataModule(path=str(path), batch_size=8, seed=2, val_fraction=0.25, test_fraction=0.25)
    torch.manual_seed(0)
    task = SequenceRegressionTask(config=tiny_config())
    trainer = _trainer(tmp_path, max_steps=8, enable_checkpointing=False)
    trainer.fit(task, dm)
    assert task.label_mean.item() == pytest.approx(dm.label_mean)
    assert task.label_std.item() == pytest.approx(dm.label_std)
    assert 95 < dm.label_mean < 120, "targets are on their own scale"
    results = trainer.test(task, dm, verbose=False)[0]
    predictions = torch.cat(trainer.predict(task, dm)).numpy().astype(np.float64)
    labels = dm.frame.loc[dm.frame.split == "test", "label"].to_numpy(np.float64)
    assert results["test/spearman"] == pytest.approx(spearmanr(predictions, labels).statistic, abs=1e-5)
    assert results["test/pearson"] == pytest.approx(pearsonr(predictions, labels).statistic, abs=1e-4)
    assert results["test/mse"] == pytest.approx(np.mean((predictions - labels) ** 2), rel=1e-4)


def test_token_loss_and_metrics_count_labelled_bases_only():
    torch.manual_seed(0)
    task = TokenClassificationTask(3, config=tiny_config(), head_dropout=0.0).eval()
    batch = _batch(SEQS)
    labels = torch.randint(0, 3, batch["input_ids"].shape)
    labels[0, :4] = -100  # unlabelled bases; padding is unlabelled too
    batch["labels"] = labels
    with torch.no_grad():
        logits = task(batch["input_ids"], batch["attention_mask"])
        loss = task.training_step(batch, 0)
        task.validation_step(batch, 0)
    keep = batch["attention_mask"] & (labels != -100)
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits[keep], labels[keep]))
    accuracy = task.val_metrics.compute()["val/accuracy"]
    torch.testing.assert_close(accuracy, (logits[keep].argmax(-1) == labels[keep]).float().mean())
