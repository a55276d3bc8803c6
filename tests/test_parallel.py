"""Packed runs: ``reproduce(..., parallel=N)`` / ``reproduce --parallel N`` (resnet_book.scheduler).

On the CPU the number of threads changes the last bits of a run's sums, so "the same results as
sequential" is checked at the same number of threads per run: the workers of ``--parallel 2`` get
half the parent's threads, and the sequential reference runs with that many."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from resnet_book import experiments, results, scheduler
from resnet_book.experiments import Experiment, reproduce


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _by_run(root, name):
    return {r["run_id"]: r for r in results.load(name, root=root, budget="all")}


def test_parallel_stores_what_sequential_stores_and_a_failing_run_stops_nothing(tiny_folder, tmp_path, monkeypatch,
                                                                               one_thread):
    exp = Experiment("packed", "two nets and one that diverges", (
        ("plain8", {"model": "plain8"}), ("diverges", {"model": "resnet8", "lr": 1e6}), ("resnet8", {"model": "resnet8"})),
        seeds=(0,), budget="smoke", analyses={"resnet8": ("responses",)})
    monkeypatch.setattr(experiments, "EXPERIMENTS", {"packed": exp})
    out = {}
    for parallel in (1, 2):
        lines = []
        out[parallel] = reproduce("packed", data_root=str(tiny_folder), results_root=tmp_path / f"res{parallel}",
                                  checkpoint_dir=tmp_path / f"ck{parallel}", parallel=parallel, progress=False,
                                  log=lines.append)
        s = out[parallel]
        assert s["trained"] == 2 and s["stored"] == 2 and s["total"] == 3 and not s["finished"], s
        (failed,) = s["failed"]
        assert failed["run_id"] == "resnet8_lr1000000.0_smoke_seed0" and "the loss became" in failed["error"]
        assert any("FAILED" in line for line in lines)
    assert "2 worker processes, 1 CPU thread(s) each" in "\n".join(lines)
    seq, par = _by_run(tmp_path / "res1", "packed"), _by_run(tmp_path / "res2", "packed")
    assert sorted(seq) == sorted(par) == ["plain8_smoke_seed0", "resnet8_smoke_seed0"]
    for rid in seq:
        assert par[rid]["final"] == seq[rid]["final"] and par[rid]["curves"] == seq[rid]["curves"], rid
    assert par["resnet8_smoke_seed0"]["analysis"] == seq["resnet8_smoke_seed0"]["analysis"]
    assert "1 thread)" in par["plain8_smoke_seed0"]["provenance"]["device"]


def _workers_of(pid: int) -> list[int]:
    """The multiprocessing workers among ``pid``'s children (not its resource tracker)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    found = []
    for child in map(int, children):
        try:
            cmd = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmd:
            found.append(child)
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the workers through /proc (Linux)")
def test_workers_killed_mid_run_are_reported_and_their_runs_resume_exactly(tiny_folder, tmp_path, one_thread):
    # reference: the smoke experiment one run at a time, at the workers' thread count (1)
    reproduce("smoke", data_root=str(tiny_folder), results_root=tmp_path / "ref", checkpoint_dir=tmp_path / "ck-ref",
              progress=False, log=lambda *a: None)
    ck = tmp_path / "ck"
    cmd = [sys.executable, "-m", "resnet_book", "reproduce", "smoke", "--parallel", "2", "--data", str(tiny_folder),
           "--results", str(tmp_path / "res"), "--checkpoints", str(ck), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "2"}  # the parent's 2 threads: 1 per worker
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not list(ck.rglob("*.pt")) and p.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    killed = _workers_of(p.pid)
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    out, err = p.communicate(timeout=300)
    assert killed and p.returncode == 1, (killed, p.returncode, out, err)
    assert "died (killed by SIGKILL)" in err and "failed" in err and "Traceback" not in err, err
    left = sorted(f.stem for f in ck.rglob("*.pt"))
    assert left, "a worker should have been killed mid-run, leaving its checkpoint"
    assert not set(left) & set(_by_run(tmp_path / "res", "smoke"))  # those runs were not stored
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "(resuming)" in p.stdout and "4/4 runs stored" in p.stdout
    ref, got = _by_run(tmp_path / "ref", "smoke"), _by_run(tmp_path / "res", "smoke")
    assert sorted(ref) == sorted(got) and len(got) == 4
    for rid in ref:
        assert got[rid]["final"] == ref[rid]["final"] and got[rid]["curves"] == ref[rid]["curves"], rid
    assert not list(ck.rglob("*.pt"))


