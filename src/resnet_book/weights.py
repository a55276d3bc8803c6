"""Final weights of trained networks, kept so that a reader on a CPU can measure a fully trained net.

An experiment with ``keep_weights`` saves, at the end of training, the weights of seed 0 of each
of its models as an fp16 ``state_dict`` (half the bytes of fp32; loadable with
``torch.load(..., weights_only=True)``), and records every file in a committed manifest,
``data/weights/MANIFEST.json``: experiment, label, run id, training config, sha256 and size.
:func:`load_weights` checks the checksum before it builds the model.

Where the files go (the rule): the repository holds at most :data:`REPO_LIMIT_BYTES` (12 MB) of
weights. The kept models of all experiments are taken from the smallest to the largest (exact
fp16 sizes from the parameter and buffer counts, :func:`fp16_bytes`); each goes to
``data/weights/<experiment>/`` while the running total stays within the limit, and all larger ones
to the cache (``<cache>/weights/<experiment>/``, see :func:`resnet_book.data.cache_dir`). The rule
depends only on the experiments' definitions, never on which run finished first. For ``table6``
(plain and ResNet 20-110, ResNet-1202) that puts the 20- to 56-layer nets in the repository and the
110-layer nets and ResNet-1202 (19.4M parameters, 39 MB) in the cache: their manifest entries are
committed, so a copy obtained elsewhere is verified the same way.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import torch
from torch import nn

from ._io import atomic_torch_save, atomic_write
from .data import cache_dir
from .results import results_root

REPO_LIMIT_BYTES = 12_000_000
MANIFEST_NAME = "MANIFEST.json"
WEIGHTS_ENV = "RESNET_BOOK_WEIGHTS"


class WeightsError(ValueError):
    """Kept weights are missing, damaged or not the file the manifest names; the message says why."""


def weights_root(root: str | os.PathLike | None = None, results: str | os.PathLike | None = None) -> Path:
    """``root``, else :data:`WEIGHTS_ENV`, else ``weights/`` beside the results folder ``results``
    (:func:`resnet_book.results.results_root`; ``data/weights`` in the repository)."""
    if root:
        return Path(root)
    if os.environ.get(WEIGHTS_ENV):
        return Path(os.environ[WEIGHTS_ENV])
    return results_root(results).parent / "weights"


def cache_weights_dir() -> Path:
    return cache_dir() / "weights"


def build_for(config: dict, device: str | torch.device = "cpu") -> nn.Module:
    """The untrained network of a stored training config (``dataclasses.asdict(TrainConfig)``),
    built as the trainer builds it (:func:`resnet_book.train.build_network`); the global random
    state is left as it was."""
    from .train import TrainConfig, build_network

    known = {f.name for f in dataclasses.fields(TrainConfig)}
    with torch.random.fork_rng(devices=[]):
        return build_network(TrainConfig(**{k: v for k, v in config.items() if k in known}), torch.device(device))


def fp16_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict with floating-point tensors in fp16 (integer buffers unchanged)."""
    return {k: (v.detach().to("cpu", torch.float16) if v.is_floating_point() else v.detach().cpu()).clone()
            for k, v in model.state_dict().items()}


def fp16_bytes(config: dict) -> int:
    """Bytes of the tensors of :func:`fp16_state_dict` for ``config``'s network (the file adds a few
    kB of names), counted on the meta device: nothing is allocated."""
    model = build_for(config, "meta")
    return sum(v.numel() * (2 if v.is_floating_point() else v.element_size()) for v in model.state_dict().values())


def placement(kept: list[tuple[str, str, dict]], limit: int | None = None) -> dict[tuple[str, str], str]:
    """``"repo"`` or ``"cache"`` for each ``(experiment, label, config)`` kept: smallest first,
    into the repository while the total stays within ``limit`` (default :data:`REPO_LIMIT_BYTES`)."""
    limit = REPO_LIMIT_BYTES if limit is None else limit
    sized = sorted(((fp16_bytes(c), e, lab) for e, lab, c in kept))
    out, total = {}, 0
    for size, e, lab in sized:
        fits = total + size <= limit
        total += size if fits else 0
        out[(e, lab)] = "repo" if fits else "cache"
    return out


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_for(experiment: str, run_id: str, location: str, root=None, *, source: str) -> Path:
    """Where the kept weights of ``run_id`` (trained on data ``source``) live: ``<experiment>/<source>/``
    under :func:`weights_root` (``location="repo"``) or the cache (``"cache"``), like the results."""
    base = weights_root(root) if location == "repo" else cache_weights_dir()
    return base / experiment / source / f"{run_id}.pt"


def key(experiment: str, source: str, run_id: str) -> str:
    """A run's name in the manifest."""
    return f"{experiment}/{source}/{run_id}"


