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

Published weights (:func:`published`, :data:`PUBLISHED`): four fully trained CIFAR-10 ResNets
(20-56 layers, option A) trained by a public re-implementation, akamaster/pytorch_resnet_cifar10,
**not by this book**, vendored with their licence in ``data/weights/akamaster-cifar10/`` (8.8 MB,
outside the rule above, which is about our own runs). Their sha256 are kept here and checked on
every load; :func:`from_akamaster` converts their state dicts to our models' layout.
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



# --- published third-party weights: fully trained networks we did not train ----------------------

#: The fully trained CIFAR-10 ResNets vendored in ``data/weights/akamaster-cifar10/`` (option A,
#: trained by a public re-implementation of the paper's recipe, not by this book).
PUBLISHED = ("resnet20", "resnet32", "resnet44", "resnet56")
PUBLISHED_FOLDER = "akamaster-cifar10"
PUBLISHED_SOURCE = "akamaster/pytorch_resnet_cifar10 at commit d5489e8 (BSD 2-Clause licence)"
CREDIT = "trained by a public re-implementation (akamaster/pytorch_resnet_cifar10), not by this book"
# file, sha256, test error (%) in that repository's README
_PUBLISHED_FILES = {
    "resnet20": ("resnet20-12fca82f.th", "12fca82f0bebc4135bf1f32f6e3710e61d5108578464b84fd6d7f5c1b04036c8", 8.27),
    "resnet32": ("resnet32-d509ac18.th", "d509ac1820d7f25398913559d7e81a13229b1e7adc5648e3bfa5e22dc137f850", 7.37),
    "resnet44": ("resnet44-014dd654.th", "014dd6541728a1c700b1642ab640e211dc6eb8ed507d70697458dc8f8a0ae2e4", 6.90),
    "resnet56": ("resnet56-4bfd9763.th", "4bfd97631478d6b638d2764fd2baff3edb1d7d82252d54439343b6596b9b5367", 6.61),
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ChannelNormalize:
    """The input these nets were trained on: pixels in [0, 1] (uint8 images are divided by 255;
    float images must already be in [0, 1]), minus a per-channel mean, divided by a per-channel std
    (ImageNet's statistics, as the re-implementation used). Usable wherever the trainer's
    :class:`resnet_book.data.Normalize` is (``.to(device)``, called on ``N x 3 x H x W`` images)."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD, device="cpu"):
        self.mean = torch.as_tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)

    def to(self, device) -> "ChannelNormalize":
        return ChannelNormalize(self.mean.flatten().tolist(), self.std.flatten().tolist(), device)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
            got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"images must be a tensor N x 3 x H x W; got {got}")
        if images.dtype == torch.uint8:
            x = images.float() / 255
        elif images.is_floating_point():
            x = images.float()
            if x.numel() and (x.min() < 0 or x.max() > 1):
                raise ValueError("float images must have pixels in [0, 1] (or pass uint8 images, 0-255); "
                                 f"got values in [{x.min().item():.3g}, {x.max().item():.3g}]: already normalised?")
        else:
            raise ValueError(f"images must be uint8 (0-255) or float in [0, 1]; got {images.dtype}")
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def __repr__(self) -> str:
        return f"ChannelNormalize(mean={tuple(self.mean.flatten().tolist())}, std={tuple(self.std.flatten().tolist())})"


@dataclasses.dataclass(frozen=True, eq=False)
class Published:
    """One published, fully trained network, loaded into our :func:`resnet_book.models.cifar_resnet`."""

    name: str                 # "resnet56"
    depth: int                # 56
    model: nn.Module          # cifar_resnet(depth, shortcut="A") with the weights, in eval mode
    normalize: ChannelNormalize  # uint8 (or [0, 1] float) images -> the input the net was trained on
    published_error: float    # test error (%) in the re-implementation's README
    paper_error: float        # test error (%) of the paper's Table 6
    credit: str               # one sentence for captions: whose weights these are
    sha256: str               # of the file, checked on load
    path: Path                # the file loaded
    source: str = PUBLISHED_SOURCE


def published_folders(root: str | os.PathLike | None = None) -> list[Path]:
    """Where :func:`published` looks for ``akamaster-cifar10/``, in order: ``root`` if given; else
    :func:`weights_root` (``RESNET_BOOK_WEIGHTS``, or ``weights/`` beside the results folder: a
    clone's ``data/weights``, also on Colab where ``RESNET_BOOK_RESULTS`` points into the clone),
    then the ``data/weights`` of the checkout this library is imported from."""
    if root:
        return [Path(root) / PUBLISHED_FOLDER]
    here = Path(__file__).resolve().parents[2] / "data" / "weights" / PUBLISHED_FOLDER
    found = [weights_root() / PUBLISHED_FOLDER, here]
    return [p for i, p in enumerate(found) if p not in found[:i]]


def from_akamaster(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict of akamaster/pytorch_resnet_cifar10's CIFAR ResNet (option A) as our
    ``cifar_resnet(depth, shortcut="A")`` expects it, keys in our model's order.

    Renaming: the ``module.`` prefix dropped, ``linear`` -> ``fc``, BN's ``num_batches_tracked``
    added (as 0: not stored; unused in eval mode). Channels: their option A puts the subsampled input
    of a stage of width ``w`` in the middle channels ``w/4 .. 3w/4 - 1`` with zeros on both sides;
    ours puts it first and the zeros at the back. Our channel ``c`` of stage ``s`` is their channel
    ``perm_s[c]``: ``perm_1`` is the identity and ``perm_s = [w/4 + perm_{s-1}[c] for c < w/2]``
    followed by their zero channels ``0 .. w/4 - 1`` and ``3w/4 .. w - 1`` (stage 3's permutation
    composed with stage 2's, since stage 3's input is stage 2's output). Only the residual stream is
    permuted: each block's last convolution and BN (output channels), each block's first convolution
    (input channels) and the classifier's input; the channels inside a block are left as they are.
    """
    from .models.cifar import CIFAR_WIDTHS, cifar_resnet

    sd = {}
    for k, v in state.items():
        k = k.removeprefix("module.")
        sd["fc." + k[len("linear."):] if k.startswith("linear.") else k] = v
    blocks_per_stage = len({k.split(".")[1] for k in sd if k.startswith("layer1.")})
    if not blocks_per_stage:
        raise WeightsError("not a state dict of akamaster's CIFAR ResNet: no 'layer1' keys")
    depth = 6 * blocks_per_stage + 2
    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        want = cifar_resnet(depth, shortcut="A").state_dict()
    given = {k for k in want if not k.endswith("num_batches_tracked")}
    if set(sd) != given:
        raise WeightsError(f"not a state dict of akamaster's CIFAR ResNet-{depth}: keys missing "
                           f"{sorted(given - set(sd))[:4]}, unexpected {sorted(set(sd) - given)[:4]}")
    perms = [torch.arange(CIFAR_WIDTHS[0])]
    for w in CIFAR_WIDTHS[1:]:
        perms.append(torch.cat([w // 4 + perms[-1], torch.arange(w // 4), torch.arange(3 * w // 4, w)]))
    for s in (1, 2, 3):
        for i in range(blocks_per_stage):
            p = f"layer{s}.{i}."
            into = perms[max(s - 1 - (i == 0), 0)]  # a stage's first block reads the previous stage
            sd[p + "conv1.weight"] = sd[p + "conv1.weight"].index_select(1, into)
            sd[p + "conv2.weight"] = sd[p + "conv2.weight"].index_select(0, perms[s - 1])
            for t in ("weight", "bias", "running_mean", "running_var"):
                sd[p + "bn2." + t] = sd[p + "bn2." + t].index_select(0, perms[s - 1])
    sd["fc.weight"] = sd["fc.weight"].index_select(1, perms[2])
    return {k: sd[k] if k in sd else torch.zeros((), dtype=torch.long) for k in want}


def published(name: str, *, root: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> Published:
    """A fully trained CIFAR-10 ResNet of :data:`PUBLISHED` (``"resnet20"`` ... ``"resnet56"``),
    trained by a public re-implementation (akamaster/pytorch_resnet_cifar10), not by this book:
    our ``cifar_resnet(depth, shortcut="A")`` holding its weights (:func:`from_akamaster`), in eval
    mode, with the input normalisation it was trained with. The file's sha256 is checked first on
    every load; it is opened with ``weights_only=True``. Files are looked for in
    :func:`published_folders` (``root``: a folder holding ``akamaster-cifar10/``)."""
    from .models.cifar import PAPER_TABLE6_TEST_ERROR, cifar_resnet

    if name not in _PUBLISHED_FILES:
        raise WeightsError(f"unknown published network {name!r}; allowed: {', '.join(PUBLISHED)}")
    filename, digest, error = _PUBLISHED_FILES[name]
    folders = published_folders(root)
    path = next((f / filename for f in folders if (f / filename).is_file()), None)
    if path is None:
        raise WeightsError(f"{filename} is not in {' or '.join(map(str, folders))}; it is vendored in the repository "
                           f"under data/weights/{PUBLISHED_FOLDER}/: run from a clone (or set {WEIGHTS_ENV} to the "
                           f"folder that holds {PUBLISHED_FOLDER}/), or restore it with "
                           f"`git checkout -- data/weights/{PUBLISHED_FOLDER}`")
    got = sha256(path)
    if got != digest:
        raise WeightsError(f"{path} is damaged or altered: sha256 {got[:12]}... instead of {digest[:12]}... (the file "
                           f"published by {PUBLISHED_SOURCE}); only that file is accepted: restore it with "
                           f"`git checkout -- data/weights/{PUBLISHED_FOLDER}`")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
    except Exception as err:  # the checksum matched, so only an incompatible torch can get here
        raise WeightsError(f"{path} (sha256 as published) cannot be read by torch {torch.__version__}: {err}") from err
    depth = int(name.removeprefix("resnet"))
    with torch.random.fork_rng(devices=[]):  # the initialisation is overwritten: leave the global RNG alone
        model = cifar_resnet(depth, shortcut="A")
    model.load_state_dict(from_akamaster(state))
    return Published(name=name, depth=depth, model=model.to(device).eval(), normalize=ChannelNormalize(device=device),
                     published_error=error, paper_error=PAPER_TABLE6_TEST_ERROR[depth], credit=CREDIT, sha256=digest,
                     path=path)
