"""Run a computation on pinned CPU kernels, so that it gives the same bits on every x86-64 machine.

PyTorch picks its CPU kernels when it is imported: ATen's vectorised kernels by the best instruction
set the CPU has (AVX2 or AVX-512), oneDNN's convolutions likewise, and MKL's BLAS too. A number
recorded on an AVX2 machine therefore differs in the last digits on an AVX-512 machine. Tests that
compare floating-point results with numbers recorded elsewhere (the golden training curves, exact
accuracies of published weights) run their computation in a subprocess whose kernels are capped at
AVX2, which every x86-64 machine we meet has. The variables must be set before torch is imported,
hence the subprocess.

Tests that compare two computations made in the same process on the same machine (resumed ==
uninterrupted, parallel == sequential) need none of this.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

#: The pinned instruction set, as ``torch.backends.cpu.get_cpu_capability()`` names it.
CAPABILITY = "AVX2"
#: ATen's dispatch, oneDNN's and MKL's instruction-set caps, all at AVX2.
ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
#: What the CPU must have for the cap to be honoured.
REQUIRED_FLAGS = ("avx2", "fma")


def unavailable() -> str | None:
    """Why this machine cannot run the pinned kernels, or None if it can."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return f"pinned AVX2 kernels need an x86-64 CPU; this is {platform.machine()}"
    try:
        flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), [])
    except OSError:
        return "cannot read /proc/cpuinfo to check for AVX2"
    missing = [f for f in REQUIRED_FLAGS if f not in flags]
    if missing:
        return f"pinned AVX2 kernels need the CPU flags {', '.join(missing)}, which this CPU lacks"
    return None


def run(script: Path, *args: str, timeout: float = 1800) -> dict:
    """Run ``python script *args`` with pinned kernels and one thread; it must print one JSON object
    as its last line of standard output, which is returned."""
    env = {**os.environ, **ENV, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{script.name} {' '.join(args)} failed with pinned kernels "
                           f"(exit {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def capability() -> str:
    """The capability torch dispatches to in this process (call it inside the pinned subprocess)."""
    import torch

    return torch.backends.cpu.get_cpu_capability()


def require_pinned() -> None:
    """Inside the subprocess: fail loudly if the cap did not take (e.g. torch imported too early)."""
    got = capability()
    if got != CAPABILITY:
        raise RuntimeError(f"kernels are not pinned: torch dispatches to {got}, expected {CAPABILITY} "
                           f"(set {', '.join(ENV)} before importing torch)")
