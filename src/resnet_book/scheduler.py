"""Many independent jobs, N at a time: worker processes that each run one job at a time.

:func:`run_jobs` hands jobs to workers as they become free and reports every job's
:class:`Outcome` as it arrives, so the caller can store a finished run at once.  A job that raises
is reported and the others go on; a worker that dies (killed, out of memory) loses only its
current job, and a fresh worker takes the next one.  ``parallel=1`` runs the jobs in this process,
one after the other, with the same reporting.

Workers are started with ``multiprocessing``'s *spawn* method (a fresh interpreter: safe with CUDA,
the same on every platform; a script that calls this must do so under
``if __name__ == "__main__":``, as with any spawn-based multiprocessing -- the command line and
notebooks need nothing) and live until the queue is empty, so the import of torch and the load
of the data are paid once per worker, not once per job.  On the CPU each worker gets
``max(1, threads // N)`` of the threads this process would use, so N workers share the cores
instead of fighting over them.

On CUDA, several processes share one GPU far better under CUDA MPS (the multi-process service,
which lets their kernels run concurrently): :func:`start_cuda_mps` starts its daemon when the
machine allows it and says what happened.
"""
from __future__ import annotations

import multiprocessing as mp
import shutil
import signal
import subprocess
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any


@dataclass
class Outcome:
    """What became of one job: ``value`` (the job function's return) or ``error`` (one line)."""

    job: Any
    ok: bool
    value: Any = None
    error: str | None = None
    worker: int = 0  # 0: this process


