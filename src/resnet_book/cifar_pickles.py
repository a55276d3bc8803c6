"""CIFAR-10's python pickles (torchvision's ``cifar-10-batches-py`` folder): which copies are
accepted, reading them, and unpacking the original-pixels copy from its checksummed parts.

Two copies of the pickles are accepted, told apart by the MD5s of their files:

* ``cifar10`` -- the files as torchvision downloads them (the MD5s torchvision itself checks);
* ``cifar10-original`` -- the offline copy with the original pixels whose image order differs from
  the original files (its MD5s are :data:`ORIGINAL_PIXELS_MD5`; torchvision's check refuses it).

That copy travels as one ``tar.xz`` split into parts (``cifar-10-batches-py.tar.xz.part00``...)
beside a ``SHA256SUMS`` for the parts and an ``MD5SUMS-extracted`` for the unpacked files;
:func:`unpack_parts` checks the parts, unpacks them once (atomically) and checks every file.

The pickles are read here rather than by ``torchvision.datasets.CIFAR10`` (which refuses the
reordered copy), with torchvision's knowledge of the format: ``data`` is an ``(N, 3072)`` uint8
array in channel-major order, ``labels`` a list of ints, unpickled with ``encoding="latin1"``.
A file is only unpickled after its MD5 matched one of the accepted sets.
"""
from __future__ import annotations

import hashlib
import lzma
import os
import pickle
import shutil
import tarfile
import tempfile
from pathlib import Path

import numpy as np

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
DATA_FILES = (*TRAIN_FILES, TEST_FILE, META_FILE)
PARTS_PREFIX = f"{FOLDER}.tar.xz.part"
PARTS_SUMS, EXTRACTED_SUMS = "SHA256SUMS", "MD5SUMS-extracted"


def _torchvision_md5() -> dict[str, str]:
    from torchvision.datasets import CIFAR10 as TV

    return {**dict(TV.train_list), **dict(TV.test_list), TV.meta["filename"]: TV.meta["md5"]}


# the original-pixels copy (../shared/data/cifar10-original, MD5SUMS-extracted)
ORIGINAL_PIXELS_MD5 = {
    "data_batch_1": "8ad97288414404399c0095b02dbf8507",
    "data_batch_2": "b71b2c50c5ebd4e2254fad9753350789",
    "data_batch_3": "d2a569df4cd866bfb701850f118006b4",
    "data_batch_4": "5288e59ecb5f0776d2bc30523ecda7f4",
    "data_batch_5": "7a0dbbf6be1773b2dce5fd8cdb033454",
    "test_batch": "1e51a21714cfe9ddedd7ae3f2c509d92",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}

#: data source -> the MD5 of each data file; a folder must match one set exactly.
KNOWN_COPIES: dict[str, dict[str, str] | None] = {"cifar10": None, "cifar10-original": ORIGINAL_PIXELS_MD5}


class ChecksumError(ValueError):
    """A file's checksum is not the one expected; the message names the file."""


def known_copies() -> dict[str, dict[str, str]]:
    return {src: (md5s if md5s is not None else _torchvision_md5()) for src, md5s in KNOWN_COPIES.items()}


def file_digest(path: Path, algorithm: str, chunk: int = 1 << 20) -> str:
    """The hex digest of ``path``, read in chunks (never the whole file in memory)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_sums(path: Path) -> dict[str, str]:
    """``<digest>  <name>`` lines (sha256sum/md5sum output) as ``{name: digest}``."""
    out = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        digest, _, name = line.strip().partition(" ")
        name = name.strip().lstrip("*")
        if not digest or not name or "/" in name or name.startswith("."):
            raise ChecksumError(f"{path}, line {n}: expected '<digest>  <file name>', got {line!r}")
        out[name] = digest.lower()
    if not out:
        raise ChecksumError(f"{path} lists no files")
    return out


def is_batches_folder(path: Path) -> bool:
    return all((path / name).is_file() for name in (TRAIN_FILES[0], TEST_FILE))


def is_parts_folder(path: Path) -> bool:
    return (path / PARTS_SUMS).is_file() and any(path.glob(f"{PARTS_PREFIX}*"))


def identify(folder: Path) -> str:
    """The data source of a ``cifar-10-batches-py`` folder, from the MD5s of its data files;
    a folder matching no accepted copy gives one :class:`ChecksumError` naming a differing file."""
    missing = [name for name in DATA_FILES if not (folder / name).is_file()]
    if missing:
        raise ChecksumError(f"{folder} lacks {', '.join(missing)}; a {FOLDER} folder holds {', '.join(DATA_FILES)}")
    copies = known_copies()
    found = {name: file_digest(folder / name, "md5") for name in DATA_FILES}
    for source, md5s in copies.items():
        if all(found[name] == md5s[name] for name in DATA_FILES):
            return source
    name = next(n for n in DATA_FILES if all(found[n] != md5s[n] for md5s in copies.values()))
    accepted = "; ".join(f"{src}: {md5s[name]}" for src, md5s in copies.items())
    raise ChecksumError(
        f"{folder / name} has MD5 {found[name]}, which matches no accepted copy of CIFAR-10 ({accepted}). "
        f"Accepted: torchvision's download (source cifar10) or the original-pixels copy (cifar10-original); "
        f"replace the folder with one of them."
    )


def read_batches(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(train_images, train_labels, test_images, test_labels)``: uint8 ``(N, 3, 32, 32)`` and int64."""

    def load(name: str) -> dict:
        with open(folder / name, "rb") as f:
            return pickle.load(f, encoding="latin1")

    def split(names):
        entries = [load(n) for n in names]
        x = np.concatenate([np.asarray(e["data"], dtype=np.uint8).reshape(-1, 3, 32, 32) for e in entries])
        y = np.concatenate([np.asarray(e["labels"] if "labels" in e else e["fine_labels"], dtype=np.int64)
                            for e in entries])
        if len(x) != len(y):
            raise ChecksumError(f"{folder}: {len(x)} images but {len(y)} labels")
        return x, y

    return (*split(TRAIN_FILES), *split((TEST_FILE,)))


