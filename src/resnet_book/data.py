"""CIFAR-10 as tensors on the training device, with the paper's augmentation done in batches.

Where the data comes from (one setting, :data:`DATA_ENV` or the ``root`` argument):

* nothing set -- torchvision's download of the original CIFAR-10 into the cache directory;
* a folder with ``train/<class>/*`` and ``test/<class>/*`` image files (an "image folder", such as
  the offline JPEG copy used in CI, whose results are labelled ``cifar10-jpeg``);
* a folder holding torchvision's ``cifar-10-batches-py``.

Whatever the source, the images are decoded once into a uint8 tensor file in the cache
(:data:`CACHE_ENV`, default ``~/.cache/resnet_book``), so later loads take well under a second.

Training then never touches Python per image: the whole (sub)set lives on the device as one
uint8 tensor, and each batch is drawn, padded, cropped and flipped with batched tensor ops
(the approach of KellerJordan's airbench).  Every batch is a pure function of ``(seed, step)``,
which is what makes a resumed run identical to an uninterrupted one.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ._io import atomic_torch_save

DATA_ENV = "RESNET_BOOK_DATA"
CACHE_ENV = "RESNET_BOOK_CACHE"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}
_CACHE_VERSION = 1


class DataNotFoundError(FileNotFoundError):
    """CIFAR-10 could not be found or downloaded; the message says how to provide it."""


def cache_dir() -> Path:
    """Where decoded datasets (and, by default, checkpoints) are cached."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "resnet_book").expanduser()


@dataclass(frozen=True)
class CIFAR10:
    """CIFAR-10 as uint8 tensors ``(N, 3, 32, 32)`` and int64 labels."""

    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    source: str  # "cifar10" (torchvision), "cifar10-jpeg", or "cifar10-imagefolder"
    root: str
    classes: tuple[str, ...] = CLASSES
    val_images: Tensor | None = None
    val_labels: Tensor | None = None

    def describe(self) -> str:
        val = f", {len(self.val_labels)} val" if self.val_labels is not None else ""
        return f"{self.source}: {len(self.train_labels)} train{val}, {len(self.test_labels)} test"


def _is_image_folder(root: Path) -> bool:
    return (root / "train").is_dir() and (root / "test").is_dir()


