"""CIFAR-10 as tensors on the training device, with the paper's augmentation done in batches.

Where the data comes from (one setting, :data:`DATA_ENV` or the ``root`` argument), and the data
source name each is recorded under (:data:`SOURCES`):

* nothing set -- torchvision's download of the original CIFAR-10 into the cache directory
  (``cifar10``);
* a folder of the original-pixels copy's checksummed parts (``cifar-10-batches-py.tar.xz.part*``
  with ``SHA256SUMS`` and ``MD5SUMS-extracted``): checked, unpacked once into the cache and checked
  again (``cifar10-original``, see :mod:`resnet_book.cifar_pickles`);
* a ``cifar-10-batches-py`` folder (or its parent) whose files are torchvision's (``cifar10``) or
  the original-pixels copy's (``cifar10-original``); any other files are refused;
* a folder with ``train/<class>/*`` and ``test/<class>/*`` image files: the offline JPEG copy
  (``cifar10-jpeg``) or any other image folder (``cifar10-imagefolder``).

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

from . import cifar_pickles as pk
from ._io import atomic_torch_save

DATA_ENV = "RESNET_BOOK_DATA"
CACHE_ENV = "RESNET_BOOK_CACHE"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp"}
_CACHE_VERSION = 1

#: The data sources a run can be trained on, with the description its record carries.
SOURCES = {
    "cifar10": "CIFAR-10 as torchvision downloads it (original pixels, original order)",
    "cifar10-original": "CIFAR-10 with the original pixels (offline copy); "
                        "image order differs from the original files",
    "cifar10-jpeg": "CIFAR-10 re-encoded as JPEG (lossy offline copy)",
    "cifar10-imagefolder": "a CIFAR-10-shaped image folder (train/<class>/*, test/<class>/*)",
}
_ACCEPTED = (
    "an image folder (train/<class>/*.png|jpg and test/<class>/*), a cifar-10-batches-py folder "
    "(torchvision's files or the original-pixels copy) or its parent, or the folder of the "
    "original-pixels copy's parts (cifar-10-batches-py.tar.xz.part*, SHA256SUMS, MD5SUMS-extracted)"
)


class DataNotFoundError(FileNotFoundError):
    """CIFAR-10 could not be found, checked or downloaded; the message says how to provide it."""


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
    source: str  # a key of SOURCES
    root: str
    classes: tuple[str, ...] = CLASSES
    val_images: Tensor | None = None
    val_labels: Tensor | None = None

    @property
    def description(self) -> str:
        return SOURCES.get(self.source, self.source)

    def describe(self) -> str:
        val = f", {len(self.val_labels)} val" if self.val_labels is not None else ""
        return f"{self.source}: {len(self.train_labels)} train{val}, {len(self.test_labels)} test"


def _progress(total: int, desc: str, unit: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, unit_scale=unit == "B", leave=False, disable=not enabled,
                mininterval=1.0)


# --- image folders

def _is_image_folder(root: Path) -> bool:
    return (root / "train").is_dir() and (root / "test").is_dir()


def _image_folder_source(root: Path) -> str:
    first = root / "train" / CLASSES[0]
    suffixes = {p.suffix.lower() for _, p in zip(range(50), first.iterdir())} if first.is_dir() else set()
    return "cifar10-jpeg" if suffixes and suffixes <= {".jpg", ".jpeg"} else "cifar10-imagefolder"


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


def _decode(files: list[tuple[Path, int]], desc: str = "decoding images", progress: bool = True) -> tuple[Tensor, Tensor]:
    from PIL import Image, UnidentifiedImageError

    images = np.empty((len(files), 32, 32, 3), dtype=np.uint8)
    with _progress(len(files), desc, "img", progress) as bar:
        for i, (path, _) in enumerate(files):
            try:
                with Image.open(path) as im:
                    arr = np.asarray(im.convert("RGB"))
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:  # PIL raises all four
                raise DataNotFoundError(f"{path} is not a readable image ({type(err).__name__}); "
                                        f"replace or remove that file") from None
            if arr.shape != (32, 32, 3):
                raise DataNotFoundError(f"{path} is {arr.shape[1]}x{arr.shape[0]}; CIFAR-10 images are 32x32")
            images[i] = arr
            if i % 500 == 499:
                bar.update(500)
    labels = torch.tensor([lab for _, lab in files], dtype=torch.int64)
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), labels


def _load_cached(cached: Path) -> dict | None:
    if cached.exists():
        try:
            return torch.load(cached, weights_only=True, mmap=True)  # pages are read on use
        except Exception:  # a damaged cache is rebuilt, never trusted
            cached.unlink(missing_ok=True)
    return None


def _load_image_folder(root: Path, progress: bool = True) -> CIFAR10:
    train_files, test_files = _list_split(root, "train"), _list_split(root, "test")
    suffixes = {p.suffix.lower() for p, _ in train_files[:50] + test_files[:50]}
    source = "cifar10-jpeg" if suffixes <= {".jpg", ".jpeg"} else "cifar10-imagefolder"
    key = hashlib.sha1(
        f"{_CACHE_VERSION}|{root.resolve()}|{len(train_files)}|{len(test_files)}|{train_files[-1][0].name}".encode()
    ).hexdigest()[:16]
    cached = cache_dir() / f"{source}-{key}.pt"
    if (t := _load_cached(cached)) is not None:
        return CIFAR10(t["train_images"], t["train_labels"], t["test_images"], t["test_labels"], source, str(root))
    xtr, ytr = _decode(train_files, f"decoding {root.name}/train (once; cached)", progress)
    xte, yte = _decode(test_files, f"decoding {root.name}/test (once; cached)", progress)
    atomic_torch_save({"train_images": xtr, "train_labels": ytr, "test_images": xte, "test_labels": yte}, cached)
    return CIFAR10(xtr, ytr, xte, yte, source, str(root))


# --- cifar-10-batches-py pickles and the original-pixels copy's parts

_IDENTIFIED: dict[tuple, str] = {}


def _stat_key(folder: Path) -> tuple:
    return (str(folder.resolve()), *((n, (folder / n).stat().st_size, (folder / n).stat().st_mtime_ns)
                                     for n in pk.DATA_FILES if (folder / n).is_file()))


def _identify(folder: Path) -> str:
    """The source of a batches folder (MD5s computed once per process for unchanged files)."""
    key = _stat_key(folder)
    if key not in _IDENTIFIED:
        try:
            _IDENTIFIED[key] = pk.identify(folder)
        except pk.ChecksumError as err:
            raise DataNotFoundError(str(err)) from None
    return _IDENTIFIED[key]


def _batches_folder(root: Path) -> Path | None:
    for folder in (root, root / pk.FOLDER):
        if pk.is_batches_folder(folder):
            return folder
    return None


def _unpacked_dest(parts_folder: Path) -> Path:
    sums = b"".join((parts_folder / n).read_bytes() for n in (pk.PARTS_SUMS, pk.EXTRACTED_SUMS)
                    if (parts_folder / n).is_file())
    return cache_dir() / f"cifar10-original-{hashlib.sha1(sums).hexdigest()[:16]}"


def _unpack(parts_folder: Path, progress: bool = True) -> Path:
    dest = _unpacked_dest(parts_folder)
    if (dest / pk.FOLDER).is_dir():
        return dest / pk.FOLDER
    try:
        total = 2 * sum(p.stat().st_size for p in pk.parts(parts_folder))  # checked, then unpacked
        with _progress(total, f"checking and unpacking {parts_folder.name} (once; cached)", "B", progress) as bar:
            return pk.unpack_parts(parts_folder, dest, bar.update)
    except pk.ChecksumError as err:
        raise DataNotFoundError(str(err)) from None


def _batches_cache(folder: Path) -> Path:
    key = hashlib.sha1(f"{_CACHE_VERSION}|{_stat_key(folder)}".encode()).hexdigest()[:16]
    return cache_dir() / f"batches-{key}.pt"


def _load_batches(folder: Path, root: Path) -> CIFAR10:
    """The pickles of ``folder``, identified by their MD5s and decoded once; later loads read the
    cache (keyed by the files' path, size and modification time), which also records the source."""
    cached = _batches_cache(folder)
    if (t := _load_cached(cached)) is None or t.get("source") not in SOURCES:
        source = _identify(folder)
        if pk.class_names(folder) != CLASSES:
            raise DataNotFoundError(f"{folder / pk.META_FILE} does not name CIFAR-10's classes {CLASSES}")
        xtr, ytr, xte, yte = (torch.from_numpy(a) for a in pk.read_batches(folder))
        t = {"train_images": xtr.contiguous(), "train_labels": ytr, "test_images": xte.contiguous(),
             "test_labels": yte, "source": source}
        atomic_torch_save(t, cached)
    return CIFAR10(t["train_images"], t["train_labels"], t["test_images"], t["test_labels"], t["source"], str(root))


def _batches_source(folder: Path) -> str:
    t = _load_cached(_batches_cache(folder))
    return t["source"] if t is not None and t.get("source") in SOURCES else _identify(folder)


def _load_torchvision(root: Path, download: bool) -> CIFAR10:
    from torchvision.datasets import CIFAR10 as TV

    try:
        train = TV(str(root), train=True, download=download)
        test = TV(str(root), train=False, download=download)
    except Exception as err:  # RuntimeError (not found) or URLError (offline)
        raise DataNotFoundError(
            f"CIFAR-10 was not found in the cache ({root}) and could not be downloaded "
            f"({type(err).__name__}: {err}).\n"
            f"Connect to the internet once so torchvision can download it there, or set {DATA_ENV}=FOLDER "
            f"(or pass --data / data_root=) where FOLDER is {_ACCEPTED}."
        ) from err

    def tensors(ds):
        x = torch.from_numpy(np.asarray(ds.data)).permute(0, 3, 1, 2).contiguous()
        return x, torch.tensor(ds.targets, dtype=torch.int64)

    (xtr, ytr), (xte, yte) = tensors(train), tensors(test)
    return CIFAR10(xtr, ytr, xte, yte, "cifar10", str(root))


# --- the one entry point

def _locate(root: str | os.PathLike | None) -> tuple[str, Path]:
    """What ``root`` (else :data:`DATA_ENV`) holds -- ``download``, ``images``, ``parts`` or
    ``batches`` -- and where, without decoding anything; nothing is created on disk."""
    root = root or os.environ.get(DATA_ENV)
    if not root:
        return "download", cache_dir() / "cifar10"
    path = Path(root).expanduser()
    where = f"(set by {DATA_ENV}, --data or data_root=)"
    if not path.exists():
        raise DataNotFoundError(f"data folder {path} does not exist {where}; it must be {_ACCEPTED}. "
                                f"Unset it to use torchvision's download into the cache.")
    if not path.is_dir():
        raise DataNotFoundError(f"{path} is a file, not a folder {where}; the data setting must be {_ACCEPTED}.")
    if _is_image_folder(path):
        return "images", path
    if pk.is_parts_folder(path):
        return "parts", path
    if _batches_folder(path) is not None:
        return "batches", path
    raise DataNotFoundError(f"{path} holds no CIFAR-10 {where}; it must be {_ACCEPTED}.")


def data_source(root: str | os.PathLike | None = None) -> str:
    """The data source (a key of :data:`SOURCES`) that :func:`load_cifar10` would load from
    ``root``, found without decoding the images (a ``cifar-10-batches-py`` folder's MD5s are
    computed, or read from the decoded cache)."""
    kind, path = _locate(root)
    if kind == "download":
        return "cifar10"
    if kind == "images":
        return _image_folder_source(path)
    if kind == "parts":
        unpacked = _unpacked_dest(path) / pk.FOLDER
        return _batches_source(unpacked) if unpacked.is_dir() else "cifar10-original"
    return _batches_source(_batches_folder(path))


def load_cifar10(root: str | os.PathLike | None = None, *, download: bool = True, progress: bool = True) -> CIFAR10:
    """Load CIFAR-10 from ``root``, :data:`DATA_ENV`, or torchvision's download (in that order).

    An explicit folder is never created nor downloaded into; torchvision's download (when
    ``download``) goes only to the cache. ``progress`` shows a progress bar while a copy is
    unpacked or decoded for the first time."""
    kind, path = _locate(root)
    if kind == "download":
        return _load_torchvision(path, download)
    if kind == "images":
        return _load_image_folder(path, progress)
    if kind == "parts":
        return _load_batches(_unpack(path, progress), path)
    return _load_batches(_batches_folder(path), path)


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


def jpeg_round_trip(images: Tensor, quality: int = 75) -> Tensor:
    """Each uint8 image of ``images`` (N x 3 x H x W) encoded as JPEG by Pillow at ``quality`` and
    decoded again: a lossy re-encoding like the one that made the ``cifar10-jpeg`` copy (quality 75;
    that copy's own encoder may differ in detail)."""
    from io import BytesIO

    from PIL import Image

    if not isinstance(images, Tensor) or images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError("jpeg_round_trip needs a uint8 tensor of shape (N, 3, H, W); got "
                         f"{getattr(images, 'dtype', type(images).__name__)} of shape {tuple(getattr(images, 'shape', ()))}")
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 95:
        raise ValueError(f"quality must be an integer from 1 to 95 (Pillow's range); got {quality!r}")
    out = []
    for image in images:
        encoded = BytesIO()
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(encoded, format="JPEG", quality=quality)
        decoded = Image.open(BytesIO(encoded.getvalue())).convert("RGB")
        out.append(torch.from_numpy(np.array(decoded)).permute(2, 0, 1))
    return torch.stack(out)
