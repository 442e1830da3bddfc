"""A killed run resumes exactly; 2-process DDP on CPU trains like 1 process with the same global batch.

Each run is a real ``zoo fit`` subprocess (the killed one gets SIGKILL mid-epoch). The genome is a small
synthetic FASTA: these tests check training mechanics, not model quality.
"""

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.dist

CHROMOSOMES = ("c0", "c1", "c2", "c3")


@pytest.fixture(scope="module")
def fasta(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("genome") / "toy.fa"
    path.write_text("".join(f">{name}\n{''.join(rng.choice(list('ACGT'), 20_000))}\n" for name in CHROMOSOMES))
    return path


def _command(fasta: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "zoo.cli", "fit",
        "--config", "recipe://debug/genomics-causal",
        "--data.init_args.genome", "null",
        "--data.init_args.fasta", str(fasta),
        "--data.init_args.val_chromosomes", "[c2]",
        "--data.init_args.test_chromosomes", "[c3]",
        "--trainer.logger.init_args.save_dir", str(out),
        *extra,
    ]  # fmt: skip


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def _last(out: Path) -> Path:
    (path,) = out.glob("lightning_logs/version_*/checkpoints/last.ckpt")
    return path


def _weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


def _train_losses(out: Path) -> dict[int, float]:
    import pandas as pd

    (metrics,) = out.glob("lightning_logs/version_*/metrics.csv")
    table = pd.read_csv(metrics).dropna(subset=["train/loss_step"])
    return dict(zip(table["step"].astype(int), table["train/loss_step"]))


#: Batches per training epoch of the resume test (batch size 4): short epochs, so that a short run still
#: crosses two epoch boundaries after the kill.
BATCHES_PER_EPOCH = 10


def test_killed_run_resumes_to_the_same_weights(fasta, tmp_path):
    steps = "22"  # the runs cross two epoch boundaries (steps 10 and 20)
    every_step = [
        "--checkpoint.every_n_train_steps", "1",
        "--data.init_args.samples_per_epoch", str(4 * BATCHES_PER_EPOCH),
    ]  # fmt: skip
    reference = tmp_path / "reference"
    _run(_command(fasta, reference, "--trainer.max_steps", steps, *every_step))

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        _command(fasta, killed, "--trainer.max_steps", "100000", *every_step),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    killed_at = None
    deadline = time.monotonic() + 240
    try:
        while killed_at is None and time.monotonic() < deadline:
            time.sleep(0.05)
            found = list(killed.glob("lightning_logs/version_*/checkpoints/last.ckpt"))
            if found:
                step = torch.load(found[0], map_location="cpu", weights_only=True)["global_step"]
                if step >= 5:
                    process.send_signal(signal.SIGKILL)
                    process.wait()
                    killed_at = step
    finally:
        if process.poll() is None:
            process.kill()
    assert killed_at is not None, "the run never wrote a checkpoint past step 5"
    last_step = torch.load(_last(killed), map_location="cpu", weights_only=True)["global_step"]
    assert 5 <= last_step < int(steps), f"killed at step {last_step}: too late to test resuming"
    assert last_step % BATCHES_PER_EPOCH != 0 or last_step == BATCHES_PER_EPOCH, "expected a mid-epoch kill"

    resumed = tmp_path / "resumed"
    _run(_command(fasta, resumed, "--trainer.max_steps", steps, *every_step, "--ckpt_path", str(_last(killed))))

    final, expected = _weights(_last(resumed)), _weights(_last(reference))
    assert final.keys() == expected.keys()
    for name in expected:
        assert torch.equal(final[name], expected[name]), f"{name} differs after resuming"
    # The resumed run's loss curve continues the uninterrupted one, step for step.
    before, after = _train_losses(reference), _train_losses(resumed)
    assert min(after) > last_step - 1 and max(after) == max(before)
    for step, loss in after.items():
        assert loss == pytest.approx(before[step], rel=1e-6), f"loss at step {step} differs"


@pytest.fixture(scope="module")
def single_process_run(fasta, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single")
    _run(_command(fasta, out, *SHORT, "--data.init_args.batch_size", "4"))
    return out


SHORT = ["--trainer.max_steps", "6", "--trainer.accelerator", "cpu"]
STRATEGIES = {
    "ddp": ["--trainer.strategy", "ddp"],
    # One checkpoint file (not a distributed-checkpoint folder) so the weights can be compared directly.
    "fsdp2": [
        "--trainer.strategy", "zoo.training.strategies.FSDP2Strategy",
        "--trainer.strategy.save_distributed_checkpoint", "false",
    ],
}  # fmt: skip


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_two_processes_train_like_one_with_the_same_global_batch(strategy, fasta, single_process_run, tmp_path):
    _run(
        _command(
            fasta, tmp_path, *SHORT, *STRATEGIES[strategy], "--trainer.devices", "2", "--data.init_args.batch_size", "2"
        )
    )
    one, two = _weights(_last(single_process_run)), _weights(_last(tmp_path))
    assert one.keys() == two.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-5, msg=f"{name} differs under {strategy}")
    for out in (single_process_run, tmp_path):
        assert torch.load(_last(out), map_location="cpu", weights_only=True)["global_step"] == 6
