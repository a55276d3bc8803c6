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


# --- issue 24's table: each bad input refused up front, validated before anything else ---------

@pytest.mark.parametrize("batch", ["100000", "60000", "50001"])
def test_bench_refuses_a_batch_larger_than_the_training_set(capsys, no_training, batch):
    line = one_error_line(capsys, ["bench", "--batch-size", batch])
    assert f"--batch-size {int(batch):,} is larger than CIFAR-10's training set (50,000 images)" in line
    assert "allowed: 1 to 50,000" in line


@pytest.mark.parametrize("command", [["bench"], ["train", "--model", "resnet20", "--budget", "paper"]])
def test_a_batch_that_cannot_fit_in_memory_is_refused(capsys, no_training, monkeypatch, tmp_path, command):
    monkeypatch.setattr(cli, "_available_memory", lambda dev: 2**30)  # 1 GiB free
    line = one_error_line(capsys, [*command, "--batch-size", "4096", "--device", "cpu", "--results", str(tmp_path)]
                          if command[0] == "train" else [*command, "--batch-size", "4096", "--device", "cpu"])
    assert "--batch-size 4,096 does not fit: resnet20's activations need about" in line
    assert "cpu has 1.0 GiB free; allowed here: up to about 4" in line  # 2.2 MiB an image: about 460


@pytest.mark.parametrize("batch, budget, images", [("100000", "smoke", 320), ("321", "smoke", 320), ("5001", "cpu", 5000)])
def test_train_refuses_a_batch_larger_than_the_budgets_training_set(capsys, no_training, tmp_path, batch, budget, images):
    line = one_error_line(capsys, ["train", "--model", "resnet8", "--budget", budget, "--batch-size", batch,
                                   "--results", str(tmp_path)])
    assert (f"--batch-size {int(batch):,} is larger than the {budget!r} budget's training set ({images:,} images); "
            f"allowed: 1 to {images:,}") in line


def test_train_refuses_an_unwritable_checkpoint_before_training(capsys, no_training, tmp_path):
    base = ["train", "--model", "resnet8", "--budget", "smoke", "--results", str(tmp_path / "res")]
    line = one_error_line(capsys, [*base, "--checkpoint", "/proc/x.pt"])
    assert line.startswith("error: --checkpoint /proc/x.pt: checkpoint folder /proc is not writable")
    line = one_error_line(capsys, [*base, "--checkpoint", str(tmp_path)])
    assert f"--checkpoint {tmp_path} is a folder; pass a file name" in line
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert "is a file" in one_error_line(capsys, [*base, "--checkpoint", str(a_file / "run.pt")])


@pytest.mark.parametrize("command", [["bench"], ["train", "--model", "resnet8", "--budget", "smoke"]])
def test_fp16_on_a_cpu_is_refused_with_the_reason(capsys, no_training, tmp_path, command):
    line = one_error_line(capsys, [*command, "--precision", "fp16", "--device", "cpu"]
                          + (["--results", str(tmp_path)] if command[0] == "train" else []))
    assert line.startswith("error: --precision fp16 on a CPU: CPUs have no fast fp16 arithmetic (ResNet-20's training "
                           "step ran 4 to 22 times slower than in fp32")
    assert "use fp32" in line


@pytest.mark.parametrize("seed", ["-1", "-7"])
def test_train_refuses_a_negative_seed(capsys, no_training, tmp_path, seed):
    line = one_error_line(capsys, ["train", "--model", "resnet8", "--seed", seed, "--results", str(tmp_path)])
    assert line == f"error: --seed must be a non-negative integer (it seeds torch.manual_seed); got {seed}"


@pytest.mark.parametrize("budget, val, limit", [("smoke", "49990", 200), ("smoke", "201", 200), ("cpu", "5000", 1000),
                                                 ("paper", "10001", 10000), ("smoke", "-1", 200)])
def test_train_bounds_the_validation_split_by_the_budgets_test_set(capsys, no_training, tmp_path, budget, val, limit):
    line = one_error_line(capsys, ["train", "--model", "resnet8", "--budget", budget, "--val-size", val,
                                   "--results", str(tmp_path)])
    assert f"--val-size must be 0 to {limit:,} with the {budget!r} budget, which tests on {limit:,} images" in line
    assert "--budget paper --val-size 5000" in line


def test_arguments_are_checked_before_a_stored_run_is_reported(capsys, no_training, tmp_path, monkeypatch):
    monkeypatch.setattr(results, "has_run", lambda *a, **k: True)  # every run is "already stored"
    base = ["train", "--model", "resnet8", "--budget", "smoke", "--results", str(tmp_path)]
    assert "already stored" in one_error_line(capsys, base)
    for bad, said in ((["--seed", "-1"], "--seed"), (["--batch-size", "100000"], "--batch-size"),
                      (["--checkpoint", "/proc/x.pt"], "--checkpoint"), (["--val-size", "49990"], "--val-size"),
                      (["--precision", "fp16", "--device", "cpu"], "--precision fp16")):
        line = one_error_line(capsys, [*base, *bad])
        assert said in line and "already stored" not in line, line


def test_ctrl_c_says_whether_a_checkpoint_was_written(capsys, tmp_path, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "train", interrupted)
    ckpt = tmp_path / "run.pt"
    argv = ["train", "--model", "resnet8", "--budget", "smoke", "--results", str(tmp_path / "res"),
            "--checkpoint", str(ckpt)]
    assert cli.main(argv) == 130
    err = capsys.readouterr().err.strip()
    assert err == "interrupted; no checkpoint was written yet, so nothing is kept: run the same command to start again"
    ckpt.write_bytes(b"a checkpoint of an earlier piece of the run")
    assert cli.main(argv + ["--resume"]) == 130
    assert capsys.readouterr().err.strip() == (f"interrupted; the last checkpoint {ckpt} is kept (continue with the "
                                               "same command and --resume)")


def test_device_strings_say_thread_for_one_thread(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert results.device_name("cpu").endswith(", 1 thread)")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert results.device_name("cpu").endswith(", 2 threads)")
    # records stored before the fix say "1 threads"; captions show them right
    assert results.device_label("CPU (AMD EPYC, 1 threads)") == "CPU (AMD EPYC, 1 thread)"
    assert results.device_label("CPU (AMD EPYC, 11 threads)") == "CPU (AMD EPYC, 11 threads)"