def _list_split(root: Path, split: str) -> list[tuple[Path, int]]:
    split_dir = root / split
    found = sorted(d.name for d in split_dir.iterdir() if d.is_dir())
    if tuple(found) != CLASSES:
        raise DataNotFoundError(
            f"{split_dir} must hold one folder per CIFAR-10 class ({', '.join(CLASSES)}); found {found or 'none'}"
        )
    files = []
    for label, cls in enumerate(CLASSES):
        files += [(p, label) for p in sorted((split_dir / cls).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise DataNotFoundError(f"no image files under {split_dir}")
    return files


def _decode(files: list[tuple[Path, int]]) -> tuple[Tensor, Tensor]:
    from PIL import Image

    images = np.empty((len(files), 32, 32, 3), dtype=np.uint8)
    for i, (path, _) in enumerate(files):
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
        if arr.shape != (32, 32, 3):
            raise ValueError(f"{path} is {arr.shape[1]}x{arr.shape[0]}; CIFAR-10 images are 32x32")
        images[i] = arr
    labels = torch.tensor([lab for _, lab in files], dtype=torch.int64)
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), labels


def _load_image_folder(root: Path) -> CIFAR10:
    train_files, test_files = _list_split(root, "train"), _list_split(root, "test")
    suffixes = {p.suffix.lower() for p, _ in train_files[:50] + test_files[:50]}
    source = "cifar10-jpeg" if suffixes <= {".jpg", ".jpeg"} else "cifar10-imagefolder"
    key = hashlib.sha1(
        f"{_CACHE_VERSION}|{root.resolve()}|{len(train_files)}|{len(test_files)}|{train_files[-1][0].name}".encode()
    ).hexdigest()[:16]
    cached = cache_dir() / f"{source}-{key}.pt"
    if cached.exists():
        try:
            t = torch.load(cached, weights_only=True, mmap=True)  # pages are read on use
            return CIFAR10(t["train_images"], t["train_labels"], t["test_images"], t["test_labels"], source, str(root))
        except Exception:  # a damaged cache is rebuilt, never trusted
            cached.unlink(missing_ok=True)
    xtr, ytr = _decode(train_files)
    xte, yte = _decode(test_files)
    atomic_torch_save({"train_images": xtr, "train_labels": ytr, "test_images": xte, "test_labels": yte}, cached)
    return CIFAR10(xtr, ytr, xte, yte, source, str(root))


def _load_torchvision(root: Path, download: bool) -> CIFAR10:
    from torchvision.datasets import CIFAR10 as TV

    try:
        train = TV(str(root), train=True, download=download)
        test = TV(str(root), train=False, download=download)
    except Exception as err:  # RuntimeError (not found) or URLError (offline)
        raise DataNotFoundError(
            f"CIFAR-10 was not found under {root} and could not be downloaded ({type(err).__name__}: {err}).\n"
            f"Provide it in one of these ways:\n"
            f"  * set {DATA_ENV}=/path/to/cifar10 (or pass data=/ --data) pointing at a folder with "
            f"train/<class>/*.png|jpg and test/<class>/*, or one holding torchvision's cifar-10-batches-py;\n"
            f"  * or connect to the internet once so torchvision can download it into {root}."
        ) from err

    def tensors(ds):
        x = torch.from_numpy(np.asarray(ds.data)).permute(0, 3, 1, 2).contiguous()
        return x, torch.tensor(ds.targets, dtype=torch.int64)

    (xtr, ytr), (xte, yte) = tensors(train), tensors(test)
    return CIFAR10(xtr, ytr, xte, yte, "cifar10", str(root))


def load_cifar10(root: str | os.PathLike | None = None, *, download: bool = True) -> CIFAR10:
    """Load CIFAR-10 from ``root``, :data:`DATA_ENV`, or torchvision's download (in that order)."""
    root = root or os.environ.get(DATA_ENV)
    if root:
        path = Path(root).expanduser()
        if _is_image_folder(path):
            return _load_image_folder(path)
        if not path.exists() and not download:
            raise DataNotFoundError(f"data folder {path} does not exist (set by argument or {DATA_ENV})")
        return _load_torchvision(path, download)
    return _load_torchvision(cache_dir() / "cifar10", download)


def balanced_subset(images: Tensor, labels: Tensor, size: int | None, seed: int) -> tuple[Tensor, Tensor]:
    """``size`` images, the same number from each class, chosen with ``seed``; all if ``size`` is None."""
    if size is None or size >= len(labels):
        return images, labels
    if size < 10:
        raise ValueError(f"a subset needs at least one image per class (10); got {size}")
    g = torch.Generator().manual_seed(seed)
    per_class, extra = divmod(size, 10)
    keep = []
    for c in range(10):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        keep.append(idx[: per_class + (1 if c < extra else 0)])
    keep = torch.cat(keep).sort().values
    return images[keep], labels[keep]


def prepare(
    data: CIFAR10,
    *,
    train_size: int | None = None,
    test_size: int | None = None,
    val_size: int = 0,
    seed: int = 0,
) -> CIFAR10:
    """Subsets and an optional held-out validation split (the paper's 45k/5k: ``val_size=5000``).

    The subset and the split are drawn with ``seed`` (class-balanced), independent of the
    training seed, so different training seeds see the same images.
    """
    if val_size < 0 or val_size >= len(data.train_labels):
        raise ValueError(f"val_size must be in [0, {len(data.train_labels)}); got {val_size}")
    xtr, ytr = data.train_images, data.train_labels
    xval = yval = None
    if val_size:
        g = torch.Generator().manual_seed(10_007 + seed)
        perm = torch.randperm(len(ytr), generator=g)
        val_idx, tr_idx = perm[:val_size].sort().values, perm[val_size:].sort().values
        xval, yval = xtr[val_idx], ytr[val_idx]
        xtr, ytr = xtr[tr_idx], ytr[tr_idx]
    xtr, ytr = balanced_subset(xtr, ytr, train_size, seed)
    xte, yte = balanced_subset(data.test_images, data.test_labels, test_size, seed + 1)
    return replace(data, train_images=xtr, train_labels=ytr, test_images=xte, test_labels=yte,
                   val_images=xval, val_labels=yval)


class Normalize:
    """The paper's per-pixel mean subtraction (``"per_pixel"``), or per-channel mean/std
    normalisation (``"per_channel"``), fitted on the training images."""

    MODES = ("per_pixel", "per_channel")

    def __init__(self, train_images: Tensor, mode: str = "per_pixel"):
        if mode not in self.MODES:
            raise ValueError(f"unknown normalisation {mode!r}; allowed: {', '.join(self.MODES)}")
        x = train_images.float() / 255
        self.mode = mode
        if mode == "per_pixel":
            self.mean = x.mean(0, keepdim=True)  # (1, 3, 32, 32)
            self.scale = torch.ones(1, 3, 1, 1)
        else:
            self.mean = x.mean((0, 2, 3), keepdim=True)
            self.scale = 1 / x.std((0, 2, 3), keepdim=True)

    def to(self, device) -> "Normalize":
        self.mean, self.scale = self.mean.to(device), self.scale.to(device)
        return self

    def __call__(self, images_u8: Tensor) -> Tensor:
        return (images_u8.float() / 255 - self.mean) * self.scale


def to_device(t: Tensor, device: torch.device) -> Tensor:
    """A small host tensor on ``device``; on CUDA through pinned memory without waiting for the GPU
    (a plain ``.to("cuda")`` from pageable memory waits for all queued work: a host sync per batch)."""
    if device.type != "cuda":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def random_crop_flip(x: Tensor, generator: torch.Generator, pad: int = 4, flip: bool = True) -> Tensor:
    """Pad ``pad`` pixels of zeros on each side, take a random 32x32 crop and flip half the
    images horizontally (paper Sec. 4.2) -- for the whole batch at once.

    ``x`` is normalised (so zero padding is the mean colour); random numbers come from the CPU
    ``generator`` so they do not depend on the device.
    """
    b, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = to_device(torch.randint(0, 2 * pad + 1, (b,), generator=generator), x.device)
    dx = to_device(torch.randint(0, 2 * pad + 1, (b,), generator=generator), x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    out = padded[torch.arange(b, device=x.device)[:, None, None, None], torch.arange(c, device=x.device)[None, :, None, None], rows, cols]
    if flip:
        mask = to_device(torch.rand(b, generator=generator) < 0.5, x.device)
        out = torch.where(mask[:, None, None, None], out.flip(3), out)
    return out


class TrainBatches:
    """Augmented training batches drawn from tensors resident on ``device``.

    ``batch(step)`` is a pure function of ``(seed, step)``: epochs are shuffled with a generator
    seeded by ``(seed, epoch)`` and augmentation with one seeded by ``(seed, step)``.  Global
    batches are the same in every process; ``rank``/``world_size`` take this process's share.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        normalize: Normalize,
        *,
        batch_size: int,
        seed: int,
        device: torch.device | str = "cpu",
        augment: bool = True,
        rank: int = 0,
        world_size: int = 1,
    ):
        if batch_size < 1 or batch_size % world_size:
            raise ValueError(f"batch_size must be a positive multiple of the world size {world_size}; got {batch_size}")
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.normalize = normalize.to(self.device)
        self.batch_size = min(batch_size, len(labels) - len(labels) % world_size)
        self.steps_per_epoch = max(1, len(labels) // self.batch_size)
        self.seed, self.augment, self.rank, self.world_size = seed, augment, rank, world_size
        self._epoch, self._perm = -1, None

    def _permutation(self, epoch: int) -> Tensor:
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = to_device(torch.randperm(len(self.labels), generator=g), self.device)
            self._epoch = epoch
        return self._perm

    def batch(self, step: int) -> tuple[Tensor, Tensor]:
        epoch, i = divmod(step, self.steps_per_epoch)
        idx = self._permutation(epoch)[i * self.batch_size : (i + 1) * self.batch_size]
        x = self.normalize(self.images[idx])
        if self.augment:
            g = torch.Generator().manual_seed(self.seed * 7_919 + step * 104_729 + 17)
            x = random_crop_flip(x, g)
        y = self.labels[idx]
        if self.world_size > 1:
            share = self.batch_size // self.world_size
            x, y = x[self.rank * share : (self.rank + 1) * share], y[self.rank * share : (self.rank + 1) * share]
        return x, y


def eval_batches(images: Tensor, labels: Tensor, normalize: Normalize, batch_size: int = 1000, device="cpu"):
    """Single centre view (the image itself), normalised, in order."""
    for i in range(0, len(labels), batch_size):
        yield (normalize(images[i : i + batch_size].to(device)), labels[i : i + batch_size].to(device))