def one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def worker_threads(parallel: int, threads: int | None = None) -> int:
    """Threads per worker: the threads this process would use (``torch.get_num_threads()``,
    normally one per core), split evenly over ``parallel`` workers, at least one."""
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    return max(1, threads // max(1, parallel))


def _worker_main(conn, fn, setup, setup_args, threads) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    import torch

    torch.set_num_threads(threads)
    context = None
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        try:
            if context is None and setup is not None:
                context = setup(*setup_args)
            conn.send((True, fn(job, context), None))
        except Exception as err:  # reported to the parent; the worker takes the next job
            conn.send((False, None, one_line(err)))


@dataclass
class _Worker:
    number: int
    process: Any
    conn: Any
    job: Any = None


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def run_jobs(jobs: Iterable, fn: Callable[[Any, Any], Any], *, parallel: int = 1, setup: Callable | None = None,
             setup_args: tuple = (), on_outcome: Callable[[Outcome], None] | None = None,
             stop: Callable[[], bool] | None = None, threads: int | None = None,
             on_start: Callable[[Any, int], None] | None = None) -> list[Outcome]:
    """Run ``fn(job, context)`` for every job, ``parallel`` at a time, and return the outcomes in
    the order they finished.

    ``setup(*setup_args)`` makes each worker's ``context`` once, before its first job (in this
    process for ``parallel=1``); ``fn`` and ``setup`` must be importable module-level functions and
    jobs picklable.  ``on_outcome`` is called in this process as each job ends (an exception it
    raises stops everything: the workers are ended and their jobs lost, as with Ctrl-C).  No job
    is started once ``stop()`` is true; the jobs not started get no outcome.
    """
    pending = deque(jobs)
    stop = stop or (lambda: False)
    outcomes: list[Outcome] = []

    def report(o: Outcome) -> None:
        outcomes.append(o)
        if on_outcome is not None:
            on_outcome(o)

    if parallel < 1:
        raise ValueError(f"parallel must be a positive number of workers; got {parallel}")
    if parallel == 1:
        context = None
        while pending and not stop():
            job = pending.popleft()
            if on_start is not None:
                on_start(job, 0)
            try:
                if context is None and setup is not None:
                    context = setup(*setup_args)
                o = Outcome(job, True, fn(job, context))
            except Exception as err:
                o = Outcome(job, False, error=one_line(err))
            report(o)
        return outcomes

    ctx = mp.get_context("spawn")
    per_worker = worker_threads(parallel, threads)
    workers: list[_Worker] = []
    started = 0

    def start_worker() -> _Worker:
        nonlocal started
        started += 1
        parent, child = ctx.Pipe()
        p = ctx.Process(target=_worker_main, args=(child, fn, setup, setup_args, per_worker), daemon=True,
                        name=f"resnet-book-worker-{started}")
        p.start()
        child.close()
        w = _Worker(started, p, parent)
        workers.append(w)
        return w

    try:
        while True:
            # hand jobs to idle workers (starting workers as needed, up to `parallel`)
            while pending and not stop():
                idle = next((w for w in workers if w.job is None), None)
                if idle is not None and not idle.process.is_alive():  # died between jobs: nothing lost
                    workers.remove(idle)
                    idle.conn.close()
                    continue
                if idle is None:
                    if len(workers) >= parallel:
                        break
                    idle = start_worker()
                idle.job = pending.popleft()
                if on_start is not None:
                    on_start(idle.job, idle.number)
                try:
                    idle.conn.send(idle.job)
                except OSError:  # it died before taking the job: reported below, like any death
                    pass
            busy = [w for w in workers if w.job is not None]
            if not busy:
                break
            ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
            for w in busy:
                dead = w.process.sentinel in ready
                if w.conn in ready or w.conn.poll():
                    try:
                        ok, value, error = w.conn.recv()
                    except (EOFError, OSError):
                        dead = True  # its end of the pipe closed: it is dying
                    else:
                        job, w.job = w.job, None
                        report(Outcome(job, ok, value, error, w.number))
                        continue
                if dead:
                    w.process.join()
                    job, w.job = w.job, None
                    workers.remove(w)
                    w.conn.close()
                    report(Outcome(job, False, error=f"worker {w.number} died ({_exit_reason(w.process.exitcode)})",
                                   worker=w.number))
    finally:
        for w in workers:
            try:
                w.conn.send(None)
            except (OSError, ValueError):
                pass
        for w in workers:
            w.process.join(timeout=5 if w.job is None else 0)
            if w.process.is_alive():
                w.process.terminate()
                w.process.join(timeout=5)
            w.conn.close()
    return outcomes


def start_cuda_mps(run=subprocess.run, which=shutil.which) -> tuple[bool, str]:
    """Start the CUDA MPS control daemon (``nvidia-cuda-mps-control -d``) if this machine allows it.

    Returns ``(started_by_us, what happened)``; ``started_by_us`` means the caller should stop it
    again with :func:`stop_cuda_mps` when done.  Nothing here is fatal: without MPS the workers
    still share the GPU, only with time-slicing instead of concurrent kernels."""
    exe = which("nvidia-cuda-mps-control")
    if exe is None:
        return False, "CUDA MPS not used: nvidia-cuda-mps-control is not on this machine's PATH"
    try:
        probe = run([exe], input="get_server_list\n", capture_output=True, text=True, timeout=10)
        if probe.returncode == 0:
            return False, "CUDA MPS: its control daemon was already running; the workers use it"
        r = run([exe, "-d"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as err:
        return False, f"CUDA MPS not used: could not run {exe} ({one_line(err)})"
    if r.returncode != 0:
        why = " ".join((r.stderr or r.stdout or "").split()) or f"exit code {r.returncode}"
        return False, f"CUDA MPS not used: `nvidia-cuda-mps-control -d` failed ({why})"
    return True, "CUDA MPS: started its control daemon (nvidia-cuda-mps-control -d); stopped again at the end"


def stop_cuda_mps(run=subprocess.run, which=shutil.which) -> None:
    exe = which("nvidia-cuda-mps-control")
    if exe is not None:
        try:
            run([exe], input="quit\n", capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            pass


def default_parallel_device(device: str | None) -> str:
    """The device type jobs will run on (``"cuda"``, ``"mps"`` or ``"cpu"``) without initialising CUDA."""
    if device not in (None, "auto"):
        return device.split(":")[0]
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"

