"""Runs stored as JSON with full provenance: ``data/results/<experiment>/<source>/<run_id>.json``.

A record holds the run's config, budget, data source (``cifar10-original``, ``cifar10``,
``cifar10-jpeg`` or ``cifar10-imagefolder``; the folder it is stored in), device, torch version,
git commit, seed, wall time, throughput, curves and final metrics.  Files are written atomically
(temp file + rename), so an interrupted write never leaves half a record, and an existing record
is never overwritten by accident.

Statistics are per (label, budget, data source) and never pool budgets or sources: :func:`load`
picks, for each label, its largest budget and, at that budget, the preferred source
(:data:`SOURCE_PREFERENCE`), unless ``budget=``/``source=`` force one.
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
    n = torch.get_num_threads()
    return f"CPU ({cpu}, {n} thread{'' if n == 1 else 's'})"


def device_label(device: str) -> str:
    """A stored device string as a caption shows it: records written before the plural was fixed
    say ``"1 threads"``."""
    return re.sub(r"\b1 threads\)", "1 thread)", device)


def provenance(device: torch.device | str) -> dict:
    commit, dirty = git_commit()
    return {
        "device": device_name(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "git_commit": commit,
        "git_dirty": dirty,
    }


def record_path(experiment: str, run_id: str, root: str | os.PathLike | None = None, *, source: str) -> Path:
    """Where the run ``run_id`` of ``experiment`` trained on data ``source`` is stored."""
    return (results_root(root) / _check_name("experiment", experiment) / _check_name("data source", source)
            / f"{_check_name('run id', run_id)}.json")


def record_source(record: dict) -> str:
    try:
        return record["data"]["source"]
    except (KeyError, TypeError):
        raise ValueError("a run record needs its data source (record['data']['source'])") from None


def save_run(record: dict, *, root: str | os.PathLike | None = None, overwrite: bool = False) -> Path:
    """Store one run record (it must name its ``experiment``, ``run_id`` and data source)."""
    for key in ("experiment", "run_id", "config", "final", "provenance"):
        if key not in record:
            raise ValueError(f"a run record needs {key!r}")
    path = record_path(record["experiment"], record["run_id"], root, source=record_source(record))
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; a stored run is never overwritten (delete it to re-run)")
    atomic_write_text(path, json.dumps({"schema": SCHEMA, **record}, indent=1, sort_keys=False) + "\n")
    return path


def has_run(experiment: str, run_id: str, root: str | os.PathLike | None = None, *, source: str) -> bool:
    """Whether ``run_id`` of ``experiment`` is stored for data ``source`` (another source's run
    does not count)."""
    return record_path(experiment, run_id, root, source=source).exists()


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def mean_curve(records: list[dict], key: str) -> dict:
    """Mean and sample std over ``records`` (the seeds of one model) of the stored curve ``key``
    (e.g. ``"train_error"``), evaluation by evaluation: ``{"step": [...], "mean": [...],
    "std": [...], "n": number of records}``.  The records must have evaluated at the same steps."""
    if not records:
        raise ValueError(f"mean_curve: no runs given for the curve {key!r}")
    curves = [r["curves"] for r in records]
    missing = [r.get("run_id", "?") for r, c in zip(records, curves) if key not in c]
    if missing:
        raise KeyError(f"mean_curve: runs {missing} have no curve {key!r}; their curves are "
                       f"{', '.join(sorted(curves[0]))}")
    steps = curves[0]["step"]
    if any(c["step"] != steps for c in curves):
        raise ResultsError(f"mean_curve: the runs of {key!r} evaluated at different steps "
                           f"({', '.join(str(r.get('run_id', '?')) for r in records)}); they cannot be averaged")
    stats = [mean_std(list(values)) for values in zip(*(c[key] for c in curves))]
    return {"step": list(steps), "mean": [m for m, _ in stats], "std": [sd for _, sd in stats], "n": len(records)}


#: Budgets from smallest to largest; the default view of a label is its largest budget.
BUDGET_ORDER = ("smoke", "cpu", "paper")
#: Among a label's runs at its largest budget, the data source shown by default.
SOURCE_PREFERENCE = ("cifar10-original", "cifar10", "cifar10-jpeg", "cifar10-imagefolder")


def _budget_rank(budget: dict) -> tuple[int, int]:
    name = budget.get("name")
    return (BUDGET_ORDER.index(name) if name in BUDGET_ORDER else -1, _scale(budget))


def source_rank(source: str) -> tuple[int, str]:
    """Sort key of a data source: :data:`SOURCE_PREFERENCE` first, others after, by name."""
    return (SOURCE_PREFERENCE.index(source) if source in SOURCE_PREFERENCE else len(SOURCE_PREFERENCE), source)


@dataclass
class Runs:
    """The stored runs of one experiment."""

    experiment: str
    records: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self):
        return iter(self.records)

    def __add__(self, other: "Runs") -> "Runs":
        """The runs of both, e.g. ``plain + resnet`` to compare labels across two experiments."""
        if not isinstance(other, Runs):
            return NotImplemented
        return Runs(f"{self.experiment} + {other.experiment}", [*self.records, *other.records])

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
        return {device_label(r["provenance"]["device"]) for r in self.records}

    def basis(self) -> dict[str, dict[str, str]]:
        """Per label, the ``budget`` and data ``source`` its numbers come from (for captions).

        A label whose runs mix budgets or sources (only possible with ``load(..., budget="all")``)
        raises :class:`ResultsError`: its seeds cannot be summarised together."""
        out = {}
        for label, rs in self.groups().items():
            kinds = {(r["budget"]["name"], r["data"]["source"]) for r in rs}
            if len(kinds) > 1:
                raise ResultsError(
                    f"{self.experiment}: runs of {label!r} mix budgets/data sources "
                    f"({', '.join(f'{b} on {s}' for b, s in sorted(kinds))}); statistics never pool them -- "
                    f"pick one with .where(budget=..., source=...) or load(..., budget=..., source=...)")
            (b, src), = kinds
            out[label] = {"budget": b, "source": src}
        return out

    def where(self, **match) -> "Runs":
        """Runs whose budget name / data source / label equal the given values."""
        keys = {"budget": lambda r: r["budget"]["name"], "source": lambda r: r["data"]["source"],
                "label": lambda r: r.get("label")}
        unknown = set(match) - set(keys)
        if unknown:
            raise ValueError(f"cannot filter on {sorted(unknown)}; allowed: {', '.join(keys)}")
        return Runs(self.experiment, [r for r in self.records if all(keys[k](r) == v for k, v in match.items())])

    def summary(self, metric: str = "test_error") -> dict[str, dict]:
        """Per label: mean, std and count of a final metric over seeds, with the ``budget`` and
        data ``source`` they come from (never pooled across either)."""
        basis = self.basis()
        out = {}
        for label, rs in self.groups().items():
            vals = [r["final"][metric] for r in rs if metric in r["final"]]
            m, s = mean_std(vals)
            out[label] = {"mean": m, "std": s, "n": len(vals), "seeds": sorted(r["seed"] for r in rs),
                          **basis[label]}
        return out

    def mean_curve(self, label: str, key: str) -> dict:
        """:func:`mean_curve` of ``label``'s runs (its seeds; never pooled across budgets or data
        sources), with the ``budget`` and ``source`` it comes from."""
        groups = self.groups()
        if label not in groups:
            raise KeyError(f"{self.experiment}: no runs labelled {label!r}; the labels are {sorted(groups)}")
        return {**mean_curve(groups[label], key), **self.basis()[label]}

    def analyses(self, kind: str, label: str) -> list[dict]:
        """The stored ``kind`` analysis (e.g. ``"profile"``, ``"responses"``, ``"lesion"``) of each
        run of ``label`` that has one, in seed order."""
        runs = sorted(self.groups().get(label, []), key=lambda r: r["seed"])
        return [r["analysis"][kind] for r in runs if kind in r.get("analysis", {})]

    def describe(self) -> str:
        """Where these numbers come from, for captions: budget(s), data source(s), device(s);
        when labels differ in budget or source, which label is which."""
        if not self.records:
            return f"no stored runs for {self.experiment!r}"
        text = (f"budget {', '.join(sorted(self.budgets))}; data {', '.join(sorted(self.sources))}; "
                f"device {', '.join(sorted(self.devices))}")
        if len(self.budgets) > 1 or len(self.sources) > 1:
            by: dict[str, list[str]] = defaultdict(list)
            for label, b in self.basis().items():
                by[f"{b['budget']} on {b['source']}"].append(label)
            text += " (" + "; ".join(f"{k}: {', '.join(v)}" for k, v in sorted(by.items())) + ")"
        return text


def _scale(budget: dict) -> int:
    """Training images a budget shows the network: iterations x batch size."""
    return int(budget.get("iterations") or 0) * int(budget.get("batch_size") or 0)


def _read(folder: Path) -> list[dict]:
    """Every record under ``<experiment>/<source>/``; a record in the wrong place is refused."""
    flat = sorted(folder.glob("*.json"))
    if flat:
        raise ResultsError(f"{flat[0]} is stored in the old layout; records live in "
                           f"{folder}/<data source>/<run_id>.json (move it into its source's folder)")
    records = []
    for path in sorted(folder.glob("*/*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ResultsError(f"{path} is not valid JSON ({err}); fix or remove that file") from err
        source = record.get("data", {}).get("source") if isinstance(record, dict) else None
        if source != path.parent.name:
            raise ResultsError(f"{path} records data source {source!r} but is stored under "
                               f"{path.parent.name!r}; move it to {folder}/{source}/")
        records.append(record)
    return records


def load(experiment: str, *, root: str | os.PathLike | None = None, budget: str | None = None,
         source: str | None = None) -> Runs:
    """The stored runs of ``experiment`` (an empty :class:`Runs` if none), one budget and one data
    source per label.

    By default each label is shown at the largest budget it has (``smoke`` < ``cpu`` < ``paper``),
    and, among the data sources it has at that budget, the first of :data:`SOURCE_PREFERENCE`
    (``cifar10-original``, ``cifar10``, ``cifar10-jpeg``, ``cifar10-imagefolder``). Labels may then
    differ in budget or source; :meth:`Runs.basis` (and ``summary``, ``describe``) say which is
    which. ``budget=`` and/or ``source=`` force one (labels without it are left out);
    ``budget="all"`` keeps every run (whose seeds :meth:`Runs.summary` then refuses to pool).
    """
    folder = results_root(root) / _check_name("experiment", experiment)
    runs = Runs(experiment, _read(folder) if folder.is_dir() else [])
    if budget == "all" or not runs.records:
        return runs.where(source=source) if source and budget == "all" else runs
    stored_budgets = sorted(runs.budgets)
    stored_sources = sorted(runs.sources)
    if budget is not None and budget != "largest":
        runs = runs.where(budget=budget)
    if source is not None:
        runs = runs.where(source=source)
    if not runs.records:
        raise ValueError(f"no runs of {experiment!r} with budget {budget or 'any'} and data source {source or 'any'}; "
                         f"stored budgets: {', '.join(stored_budgets)} (or 'all'); "
                         f"stored sources: {', '.join(stored_sources)}")
    keep = []
    for label, rs in runs.groups().items():
        top = max(_budget_rank(r["budget"]) for r in rs)
        at_top = [r for r in rs if _budget_rank(r["budget"]) == top]
        best = min(source_rank(r["data"]["source"]) for r in at_top)
        keep += [r for r in at_top if source_rank(r["data"]["source"]) == best]
    kept = {id(r) for r in keep}
    return Runs(experiment, [r for r in runs.records if id(r) in kept])
