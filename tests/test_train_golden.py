"""The trainer's numbers are frozen: a refactor or a speed-up must reproduce them bit for bit.

``data/train_golden.json`` holds the curves, final metrics and a hash of the final weights of a few
short runs, recorded with the trainer as it was before it was split into named pieces (commit
a976ade).  Floating-point results depend on the CPU's kernels, the thread count and the torch
version, so the exact comparison runs where those match the recording (this repository's CI
machine, one thread); elsewhere it is skipped with the reason.  The portable half of the check --
the trainer equals a plain re-implementation of the recipe on any machine -- is
``test_trainer_equals_a_plain_loop`` in ``test_train.py``.

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

from resnet_book.results import device_name
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
    return {"device": device_name("cpu"), "torch": torch.__version__}


def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    return before


@pytest.mark.slow
def test_trainer_reproduces_the_recorded_runs_bit_for_bit(tiny):
    golden = json.loads(GOLDEN.read_text())
    before = _one_thread()
    try:
        if golden["machine"] != machine():
            pytest.skip(f"recorded on {golden['machine']}; this is {machine()} (floating point may differ)")
        now = run_all(tiny)
    finally:
        torch.set_num_threads(before)
    assert now.keys() == golden["runs"].keys()
    for name, want in golden["runs"].items():
        got = now[name]
        for key in want:
            assert got[key] == want[key], f"{name}: {key} differs from the recorded run"
    # resuming after every single iteration changes nothing either
    resumed = dict(now[RESUMED + "_resumed"])
    assert resumed.pop("pieces") == RUNS[RESUMED].get("iterations", 24)
    assert resumed == now[RESUMED]


if __name__ == "__main__" and "--record" in sys.argv:
    from conftest import make_tiny

    torch.set_num_threads(1)
    GOLDEN.write_text(json.dumps({"machine": machine(), "runs": run_all(make_tiny())}, indent=1) + "\n")
    print(f"wrote {GOLDEN}")