def save(model: nn.Module, path: Path) -> dict:
    """Write ``model``'s fp16 state dict to ``path`` (atomically); its sha256 and size."""
    atomic_torch_save(fp16_state_dict(model), Path(path))
    return {"sha256": sha256(Path(path)), "bytes": Path(path).stat().st_size}


def read_manifest(root=None) -> dict:
    path = weights_root(root) / MANIFEST_NAME
    if not path.exists():
        return {"format": 1, "rule": __doc__.split("Where the files go (the rule): ")[1].split("\n\n")[0]
                .replace("\n", " "), "files": {}}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise WeightsError(f"{path} is not valid JSON ({err}); restore it from git") from None


def add_to_manifest(entry: dict, root=None) -> Path:
    """Record one kept file (keyed ``<experiment>/<run_id>``); written atomically."""
    manifest = read_manifest(root)
    manifest["files"][key(entry["experiment"], entry["data_source"], entry["run_id"])] = entry
    manifest["files"] = dict(sorted(manifest["files"].items()))
    path = weights_root(root) / MANIFEST_NAME
    text = json.dumps(manifest, indent=1) + "\n"

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    atomic_write(path, write)
    return path


def entries(experiment: str | None = None, root=None) -> list[dict]:
    return [e for e in read_manifest(root)["files"].values() if experiment in (None, e["experiment"])]


def recorded(experiment: str, run_id: str, root=None, *, source: str | None = None) -> bool:
    """Whether the manifest names this run's kept weights (on data ``source``; None: any source).
    The file itself may be in another machine's cache."""
    return any(e["experiment"] == experiment and e["run_id"] == run_id and source in (None, e["data_source"])
               for e in read_manifest(root)["files"].values())


def load_weights(experiment: str, label: str, *, seed: int = 0, budget: str | None = None,
                 source: str | None = None, root=None, device: str | torch.device = "cpu") -> nn.Module:
    """The trained network ``label`` of ``experiment`` (seed ``seed``; the largest budget kept and,
    at that budget, the preferred data source, unless ``budget``/``source`` are given), in eval
    mode, after checking the file's sha256 against the manifest. The fp16 weights are loaded into
    the usual fp32 model."""
    from . import results

    found = [e for e in entries(experiment, root) if e["label"] == label and e["seed"] == seed
             and budget in (None, e["config"]["budget"]) and source in (None, e["data_source"])]
    if not found:
        have = sorted({(e["label"], e["seed"], e["config"]["budget"], e["data_source"])
                       for e in entries(experiment, root)})
        raise WeightsError(f"no kept weights of {experiment!r} {label!r} seed {seed}"
                           + (f" at budget {budget!r}" if budget else "") + (f" on {source}" if source else "")
                           + "; kept: " + (", ".join(f"{lab} seed {s} ({b}, {src})" for lab, s, b, src in have) or "none")
                           + f". `python -m resnet_book reproduce {experiment}` trains and keeps them.")
    def rank(e):  # the largest budget, then the preferred data source: as results.load shows runs
        b = e["config"]["budget"]
        return (results.BUDGET_ORDER.index(b) if b in results.BUDGET_ORDER else -1,
                -results.source_rank(e["data_source"])[0])

    entry = max(found, key=rank)
    path = file_for(experiment, entry["run_id"], entry["location"], root, source=entry["data_source"])
    again = (f"`python -m resnet_book reproduce {experiment} --budget {entry['config']['budget']} --seeds {seed}` "
             f"trains it again")
    if not path.exists():
        where = "in the repository" if entry["location"] == "repo" else "in this machine's cache (it is too large for the repository)"
        raise WeightsError(f"{path} is not here: the manifest keeps {entry['run_id']} {where}; put a copy there "
                           f"(it is checked against sha256 {entry['sha256'][:12]}...) or delete its manifest entry; {again}")
    got = sha256(path)
    if got != entry["sha256"] or path.stat().st_size != entry["bytes"]:
        raise WeightsError(f"{path} is damaged or not the file the manifest names (sha256 {got[:12]}... instead of "
                           f"{entry['sha256'][:12]}...); delete it and restore it, or {again}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = build_for(entry["config"])
    model.load_state_dict(state)
    return model.to(device).eval()


def entry_for(record: dict, saved: dict, location: str, root=None) -> dict:
    """The manifest entry of a run's kept weights."""
    return {"experiment": record["experiment"], "label": record["label"], "run_id": record["run_id"],
            "seed": record["seed"], "config": record["config"], "location": location,
            "path": str(file_for(record["experiment"], record["run_id"], location, root,
                                 source=record["data"]["source"]).relative_to(
                weights_root(root) if location == "repo" else cache_weights_dir())),
            "dtype": "float16", "parameters": record["model"]["parameters"], **saved,
            "data_source": record["data"]["source"], "final": record["final"],
            "trained": {k: record["provenance"].get(k) for k in ("device", "git_commit", "finished")}}

