"""The command line's answers to bad input: one line on stderr, exit code 2, no traceback, and
nothing slow (data loading, training) started before the input is checked."""
import json
import os
import stat
import tempfile

import pytest
import torch

from resnet_book import cli, results


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if the command gets as far as loading data or training."""

    def refuse(*a, **k):
        raise AssertionError("bad input must be refused before data is loaded or training starts")

    monkeypatch.setattr(cli, "train", refuse)
    monkeypatch.setattr(cli, "load_cifar10", refuse)
    monkeypatch.setattr("resnet_book.experiments.load_cifar10", refuse)


def one_error_line(capsys, argv) -> str:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("steps", ["0", "-3"])
def test_bench_refuses_a_step_count_that_gives_no_throughput(capsys, no_training, steps):
    line = one_error_line(capsys, ["bench", "--steps", steps, "--data", "/nonexistent"])
    assert "--steps" in line and "positive integer" in line and f"got {steps}" in line


def test_bench_refuses_negative_warmup_and_batch(capsys, no_training):
    assert "--warmup" in one_error_line(capsys, ["bench", "--warmup", "-1"])
    assert "--batch-size" in one_error_line(capsys, ["bench", "--batch-size", "0"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
@pytest.mark.parametrize("command", [["bench"], ["train", "--model", "resnet8"], ["reproduce", "smoke"]])
def test_cuda_without_a_gpu_is_one_clear_line(capsys, no_training, command):
    line = one_error_line(capsys, [*command, "--device", "cuda"])
    assert line == ("error: no CUDA device is available here; use --device cpu or run on a machine with an "
                    "NVIDIA GPU")


def test_unknown_device_names_the_allowed_ones(capsys, no_training):
    assert "allowed: auto, cpu, cuda, cuda:N, mps" in one_error_line(capsys, ["bench", "--device", "tpu0"])


@pytest.mark.parametrize("value", ["-5", "0", "nan", "inf"])
@pytest.mark.parametrize("command", [["train", "--model", "resnet8"], ["reproduce", "smoke"]])
def test_time_limit_must_be_positive(capsys, no_training, tmp_path, command, value):
    line = one_error_line(capsys, [*command, "--time-limit", value, "--results", str(tmp_path)])
    assert "--time-limit: a time limit must be a positive number of seconds" in line


def _can_write(folder) -> bool:
    try:
        fd, probe = tempfile.mkstemp(dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(probe)
    return True


def _read_only_folder(tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    if _can_write(folder):  # root ignores permission bits: use a read-only file system instead
        folder.chmod(0o700)
        if not os.path.isdir("/sys") or _can_write("/sys"):
            pytest.skip("no read-only folder can be made here")
        return "/sys/resnet-book-results"
    return str(folder / "results")


@pytest.mark.parametrize("command", [["train", "--model", "resnet8", "--budget", "smoke"], ["reproduce", "smoke"]])
def test_unwritable_results_are_refused_before_training(capsys, no_training, tmp_path, command):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    line = one_error_line(capsys, [*command, "--results", str(a_file)])
    assert "is a file" in line and str(a_file) in line
    line = one_error_line(capsys, [*command, "--results", str(a_file / "sub")])
    assert "is a file" in line
    line = one_error_line(capsys, [*command, "--results", _read_only_folder(tmp_path)])
    assert "is not writable" in line and "--results" in line
    assert not list(tmp_path.glob("**/.resnet-book-probe-*"))


def test_a_store_that_fails_after_training_keeps_the_run(capsys, tiny_folder, tmp_path, monkeypatch):
    argv = ["train", "--model", "resnet8", "--budget", "smoke", "--data", str(tiny_folder), "--quiet",
            "--results", str(tmp_path / "res"), "--checkpoint", str(tmp_path / "run.pt")]

    def full_disk(*a, **k):
        raise results.ResultsError("cannot write results under the folder: No space left on device")

    with monkeypatch.context() as m:
        m.setattr(results, "save_run", full_disk)
        line = one_error_line(capsys, argv)
    assert "No space left on device" in line
    assert f"the last checkpoint {tmp_path / 'run.pt'} is kept" in line and "--resume" in line
    spare = line.split("written to ")[1].split(":")[0]
    kept = json.loads(open(spare).read())
    assert kept["status"] == "complete" and kept["run_id"] == "resnet8_smoke_seed0"
    # the advice works: --resume finishes from the checkpoint and stores the same run
    assert cli.main(argv + ["--resume"]) == 0
    (stored,) = results.load("train", root=tmp_path / "res").records
    assert stored["final"] == kept["final"] and stored["curves"] == kept["curves"]
    assert not (tmp_path / "run.pt").exists()
