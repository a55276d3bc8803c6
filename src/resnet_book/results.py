"""Runs stored as JSON with full provenance: ``data/results/<experiment>/<run_id>.json``.

A record holds the run's config, budget, data source (``cifar10`` or ``cifar10-jpeg``...), device,
torch version, git commit, seed, wall time, throughput, curves and final metrics.  Files are
written atomically (temp file + rename), so an interrupted write never leaves half a record, and
an existing record is never overwritten by accident.
"""
from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ._io import atomic_write

RESULTS_ENV = "RESNET_BOOK_RESULTS"
SCHEMA = 1
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


class ResultsError(OSError):
    """The results directory cannot be used; the message says why."""


def _check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not _SAFE.match(name):
        raise ValueError(f"{kind} {name!r} must be letters, digits and '_.+-' (no slashes or spaces)")
    return name


def results_root(root: str | os.PathLike | None = None) -> Path:
    """``root``, else :data:`RESULTS_ENV`, else the nearest ``data/results`` above the current
    directory (so notebooks in ``notebooks/`` find the repository's), else ``./data/results``."""
    if root:
        return Path(root)
    if os.environ.get(RESULTS_ENV):
        return Path(os.environ[RESULTS_ENV])
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "data" / "results").is_dir():
            return d / "data" / "results"
    return here / "data" / "results"


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically; an unusable folder gives one :class:`ResultsError`."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    try:
        atomic_write(path, write)
    except OSError as err:
        raise ResultsError(f"cannot write results under {path.parent}: {err.strerror or err}") from err


def git_commit() -> tuple[str, bool]:
    """The current commit and whether the tree has uncommitted changes ("unknown" outside git)."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if commit.returncode:
            return "unknown", False
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=10
        )
        return commit.stdout.strip(), bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return "unknown", False


def device_name(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU ({cpu}, {torch.get_num_threads()} threads)"


def provenance(device: torch.device | str) -> dict:
    commit, dirty = git_commit()
    return {
        "device": device_name(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "git_commit": commit,
        "git_dirty": dirty,
    }


def record_path(experiment: str, run_id: str, root: str | os.PathLike | None = None) -> Path:
    return results_root(root) / _check_name("experiment", experiment) / f"{_check_name('run id', run_id)}.json"


def save_run(record: dict, *, root: str | os.PathLike | None = None, overwrite: bool = False) -> Path:
    """Store one run record (it must name its ``experiment`` and ``run_id``)."""
    for key in ("experiment", "run_id", "config", "final", "provenance"):
        if key not in record:
            raise ValueError(f"a run record needs {key!r}")
    path = record_path(record["experiment"], record["run_id"], root)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; a stored run is never overwritten (delete it to re-run)")
    atomic_write_text(path, json.dumps({"schema": SCHEMA, **record}, indent=1, sort_keys=False) + "\n")
    return path


def has_run(experiment: str, run_id: str, root: str | os.PathLike | None = None) -> bool:
    return record_path(experiment, run_id, root).exists()


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


@dataclass
class Runs:
    """The stored runs of one experiment."""

    experiment: str
    records: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def groups(self) -> dict[str, list[dict]]:
        """Runs grouped by their ``label`` (the model/variant, seeds pooled)."""
        out: dict[str, list[dict]] = defaultdict(list)
        for r in self.records:
            out[r.get("label", r["config"]["model"])].append(r)
        return dict(out)

    @property
    def budgets(self) -> set[str]:
        return {r["budget"]["name"] for r in self.records}

    @property
    def sources(self) -> set[str]:
        return {r["data"]["source"] for r in self.records}

    @property
    def devices(self) -> set[str]:
        return {r["provenance"]["device"] for r in self.records}

    def where(self, **match) -> "Runs":
        """Runs whose budget name / data source / label equal the given values."""
        keys = {"budget": lambda r: r["budget"]["name"], "source": lambda r: r["data"]["source"],
                "label": lambda r: r.get("label")}
        unknown = set(match) - set(keys)
        if unknown:
            raise ValueError(f"cannot filter on {sorted(unknown)}; allowed: {', '.join(keys)}")
        return Runs(self.experiment, [r for r in self.records if all(keys[k](r) == v for k, v in match.items())])

    def summary(self, metric: str = "test_error") -> dict[str, dict]:
        """Per label: mean, std and count of a final metric over seeds."""
        out = {}
        for label, rs in self.groups().items():
            vals = [r["final"][metric] for r in rs if metric in r["final"]]
            m, s = mean_std(vals)
            out[label] = {"mean": m, "std": s, "n": len(vals), "seeds": sorted(r["seed"] for r in rs)}
        return out

    def describe(self) -> str:
        """Where these numbers come from, for captions: budget(s), data source(s), device(s)."""
        if not self.records:
            return f"no stored runs for {self.experiment!r}"
        return (f"budget {', '.join(sorted(self.budgets))}; data {', '.join(sorted(self.sources))}; "
                f"device {', '.join(sorted(self.devices))}")


def _scale(budget: dict) -> int:
    """Training images a budget shows the network: iterations x batch size."""
    return int(budget.get("iterations") or 0) * int(budget.get("batch_size") or 0)


def load(experiment: str, *, root: str | os.PathLike | None = None, budget: str = "largest") -> Runs:
    """The stored runs of ``experiment`` (an empty :class:`Runs` if none), from one budget.

    ``budget="largest"`` (the default) keeps the runs of the largest budget (most training images
    seen) that has runs for *every* label stored for the experiment, so that a figure never mixes
    budgets and switches to, say, the ``paper`` runs once each model has at least one; ``"all"``
    keeps every run (seeds of different budgets are then pooled by label); a budget name keeps
    that budget's runs.
    """
    folder = results_root(root) / _check_name("experiment", experiment)
    records = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            records.append(json.loads(path.read_text(encoding="utf-8")))
        except json.JSONDecodeError as err:
            raise ResultsError(f"{path} is not valid JSON ({err}); fix or remove that file") from err
    runs = Runs(experiment, records)
    if budget == "all" or not records:
        return runs
    stored = {r["budget"]["name"]: r["budget"] for r in records}
    if budget != "largest":
        if budget not in stored:
            raise ValueError(f"no runs of {experiment!r} with budget {budget!r}; stored budgets: "
                             f"{', '.join(sorted(stored))} (or 'largest', 'all')")
        return runs.where(budget=budget)
    labels = set(runs.groups())
    for name in sorted(stored, key=lambda n: _scale(stored[n]), reverse=True):
        chosen = runs.where(budget=name)
        if set(chosen.groups()) == labels:
            return chosen
    raise ResultsError(f"no budget of {experiment!r} has runs for every label ({', '.join(sorted(labels))}); "
                       f"load it with budget='all' or a budget name ({', '.join(sorted(stored))})")