def class_names(folder: Path) -> tuple[str, ...]:
    with open(folder / META_FILE, "rb") as f:
        return tuple(pickle.load(f, encoding="latin1")["label_names"])


def parts(folder: Path) -> list[Path]:
    """The parts listed in ``SHA256SUMS``, in order; a listed part that is missing is named."""
    listed = sorted(read_sums(folder / PARTS_SUMS))
    missing = [name for name in listed if not (folder / name).is_file()]
    if missing:
        raise ChecksumError(f"{folder} lacks {', '.join(missing)} (listed in {PARTS_SUMS})")
    return [folder / name for name in listed]


def verify_parts(folder: Path, progress=None) -> list[Path]:
    """Check every part against ``SHA256SUMS``; a damaged part gives one :class:`ChecksumError`."""
    want = read_sums(folder / PARTS_SUMS)
    out = parts(folder)
    for path in out:
        got = file_digest(path, "sha256")
        if got != want[path.name]:
            raise ChecksumError(
                f"{path} is damaged: its SHA256 is {got}, {PARTS_SUMS} says {want[path.name]}. "
                f"Copy that part again from the original."
            )
        if progress:
            progress(path.stat().st_size)
    return out


class _Joined:
    """The parts read one after another, as one file object (for a streaming tar reader)."""

    def __init__(self, paths: list[Path], progress=None):
        self.paths, self.progress, self.f = list(paths), progress, None

    def read(self, n: int = -1) -> bytes:
        out = b""
        while n < 0 or len(out) < n:
            if self.f is None:
                if not self.paths:
                    break
                self.f = open(self.paths.pop(0), "rb")
            block = self.f.read(-1 if n < 0 else n - len(out))
            if not block:
                self.f.close()
                self.f = None
                continue
            out += block
            if self.progress:
                self.progress(len(block))
        return out

    def close(self) -> None:
        if self.f is not None:
            self.f.close()


def verify_extracted(folder: Path, sums: dict[str, str]) -> None:
    for name, md5 in sums.items():
        path = folder / name
        if not path.is_file():
            raise ChecksumError(f"{path} is missing after unpacking (listed in {EXTRACTED_SUMS})")
        got = file_digest(path, "md5")
        if got != md5:
            raise ChecksumError(f"{path} has MD5 {got}, {EXTRACTED_SUMS} says {md5}; the parts do not hold this copy")


def unpack_parts(folder: Path, dest: Path, progress=None) -> Path:
    """Check the parts in ``folder``, join and unpack them into ``dest/cifar-10-batches-py`` (once:
    an existing ``dest`` is reused) and check every unpacked file against ``MD5SUMS-extracted``.

    Unpacking goes to a temporary folder beside ``dest`` that is renamed to ``dest`` only when all
    checks passed, so an interrupted or failed unpack never leaves a folder that looks complete.
    ``progress(n_bytes)`` is called as parts are checked (once) and unpacked (once more).
    """
    if (dest / FOLDER).is_dir():
        return dest / FOLDER
    sums = read_sums(folder / EXTRACTED_SUMS)
    paths = verify_parts(folder, progress)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp"))
    try:
        joined = _Joined(paths, progress)
        try:
            with tarfile.open(fileobj=joined, mode="r|xz", bufsize=1 << 20) as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, EOFError, lzma.LZMAError) as err:
            raise ChecksumError(f"the parts in {folder} do not form a {FOLDER}.tar.xz archive ({err})") from err
        finally:
            joined.close()
        verify_extracted(tmp / FOLDER, sums)
        try:
            os.rename(tmp, dest)
        except OSError:
            if not (dest / FOLDER).is_dir():  # another process finished first: use its copy
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest / FOLDER
