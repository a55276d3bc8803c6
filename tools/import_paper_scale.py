"""File the twelve paper-budget runs of ``../shared/runs/paper-scale-h100`` under ``data/results``.

They are this library's own output (``python -m resnet_book train --budget paper``, commit a35b67f,
one H100; see that folder's README). Every measured field is copied unchanged; two things change:

* ``experiment`` becomes the experiment the run belongs to (``degradation`` for plain-20/32,
  ``reversal`` for ResNet-20/32), so that the record agrees with the folder it is filed in;
* ``imported_from`` is added: where the file came from, the ``experiment`` name it was written
  with, and how it was trained (the README's facts).

Usage (from the repository root): ``python tools/import_paper_scale.py [SOURCE_FOLDER]``.
Existing records are never overwritten.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared" / "runs" / "paper-scale-h100"
EXPERIMENT = {"plain": "degradation", "resnet": "reversal"}
HOW = ("trained by this library's CLI at commit a35b67f (clean tree) on one NVIDIA H100 80GB, torch 2.11.0+cu130, "
       "bf16 autocast, channels_last, on cifar10-jpeg; 12 runs at once under CUDA MPS (9-13k images/s each), each "
       "in 3 resumed pieces of at most 9 minutes: python -m resnet_book train --model MODEL --budget paper "
       "--seed SEED --resume --time-limit 530 --quiet --results RESULTS --experiment paper-scale; "
       "wall_time_s is the sum over the pieces; the final weights were not kept")


def imported(record: dict, source_file: str) -> dict:
    """The record filed under its experiment, with the import note; measured fields untouched."""
    family = record["model"]["name"].rstrip("0123456789")
    out = dict(record)
    out["experiment"] = EXPERIMENT[family]
    out["imported_from"] = {"path": f"shared/runs/paper-scale-h100/{source_file}",
                            "original_experiment": record["experiment"], "how": HOW}
    return out


def main(source: Path = SOURCE) -> None:
    for path in sorted(source.glob("*_paper_seed*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        new = imported(record, path.name)
        dest = REPO / "data" / "results" / new["experiment"] / record["data"]["source"] / path.name
        if dest.exists():
            print(f"{dest.relative_to(REPO)} exists; left as it is")
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(json.dumps(new, indent=1) + "\n", encoding="utf-8")
        print(f"{path.name} -> {dest.relative_to(REPO)}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE)
