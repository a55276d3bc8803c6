"""Stored measurements of the published, fully trained networks (:func:`resnet_book.weights.published`).

The four CIFAR-10 ResNets (20, 32, 44, 56 layers, option A) were trained by a public
re-implementation (akamaster/pytorch_resnet_cifar10), not by this book. :func:`measure` measures
them with the functions of :mod:`resnet_book.analysis` on the whole test set (or its first
``n_images``: a live version in seconds); :func:`store` writes the result as JSON with full
provenance to ``data/results/published/<data source>/<kind>.json``; :func:`load` reads it back.
``python -m resnet_book measure-published`` computes and stores every kind.

Kinds (:data:`KINDS`), each measured on every net of :data:`resnet_book.weights.PUBLISHED`, in eval
mode unless said otherwise, images normalised as the nets were trained (ImageNet channel statistics):

* ``accuracy``: test error on the data copy (and, with ``also_on``, on a second copy: fixed
  weights trained on the original pixels, tested on the JPEG copy), the number of images wrong, the
  re-implementation's published error, the paper's Table 6 error and the parameter count;
* ``responses``: paper Fig. 7: the std of each 3x3 layer's output after BN (before the ReLU or the
  addition), by layer in forward order, the std taken over all entries (images x channels x
  positions) of all images (:func:`analysis.layer_responses_over`); under ``branch`` the same
  numbers for each block's residual ``F(x)`` (its last BN's output);
* ``lesions``: Veit et al. (2016) (:func:`analysis.lesion_study_over`): the test error with nothing
  dropped, with each block dropped alone, and with ``draws`` random sets of ``k`` blocks dropped
  together for each ``k`` of ``ks`` (seeded);
* ``relu_masked``: per block, the share of the entries of ``F(x) + x`` that are negative, which the
  ReLU after the addition sets to 0 (:func:`analysis.relu_masked_share`);
* ``gradients``: per block, the norm of d(loss)/d(block output), the loss being the mean
  cross-entropy of a batch of 256 test images (the definition of the runs' ``profile`` analysis
  that chapter 3 plots, :func:`analysis.activation_stats`), averaged over the test set's full
  batches of 256 (9,984 images), with BN in train mode (each batch's statistics, as the runs'
  profiles; the BN running statistics are restored afterwards) (:func:`analysis.gradient_profile`);
* ``padded_channels``: in each downsampling block, what the channels that option A's shortcut
  fills with zeros carry after training, against the copied channels
  (:func:`analysis.padded_channel_stats`).

Every record names whose weights these are (:data:`resnet_book.weights.CREDIT`), their files' sha256,
the data source and number of images, and the usual provenance (device, torch, git commit and
whether the tree was dirty, wall time).

Record layout (``record["nets"][name]`` for each net, all errors as fractions, blocks and layers
named as in the model, e.g. ``"layer2.0"`` and ``"layer2.0.bn1"``, in forward order):

* ``accuracy``: ``test_error``, ``wrong`` and ``images``, each ``{data source: value}``;
  ``published_error_pct``, ``paper_error_pct``, ``parameters``;
* ``responses``: ``bn`` ``{layer: std}``, ``branch`` ``{block: std}``;
* ``lesions``: ``baseline``, ``single`` ``{block: error}``, ``random_sets`` ``{str(k): [error per draw]}``,
  ``ks``, ``draws``, ``seed``, ``blocks``;
* ``relu_masked``: ``negative_share`` ``{block: share}``;
* ``gradients``: ``grad_norm``, ``grad_norm_sd``, ``act_std`` ``{block: value}``, ``batches``,
  ``batch_size``, ``images_used``, ``bn_mode``;
* ``padded_channels``: ``{block: {"channels": {"padded": [...], "copied": [...]}, "padded": {...},
  "copied": {...}}}``, each group with ``F_mean``, ``F_std``, ``sum_mean``, ``sum_std``,
  ``out_mean``, ``out_std``, ``out_zero_share``, ``gamma`` and ``beta`` (per channel);

and ``wall_time_s`` (seconds for that net).
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import torch

from . import analysis, results, weights
from .data import CIFAR10, SOURCES, load_cifar10
from .models import display_name
from .train import error_rate

KINDS = ("accuracy", "responses", "lesions", "relu_masked", "gradients", "padded_channels")
FOLDER = "published"
DEFAULT_SOURCE = "cifar10-original"
FORMAT = 1
EVAL_BATCH = 500
GRADIENT_BATCH = 256  # as the runs' profile analysis (256 images per backward pass)
LESION_KS = (2, 4, 6, 8, 10, 12)
LESION_BATCH = 200  # each block's input is kept for one batch: about 200 MB for ResNet-56
LESION_DRAWS = 3
COMMAND = "python -m resnet_book measure-published"


class MeasurementError(FileNotFoundError):
    """A stored measurement is missing or unreadable; the message names the command that makes it."""


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown measurement {kind!r}; allowed: {', '.join(KINDS)}")
    return kind


def path(kind: str, *, source: str = DEFAULT_SOURCE, root: str | os.PathLike | None = None) -> Path:
    """Where the measurement ``kind`` on data ``source`` is stored."""
    return results.results_root(root) / FOLDER / results._check_name("data source", source) / f"{_check_kind(kind)}.json"


def _data(data: CIFAR10 | str | os.PathLike | None) -> CIFAR10:
    return data if isinstance(data, CIFAR10) else load_cifar10(data, progress=False)


def _test_set(data: CIFAR10, n_images: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    n = len(data.test_labels)
    if n_images is not None and (isinstance(n_images, bool) or not isinstance(n_images, int) or not 1 <= n_images <= n):
        raise ValueError(f"n_images must be an integer from 1 to {n} (the test set's size) or None (all); got {n_images!r}")
    k = n if n_images is None else n_images
    return data.test_images[:k], data.test_labels[:k]


def _batches(images, labels, normalize, size: int, device, *, full_only: bool = False) -> list:
    stop = len(labels) - len(labels) % size if full_only and len(labels) >= size else len(labels)
    return [(normalize(images[i:i + size].to(device)), labels[i:i + size].to(device)) for i in range(0, stop, size)]


def _accuracy(net, images, labels, device, *, also_on=None, **_) -> dict:
    out = {"test_error": {}, "wrong": {}, "images": {}}
    for source, (x, y) in {**{"main": (images, labels)}, **(also_on or {})}.items():
        e = error_rate(net.model, x, y, net.normalize.to(device))
        out["test_error"][source], out["wrong"][source], out["images"][source] = e, round(e * len(y)), len(y)
    out.update(published_error_pct=net.published_error, paper_error_pct=net.paper_error,
               parameters=analysis.count_parameters(net.model))
    return out


def _responses(net, images, labels, device, **_) -> dict:
    bn = analysis.layer_responses_over(net.model, _batches(images, labels, net.normalize, EVAL_BATCH, device))
    # F(x) is the output of the block's last BN: its std is already measured (one pass, not two)
    last = {name: next(f"{name}.{n}" for n, m in block.named_children() if m is block.last_bn)
            for name, block in analysis.blocks(net.model)}
    return {"bn": bn, "branch": {name: bn[key] for name, key in last.items()}}


def _lesions(net, images, labels, device, *, ks=LESION_KS, draws=LESION_DRAWS, seed=0, **_) -> dict:
    b = _batches(images, labels, net.normalize, LESION_BATCH, device)
    out = analysis.lesion_study_over(net.model, b, ks=ks, draws=draws, seed=seed)
    return {**out, "ks": list(ks), "draws": draws, "seed": seed, "blocks": len(analysis.blocks(net.model))}


def _relu_masked(net, images, labels, device, **_) -> dict:
    return {"negative_share": analysis.relu_masked_share(net.model, _batches(images, labels, net.normalize,
                                                                             EVAL_BATCH, device))}


def _gradients(net, images, labels, device, **_) -> dict:
    b = _batches(images, labels, net.normalize, GRADIENT_BATCH, device, full_only=True)
    return {"batch_size": len(b[0][1]), "images_used": sum(len(y) for _, y in b), "bn_mode": "train",
            **analysis.gradient_profile(net.model, b, mode="train")}


def _padded_channels(net, images, labels, device, **_) -> dict:
    return analysis.padded_channel_stats(net.model, _batches(images, labels, net.normalize, EVAL_BATCH, device))


_MEASURE: dict[str, Callable] = {"accuracy": _accuracy, "responses": _responses, "lesions": _lesions,
                                 "relu_masked": _relu_masked, "gradients": _gradients,
                                 "padded_channels": _padded_channels}


def measure(kind: str, *, data: CIFAR10 | str | os.PathLike | None = None, n_images: int | None = None,
            nets: Sequence[str] = weights.PUBLISHED, also_on: CIFAR10 | str | os.PathLike | None = None,
            ks: Iterable[int] = LESION_KS, draws: int = LESION_DRAWS, seed: int = 0,
            device: str | torch.device = "cpu", log: Callable[[str], None] | None = None) -> dict:
    """Measure ``kind`` (one of :data:`KINDS`) on the published nets ``nets``, on the test set of
    ``data`` (a loaded :class:`~resnet_book.data.CIFAR10`, a folder, or None: ``RESNET_BOOK_DATA``),
    all of it or its first ``n_images``. ``also_on`` (``accuracy`` only): a second copy whose test
    set is measured too (e.g. the JPEG copy). ``ks``, ``draws``, ``seed``: the lesion study's.
    Returns the record :func:`store` writes."""
    _check_kind(kind)
    unknown = [n for n in nets if n not in weights.PUBLISHED]
    if unknown or not nets:
        raise ValueError(f"nets must be some of {', '.join(weights.PUBLISHED)}; got {list(nets)}")
    if also_on is not None and kind != "accuracy":
        raise ValueError(f"also_on (a second data copy) is for the accuracy only, not {kind!r}")
    t0 = time.time()
    main = _data(data)
    images, labels = _test_set(main, n_images)
    extra = {}
    if also_on is not None:
        other = _data(also_on)
        if other.source == main.source:
            raise ValueError(f"also_on is the same data source as data ({main.source}); give another copy")
        extra[other.source] = _test_set(other, n_images)
    device = torch.device(device)
    record = {
        "format": FORMAT, "kind": kind, "credit": weights.CREDIT,
        "weights": {"source": weights.PUBLISHED_SOURCE,
                    "files": {n: {"file": weights._PUBLISHED_FILES[n][0], "sha256": weights._PUBLISHED_FILES[n][1]}
                              for n in nets}},
        "data": {"source": main.source, "description": SOURCES.get(main.source, main.source), "split": "test",
                 "images": len(labels), "subset": "all" if len(labels) == len(main.test_labels) else
                 f"the first {len(labels)} test images",
                 **({"also_on": {s: {"description": SOURCES.get(s, s), "images": len(y)}
                                 for s, (_, y) in extra.items()}} if extra else {})},
        "definition": _definition(kind), "nets": {},
    }
    for name in nets:
        t = time.time()
        net = weights.published(name, device=device)
        out = _MEASURE[kind](net, images, labels, device, also_on=extra, ks=tuple(ks), draws=draws, seed=seed)
        if kind == "accuracy":  # key the main copy by its source
            for k in ("test_error", "wrong", "images"):
                out[k] = {(main.source if s == "main" else s): v for s, v in out[k].items()}
        out["wall_time_s"] = round(time.time() - t, 1)
        record["nets"][name] = out
        if log:
            log(f"{kind}: {name} measured in {out['wall_time_s']:.0f} s")
    record["provenance"] = {**results.provenance(device), "threads": torch.get_num_threads(),
                            "wall_time_s": round(time.time() - t0, 1),
                            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    return record


def merge(records: Sequence[dict]) -> dict:
    """One record of several :func:`measure` records of the same kind, data and settings on
    different nets (measured one at a time, e.g. to store progress): the nets in
    :data:`~resnet_book.weights.PUBLISHED` order, the wall times added, the provenance of the last."""
    if not records:
        raise ValueError("no records to merge")
    same = ("format", "kind", "credit", "data", "definition")
    first = records[0]
    for r in records[1:]:
        differ = [k for k in same if r[k] != first[k]]
        differ += ["git commit"] if r["provenance"]["git_commit"] != first["provenance"]["git_commit"] else []
        if differ:
            raise ValueError(f"cannot merge measurements that differ in {', '.join(differ)}")
    nets = {n: v for r in records for n, v in r["nets"].items()}
    out = {**first, "nets": {n: nets[n] for n in weights.PUBLISHED if n in nets}}
    out["weights"] = {**first["weights"], "files": {n: f for n in out["nets"] for r in records
                                                   for m, f in r["weights"]["files"].items() if m == n}}
    out["provenance"] = {**records[-1]["provenance"],
                         "wall_time_s": round(sum(r["provenance"]["wall_time_s"] for r in records), 1),
                         "git_dirty": any(r["provenance"]["git_dirty"] for r in records)}
    return out


def _definition(kind: str) -> str:
    text = __doc__.split(f"* ``{kind}``: ", 1)[1].split("\n* ", 1)[0].split("\n\nEvery record", 1)[0]
    return " ".join(text.split())


def store(record: dict, *, root: str | os.PathLike | None = None, overwrite: bool = False,
          partial: bool = False) -> Path:
    """Write a record of :func:`measure` atomically to :func:`path`; an existing one only with
    ``overwrite``. ``partial=True``: to ``<kind>.partial.json`` beside it (progress of a measurement
    made net by net; always overwritten), which :func:`load` does not read."""
    target = path(record["kind"], source=record["data"]["source"], root=root)
    if partial:
        target = target.with_suffix(".partial.json")
    elif target.exists() and not overwrite:
        raise FileExistsError(f"{target} is already stored; pass overwrite=True (--overwrite) to measure it again")
    results.atomic_write_text(target, json.dumps(record, indent=1) + "\n")
    return target


def load(kind: str, *, source: str = DEFAULT_SOURCE, root: str | os.PathLike | None = None) -> dict:
    """The stored measurement ``kind`` on data ``source`` (see :func:`measure` for what it holds)."""
    p = path(kind, source=source, root=root)
    if not p.is_file():
        raise MeasurementError(f"no stored measurement {kind!r} of the published nets on {source} ({p}); "
                               f"`{COMMAND} --kinds {kind}` (with --data pointing at the {source} copy) makes it")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise MeasurementError(f"{p} is not valid JSON ({err}); restore it from git or make it again with "
                               f"`{COMMAND} --kinds {kind} --overwrite`") from None


def stored(*, source: str = DEFAULT_SOURCE, root: str | os.PathLike | None = None) -> list[str]:
    """The kinds stored for data ``source``."""
    return [k for k in KINDS if path(k, source=source, root=root).is_file()]


def describe(record: dict, net: str | None = None) -> str:
    """Where a stored (or live) measurement comes from, for a caption or a figure's note: whose
    weights (:data:`resnet_book.weights.CREDIT`), which net(s), how many test images of which data
    copy, and that this book's code measured them (device, torch)."""
    nets = [net] if net else list(record["nets"])
    unknown = [n for n in nets if n not in record["nets"]]
    if unknown:
        raise ValueError(f"{unknown[0]!r} is not in this {record['kind']!r} measurement; it holds {', '.join(record['nets'])}")
    names = ", ".join(display_name(n) for n in nets)
    data, prov = record["data"], record["provenance"]
    return (f"{names} {record['credit']}; measured by this book's code on {data['images']:,} test images of "
            f"{data['source']} ({results.device_label(prov['device'])}, torch {prov['torch']})")
