"""The trainer's numbers are frozen: a refactor or a speed-up must reproduce them bit for bit.

``data/train_golden.json`` holds the curves, final metrics and a hash of the final weights of a few
short runs, recorded with the trainer as it was before it was split into named pieces (commit
a976ade).  Floating-point results depend on the CPU's kernels, the thread count and the torch
version.  "Bit for bit" here means: with the same pinned kernels.  The runs execute in a subprocess
whose kernels are capped at AVX2 (``pinned_kernels.py``: ATen, oneDNN and MKL, set before torch is
imported) with one thread, so the recorded numbers are reproduced on AVX2 and AVX-512 machines
alike; the recorded machine signature names that capability and the torch version.  A machine that
cannot honour the cap (not x86-64, no AVX2) or has another torch skips with the reason.  The
portable half of the check -- the trainer equals a plain re-implementation of the recipe on any
machine -- is ``test_trainer_equals_a_plain_loop`` in ``test_train.py``.

Record again (only after a change that is *meant* to change the numbers)::

    PYTHONPATH=src:tests python tests/test_train_golden.py --record
"""
from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import pytest
import torch

import pinned_kernels
from resnet_book.train import TrainConfig, train

GOLDEN = Path(__file__).parent / "data" / "train_golden.json"

RUNS = {
    "resnet8_seed0": dict(model="resnet8", budget="smoke", seed=0),
    "plain8_seed1_val": dict(model="plain8", budget="smoke", seed=1, val_size=100),
    "resnet8_seed2_warmup": dict(model="resnet8", budget="smoke", seed=2, warmup="on", iterations=40),
    "preresnet8_variants": dict(model="preresnet8", budget="smoke", seed=3, shortcut="B", zero_init_residual=True,
                                normalization="per_channel", batch_size=16, iterations=20),
    "plain8_norm_none": dict(model="plain8", budget="smoke", seed=0, norm="none", iterations=12),
}
RESUMED = "resnet8_seed0"  # also trained one iteration per call, paused and resumed each time


def weights_hash(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def summary(record: dict, model: torch.nn.Module) -> dict:
    return {"status": record["status"], "step": record["step"], "warmup_ended_at": record["warmup_ended_at"],
            "curves": record["curves"], "final": record["final"], "weights_sha256": weights_hash(model)}


def run_all(data) -> dict:
    out = {}
    for name, kw in RUNS.items():
        out[name] = summary(*train(TrainConfig(**kw), data=data, progress=False, return_model=True))
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, cfg, pieces = Path(tmp) / "run.pt", TrainConfig(**RUNS[RESUMED]), 0
        rec, model = train(cfg, data=data, checkpoint=ckpt, progress=False, deadline=0, return_model=True)
        while rec["status"] == "paused":
            pieces += 1
            rec, model = train(cfg, data=data, checkpoint=ckpt, resume=True, progress=False, deadline=0,
                               return_model=True)
        out[RESUMED + "_resumed"] = {**summary(rec, model), "pieces": pieces + 1}
    return out


def machine() -> dict:
    """What the recorded numbers depend on: the torch version, the kernels' instruction set, one thread."""
    return {"torch": torch.__version__, "cpu_capability": pinned_kernels.capability(),
            "threads": torch.get_num_threads()}


def measure() -> dict:
    """Inside the pinned subprocess: the machine signature and every run's summary."""
    from conftest import make_tiny

    pinned_kernels.require_pinned()
    torch.set_num_threads(1)
    return {"machine": machine(), "runs": run_all(make_tiny())}


@pytest.mark.slow
def test_trainer_reproduces_the_recorded_runs_bit_for_bit():
    reason = pinned_kernels.unavailable()
    if reason:
        pytest.skip(reason)
    golden = json.loads(GOLDEN.read_text())
    if golden["machine"]["torch"] != torch.__version__:
        pytest.skip(f"recorded with torch {golden['machine']['torch']}; this is {torch.__version__}")
    now = pinned_kernels.run(Path(__file__), "--measure")
    assert now["machine"] == golden["machine"]
    assert now["runs"].keys() == golden["runs"].keys()
    for name, want in golden["runs"].items():
        got = now["runs"][name]
        for key in want:
            assert got[key] == want[key], f"{name}: {key} differs from the recorded run"
    # resuming after every single iteration changes nothing either
    resumed = dict(now["runs"][RESUMED + "_resumed"])
    assert resumed.pop("pieces") == RUNS[RESUMED].get("iterations", 24)
    assert resumed == now["runs"][RESUMED]


if __name__ == "__main__":
    if "--measure" in sys.argv:  # run by the test (and by --record) with pinned kernels
        print(json.dumps(measure()))
    elif "--record" in sys.argv:
        if pinned_kernels.unavailable():
            sys.exit(f"cannot record: {pinned_kernels.unavailable()}")
        GOLDEN.write_text(json.dumps(pinned_kernels.run(Path(__file__), "--measure"), indent=1) + "\n")
        print(f"wrote {GOLDEN}")
