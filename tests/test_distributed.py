"""torchrun with 2 CPU processes (gloo) trains like one process on the same global batch."""
import os
import subprocess
import sys

import pytest

from resnet_book import results


@pytest.mark.slow
def test_two_process_training_matches_single_process(tiny_folder, tmp_path):
    common = ["-m", "resnet_book", "train", "--model", "resnet8", "--budget", "smoke", "--iterations", "4",
              "--batch-size", "32", "--data", str(tiny_folder), "--quiet", "--device", "cpu", "--precision", "fp32"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, *common, "--results", str(tmp_path / "one")], env=env,
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *common,
                          "--results", str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    (one,) = results.load("train", root=tmp_path / "one").records
    (two,) = results.load("train", root=tmp_path / "two").records
    assert two["provenance"]["world_size"] == 2 and one["provenance"]["world_size"] == 1
    assert len(one["curves"]["train_loss"]) == 1  # the mean loss over the 4 steps
    for a, b in zip(one["curves"]["train_loss"], two["curves"]["train_loss"]):
        assert abs(a - b) < 1e-5, (a, b)
    assert abs(one["final"]["test_loss"] - two["final"]["test_loss"]) < 1e-4