def test_a_deadline_starts_no_new_runs(tiny_folder, tmp_path):
    s = reproduce("smoke", data_root=str(tiny_folder), results_root=tmp_path / "res", checkpoint_dir=tmp_path / "ck",
                  parallel=2, time_limit=1e-9, progress=False, log=lambda *a: None)
    assert s["trained"] == 0 and not s["finished"] and not s["failed"] and s["stored"] == 0


def _double(job, context):
    if job == "bad":
        raise ValueError("a bad job")
    return 2 * job + context


def _add_one():
    return 1


def test_scheduler_reports_every_job_and_errors_in_one_line():
    for parallel in (1, 2):
        seen = []
        outcomes = scheduler.run_jobs([1, "bad", 3], _double, parallel=parallel, setup=_add_one, on_outcome=seen.append)
        assert seen == outcomes
        got = {o.job: (o.ok, o.value, o.error) for o in outcomes}
        assert got == {1: (True, 3, None), 3: (True, 7, None), "bad": (False, None, "ValueError: a bad job")}
    with pytest.raises(ValueError, match="positive number of workers"):
        scheduler.run_jobs([1], _double, parallel=0)
    assert scheduler.worker_threads(2, 16) == 8 and scheduler.worker_threads(4, 2) == 1


class _Fake:
    """Stands in for subprocess.run and shutil.which in the CUDA MPS helpers."""

    def __init__(self, probe: int, start: int, stderr: str = ""):
        self.probe, self.start, self.stderr, self.calls = probe, start, stderr, []

    def run(self, args, input=None, **kw):
        self.calls.append((tuple(args), input))
        code = self.start if args[1:] == ["-d"] else self.probe
        return subprocess.CompletedProcess(args, code, stdout="", stderr=self.stderr if code else "")


def test_cuda_mps_is_started_only_when_possible_and_says_what_happened():
    assert scheduler.start_cuda_mps(which=lambda exe: None) == (
        False, "CUDA MPS not used: nvidia-cuda-mps-control is not on this machine's PATH")
    which = {"nvidia-cuda-mps-control": "/usr/bin/nvidia-cuda-mps-control"}.get
    running = _Fake(probe=0, start=0)
    assert scheduler.start_cuda_mps(running.run, which) == (
        False, "CUDA MPS: its control daemon was already running; the workers use it")
    assert running.calls == [(("/usr/bin/nvidia-cuda-mps-control",), "get_server_list\n")]
    refused = _Fake(probe=1, start=1, stderr="An instance of this daemon is already running\n")
    started, said = scheduler.start_cuda_mps(refused.run, which)
    assert not started and said.endswith("failed (An instance of this daemon is already running)")
    fresh = _Fake(probe=1, start=0)
    started, said = scheduler.start_cuda_mps(fresh.run, which)
    assert started and "started its control daemon" in said
    scheduler.stop_cuda_mps(fresh.run, which)
    assert fresh.calls[-1] == (("/usr/bin/nvidia-cuda-mps-control",), "quit\n")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_parallel_on_cuda_stores_every_run(tiny_folder, tmp_path):
    s = reproduce("smoke", data_root=str(tiny_folder), results_root=tmp_path / "res", checkpoint_dir=tmp_path / "ck",
                  parallel=2, device="cuda", progress=False, log=lambda *a: None)
    assert s["finished"] and s["stored"] == s["total"] == 4 and "mps" in s
    assert {r["provenance"]["device"] for r in results.load("smoke", root=tmp_path / "res")} == {
        torch.cuda.get_device_name()}


def test_per_label_seeds(tmp_path):
    exp = Experiment("e", "", (("a", {"model": "resnet8"}), ("b", {"model": "plain8"})), seeds=(0, 1),
                     label_seeds={"b": (0, 1, 2, 3)}, budget="smoke")
    assert [(lab, c.seed) for lab, c in exp.configs()] == [("a", 0), ("a", 1), ("b", 0), ("b", 1), ("b", 2), ("b", 3)]
    assert [(lab, c.seed) for lab, c in exp.configs(seeds=(5,))] == [("a", 5), ("b", 5)]
    with pytest.raises(ValueError, match="label_seeds 'c'"):
        Experiment("e", "", (("a", {"model": "resnet8"}),), label_seeds={"c": (0,)})
    with pytest.raises(ValueError, match="non-negative integers"):
        Experiment("e", "", (("a", {"model": "resnet8"}),), label_seeds={"a": ()})
