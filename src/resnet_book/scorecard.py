"""The papers' CIFAR-10 claims, checked claim by claim against the stored runs.

A claim is data: which runs it compares and in which direction (:class:`Claim`).  :func:`evaluate`
reads the runs of every budget and data source separately -- a statistic never pools budgets or
sources -- and gives each claim one of five verdicts:

* ``reproduced at paper scale``: at the ``paper`` budget the stored runs cover the claim's whole
  range (every depth it names) and every comparison goes the paper's way by more than seed noise
  (Welch's t beyond the two-sided 5% critical value);
* ``reproduced in part at paper scale``: the same, but for part of the claim's range only (e.g.
  20 against 32 layers of a claim about 20 to 110);
* ``reduced scale only``: not decided (or not run) at the paper budget, but decided the paper's way
  at a reduced budget (``cpu``) -- unless that budget shows the same effect where the paper says
  it is absent (a claim's ``control``, e.g. deeper ResNets training worse too), in which case the
  budget cannot separate the claim from its confound and does not count;
* ``not reproduced``: runs exist and no budget decides the claim the paper's way (or the paper
  budget decides it the other way);
* ``quoted only``: no stored run tests it.

Each verdict names what it rests on (:attr:`Verdict.basis`: labels, budget, data source, seeds)
and carries its evidence: the differences, t statistics, seeds, budgets and data sources, and
what the stored runs do not cover.
"""
from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from . import results, tables
from .models.cifar import PAPER_RESNET110_MEAN_STD, PAPER_TABLE6_TEST_ERROR
from .models.registry import display_name
from .results import mean_std
from .tables import Table

VERDICTS = ("reproduced at paper scale", "reproduced in part at paper scale", "reduced scale only", "not reproduced",
            "quoted only")
SOURCE_PREFERENCE = results.SOURCE_PREFERENCE  # original pixels first

# two-sided 5% critical values of Student's t (standard tables), by degrees of freedom
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042, 60: 2.000}


def t_critical(df: float) -> float:
    """Two-sided 5% critical value of Student's t for ``df`` degrees of freedom, rounded *down* to
    the nearest tabulated df (so the test is, if anything, stricter than 5%)."""
    if not df >= 1:
        raise ValueError(f"degrees of freedom must be at least 1; got {df!r}")
    return _T975[max(k for k in _T975 if k <= df)] if df < 120 else 1.960


@dataclass(frozen=True)
class Welch:
    """Welch's two-sample t test of ``mean(b) - mean(a)`` (unequal variances)."""

    mean_a: float
    std_a: float
    n_a: int
    mean_b: float
    std_b: float
    n_b: int

    @property
    def difference(self) -> float:
        return self.mean_b - self.mean_a

    @property
    def se(self) -> float:
        return math.sqrt(self.std_a ** 2 / self.n_a + self.std_b ** 2 / self.n_b)

    @property
    def t(self) -> float:
        return self.difference / self.se if self.se > 0 else math.copysign(math.inf, self.difference or 1.0)

    @property
    def df(self) -> float:
        """Welch-Satterthwaite degrees of freedom."""
        va, vb = self.std_a ** 2 / self.n_a, self.std_b ** 2 / self.n_b
        if va + vb == 0:
            return math.inf
        return (va + vb) ** 2 / (va ** 2 / (self.n_a - 1) + vb ** 2 / (self.n_b - 1))

    @property
    def significant(self) -> bool:
        return abs(self.t) > t_critical(self.df)


def welch(a: Iterable[float], b: Iterable[float]) -> Welch:
    """Welch's t test of ``mean(b) - mean(a)``; each group needs at least two values."""
    a, b = list(a), list(b)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"Welch's t needs at least two values per group; got {len(a)} and {len(b)}")
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    return Welch(ma, sa, len(a), mb, sb, len(b))


def binomial_se(error: float, n: int) -> float:
    """Standard error of an error rate measured on ``n`` test images (sampling of the test set)."""
    if n < 1 or not 0 <= error <= 1:
        raise ValueError(f"need 0 <= error <= 1 and n >= 1; got {error!r}, {n!r}")
    return math.sqrt(error * (1 - error) / n)


# --- the stored runs, by stratum -----------------------------------------------------------------

def strata(records: Iterable[dict]) -> dict[tuple[str, str], dict[str, list[dict]]]:
    """Complete runs grouped by (budget name, data source), then by label.  A run stored by two
    experiments (the same run id at the same budget and source, e.g. one marked ``reused_from``)
    counts once."""
    out: dict[tuple[str, str], dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    seen = set()
    for r in records:
        key = (r["budget"]["name"], r["data"]["source"], r["run_id"])
        if r.get("status", "complete") != "complete" or key in seen:
            continue
        seen.add(key)
        out[key[:2]][r.get("label", r["config"]["model"])].append(r)
    return {k: dict(v) for k, v in out.items()}


def _response_std(record: dict) -> float | None:
    """Median over a run's 3x3 layers of the std of their responses (paper Fig. 7), if stored."""
    responses = record.get("analysis", {}).get("responses")
    return statistics.median(responses.values()) if responses else None


#: What a claim can compare, per run: final errors in per cent, or a stored analysis.
METRICS = {
    "train_error": lambda r: 100 * r["final"]["train_error"],
    "test_error": lambda r: 100 * r["final"]["test_error"],
    "response_std": _response_std,
}


def _values(runs: list[dict], metric: str) -> list[float]:
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; allowed: {', '.join(METRICS)}")
    return [v for v in (METRICS[metric](r) for r in runs) if v is not None]


@dataclass(frozen=True)
class Comparison:
    """One comparison of a claim at one budget and data source: ``b`` should be lower than ``a``
    (``test.difference < 0``) when the claim holds."""

    a: str
    b: str
    metric: str
    budget: str
    source: str
    test: Welch
    step: int | None = None  # the evaluation step compared (None: the final values)
    values_a: tuple[float, ...] = ()  # the runs' values, in seed order (where the comparison keeps them)
    values_b: tuple[float, ...] = ()

    @property
    def outcome(self) -> str:
        if not self.test.significant:
            return "within noise"
        return "as claimed" if self.test.difference < 0 else "opposite"

    def text(self) -> str:
        unit = " points" if self.metric.endswith("_error") else ""
        return (f"{self.b} − {self.a} = {self.test.difference:+.2f}{unit} (t = {self.test.t:+.1f}, "
                f"{self.test.n_a}+{self.test.n_b} seeds): {self.outcome}")


@dataclass(frozen=True)
class Claim:
    """A claim that some runs end with a lower ``metric`` than others.

    ``pairs``: for each ``(a, b)``, ``b`` ends lower than ``a``; every pair is its own test (e.g.
    ResNet against plain at each depth).  ``chain``: labels in the order in which the claim says
    the metric falls (e.g. plain-56, -44, -32, -20 for the degradation); it is tested end to end,
    between the first and the last label stored at a budget, and each neighbouring pair is shown
    too.  ``experiments`` names the experiments whose stored runs the claim reads.  ``control``: a
    chain of labels that the claim says does *not* behave like ``chain`` (e.g. the ResNets, for the
    degradation of plain nets); at a budget where the control goes the claim's way beyond seed noise
    too, that budget cannot separate the claim from what it shares with the control, and its
    outcome does not count."""

    key: str
    text: str
    where: str
    pairs: tuple[tuple[str, str], ...] = ()
    chain: tuple[str, ...] = ()
    metric: str = "test_error"
    experiments: tuple[str, ...] = ()
    note: str = ""
    control: tuple[str, ...] = ()

    def __post_init__(self):
        if bool(self.pairs) == bool(self.chain):
            raise ValueError(f"claim {self.key!r} needs either pairs or a chain of labels (not both, not neither)")
        if len(self.control) == 1:
            raise ValueError(f"claim {self.key!r}: a control is a chain of at least two labels")


@dataclass(frozen=True)
class ValueClaim:
    """A number the paper reports (its ``value``, or mean ± ``std`` over ``n`` runs) for one label."""

    key: str
    text: str
    where: str
    label: str
    value: float
    std: float = 0.0
    experiments: tuple[str, ...] = ()
    metric: str = "test_error"
    note: str = ""


@dataclass(frozen=True)
class QuotedClaim:
    key: str
    text: str
    where: str
    note: str = ""


@dataclass
class Verdict:
    """A claim's verdict; ``basis`` names what it rests on (labels, budget, data source, seeds), or
    is empty when no stored run tests the claim."""

    claim: Claim | ValueClaim | QuotedClaim
    verdict: str
    evidence: list[str] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    basis: str = ""
    controls: list[Comparison] = field(default_factory=list)
    difference: float | None = None  # a ValueClaim's: our mean minus the paper's value, in points


def _source_for(by_source: dict[str, dict[str, list[dict]]], labels: Iterable[str],
                metric: str = "test_error") -> tuple[str | None, list[str]]:
    """The data source whose runs at one budget cover most of ``labels`` (at least 2 seeds with a
    value of ``metric`` each; ties go to the original pixels first), and the labels it covers, in
    the given order."""
    labels = list(labels)
    best, covered = None, []
    for source in (*SOURCE_PREFERENCE, *sorted(set(by_source) - set(SOURCE_PREFERENCE))):
        groups = by_source.get(source, {})
        have = [label for label in labels if len(_values(groups.get(label, []), metric)) >= 2]
        if len(have) > len(covered):
            best, covered = source, have
    return best, covered


def _by_budget(records: Iterable[dict]) -> dict[str, dict[str, dict[str, list[dict]]]]:
    out: dict[str, dict[str, dict[str, list[dict]]]] = defaultdict(dict)
    for (budget, source), groups in strata(records).items():
        out[budget][source] = groups
    return dict(out)


def _compare(groups, a, b, metric, budget, source) -> Comparison:
    return Comparison(a, b, metric, budget, source, welch(_values(groups[a], metric), _values(groups[b], metric)))


def _basis(comparisons: list[Comparison], budget: str, chain: tuple[str, ...] = ()) -> str:
    """What a budget's comparisons rest on, in a few words: labels, budget, data source, seeds."""
    seeds = {}
    for c in comparisons:
        seeds.setdefault(c.a, c.test.n_a)
        seeds.setdefault(c.b, c.test.n_b)
    labels = (" → ".join(x for x in chain if x in seeds) if chain
              else ", ".join(f"{c.a} vs {c.b}" for c in comparisons))
    counts = sorted(set(seeds.values()))
    sources = ", ".join(sorted({c.source for c in comparisons}))
    return f"{labels} ({budget} budget, {sources}, {' or '.join(map(str, counts))} seeds each)"


def _at_budget(claim: Claim, budget: str, by_source) -> tuple[list[Comparison], str, str, bool] | None:
    """The comparisons of ``claim`` at one budget, their joint outcome, one line of evidence and
    whether they cover the claim's whole range."""
    if claim.chain:
        source, covered = _source_for(by_source, claim.chain, claim.metric)
        if len(covered) < 2:
            return None
        groups = by_source[source]
        steps = [_compare(groups, a, b, claim.metric, budget, source) for a, b in zip(covered, covered[1:])]
        ends = _compare(groups, covered[0], covered[-1], claim.metric, budget, source)
        done = steps if len(covered) == 2 else [ends, *steps]
        outcome = ends.outcome
        if outcome == "as claimed" and any(c.outcome == "opposite" for c in steps):
            outcome = "within noise"
        sources = [source]
        missing = [label for label in claim.chain if label not in covered]
    else:
        done = []
        for a, b in claim.pairs:
            source, covered = _source_for(by_source, (a, b), claim.metric)
            if len(covered) == 2:
                done.append(_compare(by_source[source], a, b, claim.metric, budget, source))
        if not done:
            return None
        outcomes = {c.outcome for c in done}
        outcome = "opposite" if "opposite" in outcomes else "as claimed" if outcomes == {"as claimed"} else "within noise"
        sources = sorted({c.source for c in done})
        missing = [f"{a}/{b}" for a, b in claim.pairs if not any((c.a, c.b) == (a, b) for c in done)]
    text = (f"{budget} budget ({', '.join(sources)}): " + "; ".join(c.text() for c in done)
            + (f"; no runs at this budget for {', '.join(missing)}" if missing else ""))
    return done, outcome, text, not missing


def _confounded(claim: Claim, budget: str, by_source) -> Comparison | None:
    """The end-to-end comparison of ``claim``'s control at this budget if it goes the claim's way
    too (else ``None``)."""
    if not claim.control:
        return None
    found = _at_budget(Claim(claim.key, claim.text, claim.where, chain=claim.control, metric=claim.metric),
                       budget, by_source)
    if not found or found[1] != "as claimed":
        return None
    return found[0][0]


def _evaluate_order(claim: Claim, records: list[dict]) -> Verdict:
    comparisons: list[Comparison] = []
    evidence: list[str] = []
    decided: dict[str, str] = {}  # budget -> "as claimed" / "opposite" / "within noise" / "confounded"
    bases: dict[str, str] = {}
    controls: list[Comparison] = []
    whole_range = False
    budgets = _by_budget(records)
    for budget in sorted(budgets, key=lambda b: (b != "paper", b)):
        found = _at_budget(claim, budget, budgets[budget])
        if found:
            comparisons += found[0]
            decided[budget] = found[1]
            evidence.append(found[2])
            bases[budget] = _basis(found[0], budget, claim.chain)
            whole_range |= budget == "paper" and found[3]
            confound = _confounded(claim, budget, budgets[budget]) if found[1] == "as claimed" else None
            if confound:
                decided[budget] = "confounded"
                controls.append(confound)
                w, unit = confound.test, " points" if claim.metric.endswith("_error") else ""
                evidence.append(f"{budget} budget: not counted, because at this budget the control goes the same way, "
                                f"beyond seed noise ({confound.b} − {confound.a} = {w.difference:+.2f}{unit}, t = "
                                f"{w.t:+.1f}, {w.n_a}+{w.n_b} seeds), so it cannot separate the claim from what the "
                                f"two share")
    reduced = [b for b, v in decided.items() if b != "paper" and v == "as claimed"]
    if not comparisons:
        verdict, basis = "quoted only", ""
    elif decided.get("paper") == "as claimed":
        verdict = "reproduced at paper scale" if whole_range else "reproduced in part at paper scale"
        basis = bases["paper"]
    elif decided.get("paper") != "opposite" and reduced:
        verdict, basis = "reduced scale only", bases[reduced[0]]
    else:
        verdict, basis = "not reproduced", "; ".join(bases.values())
    return Verdict(claim, verdict, evidence, comparisons, basis, controls)


def _evaluate_value(claim: ValueClaim, records: list[dict]) -> Verdict:
    paper = _by_budget(records).get("paper", {})
    source, covered = _source_for(paper, (claim.label,), claim.metric)
    if not covered:
        return Verdict(claim, "quoted only", [f"no {claim.label} runs at the paper budget (reduced-scale errors "
                                               f"are not comparable with the paper's numbers)"])
    values = _values(paper[source][claim.label], claim.metric)
    basis = f"{claim.label} (paper budget, {source}, {len(values)} seeds)"
    mean, std = mean_std(values)
    tolerance = 2 * math.hypot(std, claim.std)
    close = abs(mean - claim.value) <= tolerance
    paper_text = f"{claim.value:.2f}" + (f" ± {claim.std:.2f}" if claim.std else "")
    evidence = [f"paper budget ({source}, {len(values)} seeds): {mean:.2f} ± {std:.2f} against the paper's "
                f"{paper_text}, a difference of {mean - claim.value:+.2f} points "
                f"({'within' if close else 'outside'} twice the combined std, {tolerance:.2f})"]
    return Verdict(claim, "reproduced at paper scale" if close else "not reproduced", evidence, basis=basis,
                   difference=mean - claim.value)


def evaluate(claims, records: Iterable[dict]) -> list[Verdict]:
    """The verdict of every claim, from ``records`` (stored runs of any budgets and sources)."""
    records = list(records)
    out = []
    for claim in claims:
        if isinstance(claim, QuotedClaim):
            out.append(Verdict(claim, "quoted only", [claim.note] if claim.note else []))
            continue
        relevant = [r for r in records if not claim.experiments or r["experiment"] in claim.experiments]
        out.append((_evaluate_order if isinstance(claim, Claim) else _evaluate_value)(claim, relevant))
    return out


def _depths(family: str, depths=(20, 32, 44, 56, 110)) -> tuple[str, ...]:
    return tuple(f"{family}{d}" for d in depths)


_TABLE6 = ("reversal", "table6")
_R110_MEAN, _R110_STD = PAPER_RESNET110_MEAN_STD

# The CIFAR-10 claims of He et al. (2016), Sec. 4.2, and one of the follow-up (He et al. 2016b).
CLAIMS = (
    Claim("degradation", "Deeper plain networks have higher training error", "Sec. 4.2, Fig. 6 left",
          chain=_depths("plain")[::-1], metric="train_error", experiments=("degradation", "reversal", "table6"),
          control=_depths("resnet", (20, 32, 44, 56))[::-1]),
    Claim("residual-trains-better", "At equal depth the ResNet has lower training error than the plain net",
          "Sec. 4.2, Fig. 6 left vs middle", pairs=tuple((f"plain{d}", f"resnet{d}") for d in (20, 32, 44, 56, 110)),
          metric="train_error", experiments=("degradation", "reversal", "table6")),
    Claim("deeper-resnets-better", "Deeper ResNets have lower test error", "Table 6, Fig. 6 middle",
          chain=_depths("resnet"), metric="test_error", experiments=_TABLE6),
    Claim("responses-smaller", "ResNets have smaller layer responses than plain nets of the same depth",
          "Sec. 4.2, Fig. 7", pairs=tuple((f"plain{d}", f"resnet{d}") for d in (20, 56, 110)), metric="response_std",
          experiments=("degradation", "reversal", "table6"),
          note="per run, the median over its 3x3 layers of the response std (after BN, before ReLU/addition)"),
    Claim("deeper-smaller-responses", "Deeper ResNets have smaller layer responses", "Sec. 4.2, Fig. 7",
          chain=("resnet20", "resnet56", "resnet110"), metric="response_std", experiments=_TABLE6),
    ValueClaim("resnet20", "ResNet-20 test error 8.75%", "Table 6", "resnet20", 8.75, experiments=_TABLE6),
    ValueClaim("resnet32", "ResNet-32 test error 7.51%", "Table 6", "resnet32", 7.51, experiments=_TABLE6),
    ValueClaim("resnet44", "ResNet-44 test error 7.17%", "Table 6", "resnet44", 7.17, experiments=_TABLE6),
    ValueClaim("resnet56", "ResNet-56 test error 6.97%", "Table 6", "resnet56", 6.97, experiments=_TABLE6),
    ValueClaim("resnet110", f"ResNet-110 test error {_R110_MEAN:.2f} ± {_R110_STD:.2f}% (mean of 5 runs; the best "
               f"run {PAPER_TABLE6_TEST_ERROR[110]:.2f}%)", "Table 6", "resnet110", _R110_MEAN, std=_R110_STD,
               experiments=_TABLE6),
    QuotedClaim("resnet1202", "ResNet-1202: training error below 0.1%, test error 7.93% (overfitting)",
                "Table 6, Fig. 6 right", "one run in the paper; none stored here"),
    QuotedClaim("imagenet-depth", "ImageNet: plain-34 has higher error than plain-18, ResNet-34 lower than ResNet-18",
                "Table 2, Fig. 4", "ImageNet is not trained here (chapter 6 quotes the tables)"),
    QuotedClaim("imagenet-152", "ImageNet: ResNet-152 reaches 19.38% top-1 / 4.49% top-5 (single model); an ensemble "
                "3.57% top-5 on the test set", "Tables 4 and 5", "ImageNet is not trained here"),
    Claim("preactivation", "The pre-activation unit has lower test error than the original unit",
          "Identity Mappings, Table 3: ResNet-110 6.61 → 6.37%", pairs=(("resnet56", "preresnet56"),),
          metric="test_error", experiments=("preactivation",),
          note="the follow-up's numbers are for ResNet-110 and -164; ours are ResNet-56"),
)


#: CIFAR-10's full training and test sets; smaller sizes are subsets drawn by index.
FULL_SETS = {"train_size": 50_000, "test_size": 10_000}


def source_effects(records: Iterable[dict], *, budget: str, reference: str = "cifar10-jpeg",
                   metrics: tuple[str, ...] = ("test_error", "train_error")) -> list[Comparison]:
    """The same configurations trained on ``reference`` and on another data source at one budget:
    for every label with at least two seeds on both, the difference other − reference (Welch's t).
    Runs of all experiments are grouped together by :func:`strata`, so a run that several
    experiments store (the ResNet-56 that ``preactivation`` and ``zero-init`` reuse from
    ``reversal``) counts once; nothing is pooled across sources or budgets.

    Only runs on the full training and test sets can be compared across copies: the copies store
    the images in different orders, so a subset drawn by index (the ``cpu`` budget's 5,000
    training and 1,000 test images) holds different images on each copy (about as many shared as
    chance gives).  Runs on subsets raise :class:`ValueError`."""
    groups = strata(records)
    subsets = sorted({r["data"].get(k) for (b, _), labels in groups.items() if b == budget
                      for rs in labels.values() for r in rs for k, n in FULL_SETS.items()
                      if r["data"].get(k, n) < n})
    if subsets:
        raise ValueError(f"runs at the {budget!r} budget train or test on subsets ({', '.join(map(str, subsets))} "
                         f"images) drawn by index, which hold different images on each data copy; compare "
                         f"copies only with runs on the full sets (50,000 / 10,000 images)")
    base = groups.get((budget, reference), {})
    out = []
    for (b, source), other in sorted(groups.items()):
        if b != budget or source == reference:
            continue
        for label in sorted(set(base) & set(other)):
            for metric in metrics:
                x, y = _values(base[label], metric), _values(other[label], metric)
                if len(x) >= 2 and len(y) >= 2:
                    out.append(Comparison(f"{label} on {reference}", f"{label} on {source}", metric, budget,
                                          source, welch(x, y)))
    return out


def curve_order(runs: "results.Runs", pairs: Iterable[tuple[str, str]],
                metrics: Iterable[str] = ("train_error", "test_error")) -> tables.Table:
    """For each pair of labels ``(a, b)``: at how many of the evaluations the mean curve over seeds
    of ``a`` is below that of ``b``, for each metric."""
    metrics = list(metrics)
    rows = []
    for a, b in pairs:
        row = [display_name(a), display_name(b)]
        for key in metrics:
            low, high = runs.mean_curve(a, key)["mean"], runs.mean_curve(b, key)["mean"]
            row.append(f"{sum(x < y for x, y in zip(low, high))} of {len(low)}")
        rows.append(row)
    names = {"train_error": "training error", "test_error": "test error"}
    return tables.Table(["mean error of", "below that of", *(f"{names.get(m, m)}: at evaluations" for m in metrics)], rows,
                 caption="Mean curves over the seeds, compared evaluation by evaluation", note=runs.describe())


class Report:
    """Verdicts as a readable list: Markdown in a notebook or the book, plain text elsewhere."""

    def __init__(self, verdicts: list[Verdict]):
        self.verdicts = verdicts

    def __getitem__(self, key: str) -> Verdict:
        for v in self.verdicts:
            if v.claim.key == key:
                return v
        raise KeyError(f"no claim {key!r}; the claims are {', '.join(v.claim.key for v in self.verdicts)}")

    def facts(self) -> dict[str, str]:
        """Numbers the prose quotes, by name: per claim and budget the smallest and largest
        difference of its comparisons (``<claim>-<budget>-min`` / ``-max``, points, sign dropped),
        a control that went the claim's way (``<claim>-<budget>-control`` and ``-control-t``), and
        our paper-budget mean minus the paper's number (``<claim>-gap``, points, signed)."""
        out = {}
        for v in self.verdicts:
            if v.difference is not None:
                out[f"{v.claim.key}-gap"] = f"{v.difference:+.1f}"
            for budget in sorted({c.budget for c in v.comparisons}):
                sizes = [abs(c.test.difference) for c in v.comparisons if c.budget == budget]
                out[f"{v.claim.key}-{budget}-min"], out[f"{v.claim.key}-{budget}-max"] = (
                    f"{min(sizes):.1f}", f"{max(sizes):.1f}")
            for c in v.controls:
                out[f"{v.claim.key}-{c.budget}-control"] = f"{abs(c.test.difference):.1f}"
                out[f"{v.claim.key}-{c.budget}-control-t"] = f"{abs(c.test.t):.1f}"
        return out

    def counts(self) -> dict[str, int]:
        return {v: sum(x.verdict == v for x in self.verdicts) for v in VERDICTS}

    def _lines(self, bold: str, italic: str) -> list[str]:
        lines = []
        for v in self.verdicts:
            on = f", on {v.basis}" if v.basis else ""
            lines.append(f"- {bold}{v.claim.text}{bold} ({v.claim.where}): {italic}{v.verdict}{italic}{on}")
            lines += [f"  - {e}" for e in v.evidence]
            if getattr(v.claim, "note", "") and v.claim.note not in v.evidence:
                lines.append(f"  - note: {v.claim.note}")
        return lines

    def _repr_markdown_(self) -> str:
        return "\n".join(self._lines("**", "*")).replace("|", "\\|")

    def __str__(self) -> str:
        return "\n".join(self._lines("", ""))

    __repr__ = __str__


def shared_source(*runs: "results.Runs", budget: str) -> str | None:
    """The data source (first in :data:`SOURCE_PREFERENCE`) on which *every* label of every given
    :class:`~resnet_book.results.Runs` has at least one run at ``budget``, so that a comparison
    between them (e.g. plain against ResNet at each depth) never crosses sources; ``None`` if
    there is none.  Pass runs loaded with ``budget="all"``."""
    labels = [(r, set(r.where(budget=budget).groups())) for r in runs]
    if not any(found for _, found in labels):
        return None
    for source in (*SOURCE_PREFERENCE, *sorted({s for r in runs for s in r.sources} - set(SOURCE_PREFERENCE))):
        if all(found <= set(r.where(budget=budget, source=source).groups()) for r, found in labels):
            return source
    return None


# --- the chapters' comparisons of stored runs, as tables ------------------------------------------

def first_below(record: dict, level: float = 0.85, key: str = "train_error") -> int | None:
    """The first evaluation step at which a run's stored curve ``key`` is below ``level`` (``None``
    if it never is): how long a run stays near chance (90% error on CIFAR-10)."""
    return next((s for s, e in zip(record["curves"]["step"], record["curves"][key]) if e < level), None)


def _at(record: dict, metric: str, step: int | None) -> float:
    """A run's ``metric`` in per cent, final (``step=None``) or at the stored evaluation ``step``."""
    if step is None:
        return 100 * record["final"][metric]
    steps = record["curves"]["step"]
    if step not in steps:
        raise ValueError(f"run {record.get('run_id', '?')} was not evaluated at step {step}; its steps run "
                         f"from {steps[0]} to {steps[-1]}")
    return 100 * record["curves"][metric][steps.index(step)]


def compare_labels(runs: "results.Runs", pairs, *, metrics=("train_error", "test_error"),
                   steps=(None,)) -> list[Comparison]:
    """Welch's t of ``b`` against ``a`` for each ``(a, b)`` in ``pairs`` (labels of ``runs``, one
    budget and data source each), for each metric and each evaluation step (``None``: the final
    value).  Pairs missing from ``runs`` are skipped; a pair across budgets or sources is refused."""
    groups, basis = runs.groups(), runs.basis()
    out = []
    for a, b in pairs:
        if a not in groups or b not in groups:
            continue
        if basis[a] != basis[b]:
            raise ValueError(f"{a} ({basis[a]['budget']} on {basis[a]['source']}) and {b} ({basis[b]['budget']} "
                             f"on {basis[b]['source']}) differ in budget or data source; compare within one")
        ra, rb = (sorted(groups[x], key=lambda r: r["seed"]) for x in (a, b))
        for step in steps:
            for metric in metrics:
                va, vb = tuple(_at(r, metric, step) for r in ra), tuple(_at(r, metric, step) for r in rb)
                out.append(Comparison(a, b, metric, basis[a]["budget"], basis[a]["source"], welch(va, vb), step, va, vb))
    return out


def comparison_table(comparisons: list[Comparison], *, caption: str = "", note: str = ""):
    """One row per comparison 'first − second' (``b − a``): (at which iteration,) which error (the
    runs' stored running training error or their test error), both means ± std over seeds, the
    difference in points, marked * when beyond seed noise (Welch's t, two-sided 5%), and t."""
    with_steps = any(c.step is not None for c in comparisons)
    rows = []
    for c in comparisons:
        w = c.test
        row = [f"{display_name(c.b)} − {display_name(c.a)}"]
        row += [f"{c.step:,}" if c.step is not None else "end"] if with_steps else []
        row += [c.metric.split("_")[0], f"{w.mean_b:.2f} ± {w.std_b:.2f}", f"{w.mean_a:.2f} ± {w.std_a:.2f}",
                f"{w.difference:+.2f}{'*' if w.significant else ''}", f"{w.t:+.1f}"]
        rows.append(row)
    columns = ["comparison", *(["iteration"] if with_steps else []), "error", "first (%)", "second (%)",
               "difference (points)", "Welch t"]
    seeds = sorted({f"{c.test.n_a}+{c.test.n_b}" for c in comparisons})
    default = (f"difference = first − second; * beyond seed noise (Welch's t, two-sided 5%; seeds "
               f"{', '.join(seeds)})")
    return Table(columns, rows, caption=caption, note="; ".join(filter(None, [default, note])))


def comparison_facts(comparisons: list[Comparison]) -> dict[str, str]:
    """The numbers of :func:`comparison_table` for the prose (``tables.glue``): per comparison
    ``<b>-<a>-<train|test>[-<step>]`` with suffixes ``-diff`` (points, signed), ``-t`` and
    ``-noise`` ('beyond' or 'within'), ``-first`` / ``-second`` (each run's value in seed order, %,
    one decimal: '61.8, 65.2, 68.3', of ``b`` and of ``a``), ``-std-first`` / ``-std-second`` (%,
    one decimal) and ``-apart`` ('yes' when every run of one ends below every run of the other)."""
    out = {}
    for c in comparisons:
        key = f"{c.b}-{c.a}-{c.metric.split('_')[0]}" + (f"-{c.step}" if c.step is not None else "")
        out |= {f"{key}-diff": f"{c.test.difference:+.2f}", f"{key}-t": f"{c.test.t:+.1f}",
                f"{key}-noise": "beyond" if c.test.significant else "within",
                f"{key}-std-first": f"{c.test.std_b:.1f}", f"{key}-std-second": f"{c.test.std_a:.1f}"}
        if c.values_a and c.values_b:
            apart = max(c.values_b) < min(c.values_a) or max(c.values_a) < min(c.values_b)
            out |= {f"{key}-first": ", ".join(f"{v:.1f}" for v in c.values_b),
                    f"{key}-second": ", ".join(f"{v:.1f}" for v in c.values_a), f"{key}-apart": "yes" if apart else "no"}
    return out


def _labels(runs_list) -> list[tuple[str, list[dict], dict]]:
    """(label, runs, basis) of every label of the given Runs, families in the order given, depths
    ascending; all of one budget and data source, or refused."""
    out = []
    for runs in runs_list:
        groups, basis = runs.groups(), runs.basis()
        out += [(label, groups[label], basis[label])
                for label in sorted(groups, key=lambda lab: (int("".join(filter(str.isdigit, lab)) or 0), lab))]
    kinds = {(b["budget"], b["source"]) for _, _, b in out}
    if len(kinds) > 1:
        raise ValueError(f"these runs mix budgets or data sources ({', '.join(f'{b} on {s}' for b, s in sorted(kinds))}); "
                         f"a table of final errors shows one of each")
    return out


def final_table(*runs: "results.Runs", first_below_level: float | None = None, caption: str = ""):
    """Final running training error and test error (mean ± std over seeds, %) of every label of
    the given runs (one budget and data source), and, with ``first_below_level``, the first
    evaluation at which each seed's running training error fell below that level."""
    rows = []
    for label, rs, _ in _labels(runs):
        row = [display_name(label)]
        for metric in ("train_error", "test_error"):
            row.append(tables.mean_std(dict(zip(("mean", "std"), results.mean_std([r["final"][metric] for r in rs])), n=len(rs))))
        if first_below_level is not None:
            row.append(", ".join(str(first_below(r, first_below_level)) for r in sorted(rs, key=lambda r: r["seed"])))
        rows.append(row)
    columns = ["network", "train error (%)", "test error (%)"]
    if first_below_level is not None:
        columns.append(f"first below {100 * first_below_level:.0f}% train error, per seed")
    note = ("final values, mean ± std over seeds; train error: the running training error (training mode, "
            "augmented mini-batches, mean over the last evaluation interval)")
    return Table(columns, rows, caption=caption, note="; ".join([note, *dict.fromkeys(r.describe() for r in runs)]))


def final_facts(*runs: "results.Runs", first_below_level: float = 0.85) -> dict[str, str]:
    """The numbers of :func:`final_table` for the prose: per label ``<label>-train`` and
    ``<label>-test`` (mean, %, one decimal), ``<label>-first`` (per seed, in seed order) and
    ``<label>-seeds``."""
    out = {}
    for label, rs, _ in _labels(runs):
        for metric in ("train_error", "test_error"):
            out[f"{label}-{metric.split('_')[0]}"] = f"{100 * results.mean_std([r['final'][metric] for r in rs])[0]:.1f}"
        out[f"{label}-first"] = ", ".join(str(first_below(r, first_below_level))
                                          for r in sorted(rs, key=lambda r: r["seed"]))
        out[f"{label}-seeds"] = str(len(rs))
    return out


def _gaps(plain: "results.Runs", resnet: "results.Runs", depths, metric: str) -> dict[int, tuple]:
    """Per depth stored in both families: (plain runs, ResNet runs, plain mean − ResNet mean in points)."""
    p, r = plain.groups(), resnet.groups()
    _labels([plain, resnet])  # one budget and data source, or refused
    out = {}
    for d in depths:
        a, b = p.get(f"plain{d}"), r.get(f"resnet{d}")
        if a and b:
            va, vb = [100 * x["final"][metric] for x in a], [100 * x["final"][metric] for x in b]
            out[d] = (va, vb, results.mean_std(va)[0] - results.mean_std(vb)[0])
    return out


def family_gap_table(plain: "results.Runs", resnet: "results.Runs", depths=(20, 32, 44, 56), *,
                     metric: str = "train_error"):
    """Plain against ResNet at each depth (one budget and data source): final ``metric`` of each
    family (mean ± std over seeds, %) and plain − ResNet in points."""
    word = metric.split("_")[0]
    rows = []
    for d, (va, vb, gap) in _gaps(plain, resnet, depths, metric).items():
        (ma, sa), (mb, sb) = results.mean_std(va), results.mean_std(vb)
        rows.append([d, f"{ma:.1f} ± {sa:.1f}", f"{mb:.1f} ± {sb:.1f}", f"{gap:+.1f}"])
    return Table(["depth", f"plain: {word} error (%)", f"ResNet: {word} error (%)", "plain − ResNet (points)"], rows,
                 note=f"final values, mean ± std over seeds (train error: the running training error); {plain.describe()}")


def family_gap_facts(plain: "results.Runs", resnet: "results.Runs", depths=(20, 32, 44, 56), *,
                     metric: str = "train_error") -> dict[str, str]:
    """The numbers of :func:`family_gap_table` for the prose: ``gap-min`` and ``gap-max`` (points),
    ``gap-argmax`` and ``gap-argmin`` (depths), ``every-resnet-below`` ('yes' when every ResNet run
    ends below every plain run of its depth), and ``plain-change`` / ``resnet-change``: the mean's
    change from the shallowest to the deepest depth stored (signed points)."""
    gaps = _gaps(plain, resnet, depths, metric)
    if not gaps:
        raise ValueError("no depth is stored for both families")
    by = {d: g for d, (_, _, g) in gaps.items()}
    lo, hi = min(gaps), max(gaps)
    change = {fam: results.mean_std(gaps[hi][i])[0] - results.mean_std(gaps[lo][i])[0]
              for i, fam in ((0, "plain"), (1, "resnet"))}
    return {"gap-min": f"{min(by.values()):.0f}", "gap-max": f"{max(by.values()):.0f}",
            "gap-argmax": str(max(by, key=by.get)), "gap-argmin": str(min(by, key=by.get)),
            "every-resnet-below": "yes" if all(max(vb) < min(va) for va, vb, _ in gaps.values()) else "no",
            "plain-change": f"{change['plain']:+.1f}", "resnet-change": f"{change['resnet']:+.1f}"}


# --- the chapter's tables ------------------------------------------------------------------------

def test_set_noise(levels: dict[str, tuple[int, float]]) -> Table:
    """Per budget name, ``(test images, error rate)``: the binomial standard error of that error
    rate as an estimate of the error on the full test set."""
    rows = [[budget, n, f"{100 * error:.0f}%", f"±{100 * binomial_se(error, n):.1f} points"]
            for budget, (n, error) in levels.items()]
    return Table(["budget", "test images", "at an error of", "standard error"], rows, align="lrrr",
                 caption="Sampling noise of a test error measured on a fixed set of images (binomial)")


def _depth_key(label: str) -> tuple[str, int, str]:
    """'plain20' before 'plain110': family, then depth."""
    digits = "".join(ch if ch.isdigit() else " " for ch in label).split()
    return label.rstrip("0123456789-"), int(digits[0]) if digits else 0, label


def _cell(summary: dict | None, digits: int, seeds: int | None) -> str | None:
    text = tables.mean_std(summary, digits=digits)
    return text if summary is None or summary["n"] == seeds else f"{text} (n={summary['n']})"


def table6_beside_ours(*runs: "results.Runs", paper_table: dict[int, float],
                       budgets: tuple[str, ...] = ("paper", "cpu")) -> Table:
    """The paper's Table 6 (``paper_table``: depth -> test error, %) beside our test errors at each
    budget, mean ± std over seeds.  Each budget is one column on one data copy, the first of
    :data:`SOURCE_PREFERENCE` that every label stored at that budget has (:func:`shared_source`);
    ``runs``: the experiments' runs loaded with ``budget="all"`` (e.g. ``reversal`` and
    ``degradation``).  Plain nets have no Table 6 entry (the paper shows them in Fig. 6)."""
    mean, std = PAPER_RESNET110_MEAN_STD
    records = [r for rs in runs for r in rs]
    columns, sources = {}, {}
    for b in budgets:
        sources[b] = shared_source(*runs, budget=b)
        at = results.Runs("table6", [r for r in records if r["budget"]["name"] == b and r["data"]["source"] == sources[b]])
        columns[b] = at.summary("test_error") if len(at) else {}
    seeds = {b: statistics.mode([s["n"] for s in col.values()]) if col else None for b, col in columns.items()}
    rows = []
    for family in ("resnet", "plain"):
        for depth, paper in paper_table.items():
            label = f"{family}{depth}"
            ours = [_cell(columns[b].get(label), 2 if b == "paper" else 1, seeds[b]) for b in budgets]
            if family == "plain" and not any(ours):
                continue
            paper_text = ("– (Fig. 6)" if family == "plain" else
                          f"{paper:.2f} best of 5; {mean:.2f} ± {std:.2f} mean" if depth == 110 else f"{paper:.2f}")
            rows.append([f"{'ResNet' if family == 'resnet' else 'plain'}-{depth}", paper_text, *ours])
    headers = [f"ours, {b} budget, {sources[b] or 'no runs'}" for b in budgets]
    n_text = "; ".join(f"{b}: {n} seeds" for b, n in seeds.items() if n)
    return Table(["network", "paper, Table 6", *headers], rows, align="ll" + "r" * len(budgets),
                 caption="CIFAR-10 test error (%): the paper's Table 6 and our runs, mean ± std over seeds",
                 note=f"Seeds per cell ({n_text}) unless marked n=. The paper trains and tests on the original "
                      f"CIFAR-10, all 50,000 training images and all 10,000 test images; our cpu budget tests on "
                      f"1,000. –: no stored runs.")


def stored_runs_table(names: Iterable[str], *, budget: str, source: str, root=None) -> Table:
    """Every given experiment's stored runs at one budget on one data copy: mean ± std of the
    final training and test error over seeds, per label."""
    rows = []
    for name in names:
        runs = results.load(name, budget="all", root=root).where(budget=budget, source=source)
        train, test = runs.summary("train_error"), runs.summary("test_error")
        rows += [[name, label, tables.mean_std(train[label]), tables.mean_std(test[label]), train[label]["n"]]
                 for label in sorted(train, key=_depth_key)]
    return Table(["experiment", "run", "final train error (%)", "final test error (%)", "seeds"], rows,
                 align="llrrr", caption=f"Every stored run at the {budget} budget on {source}, mean ± std over seeds",
                 empty=f"No stored runs at the {budget} budget on {source}.")


def pairs_table(pairs: Iterable[tuple[str, str, str, str]], *, budget: str, source: str,
                metrics: tuple[str, ...] = ("train_error", "test_error"), root=None) -> Table:
    """Welch's t for pairs ``(experiment a, label a, experiment b, label b)`` at one budget on one
    data copy: b − a in points of each final error; pairs with fewer than two seeds on either
    side are left out."""
    pairs = list(pairs)
    loaded = {e: results.load(e, budget="all", root=root).where(budget=budget, source=source)
              for e in dict.fromkeys(e for ea, _, eb, _ in pairs for e in (ea, eb))}  # each experiment once
    rows = []
    for ea, a, eb, b in pairs:
        ra, rb = (loaded[e].where(label=x).records for e, x in ((ea, a), (eb, b)))
        for metric in metrics:
            va, vb = _values(ra, metric), _values(rb, metric)
            if len(va) >= 2 and len(vb) >= 2:
                w = welch(va, vb)
                rows.append([f"{b} − {a}", metric.replace("_error", ""), f"{w.difference:+.1f}", f"{w.t:+.1f}",
                             f"{w.n_a}+{w.n_b}", "beyond" if w.significant else "within"])
    return Table(["b − a", "final error", "points", "Welch t", "seeds", "seed noise"], rows, align="llrrrl",
                 caption=f"Pairs of configurations at the {budget} budget on {source}: b − a in points of final error")


def final_errors_by_copy(models: dict[str, str], *, yours: Iterable[dict] = (), metric: str = "train_error",
                         root=None) -> Table:
    """For each model (``label -> experiment`` that stores it): the final ``metric`` of every stored
    run, one row per budget and data copy, then the runs in ``yours`` (e.g. your own results
    folder) of that model, so that no row mixes budgets or copies."""
    rows = []
    yours = list(yours)
    for label, experiment in models.items():
        for whose, records in (("stored", results.load(experiment, budget="all", root=root).where(label=label)),
                               ("yours", [r for r in yours if r.get("label") == label])):
            for (budget, source), groups in sorted(strata(records).items(), key=lambda kv: kv[0][0] != "cpu"):
                values = sorted(_values(groups[label], metric))
                rows.append([label, whose, budget, source, ", ".join(f"{v:.1f}" for v in values)])
    return Table(["model", "runs", "budget", "data copy", f"final {metric.replace('_', ' ')} (%), each run"], rows,
                 align="lllll", caption=f"Final {metric.replace('_', ' ')} of every run, by budget and data copy")


def load_shared(*experiments: str, budget: str, root=None) -> tuple["results.Runs", ...]:
    """The stored ``budget`` runs of each experiment, all from the one data source every label of
    every experiment has (:func:`shared_source`), so that they compare on the same images."""
    everything = [results.load(e, budget="all", root=root) for e in experiments]
    source = shared_source(*everything, budget=budget)
    if source is None:
        raise ValueError(f"no data source holds {budget!r} runs of every label of {', '.join(experiments)}")
    return tuple(results.load(e, budget=budget, source=source, root=root) for e in experiments)


def seed_differences(reference: tuple["results.Runs", str], others: dict[str, tuple["results.Runs", str]],
                     metric: str = "train_error") -> dict[str, dict[int, float]]:
    """Per named (runs, label): ``metric`` minus the reference label's, seed by seed (seeds both
    have; fractions, e.g. 0.091 for 9.1 points)."""
    def by_seed(runs, label):
        return {r["seed"]: r["final"][metric] for r in runs.groups().get(label, []) if metric in r["final"]}

    ref = by_seed(*reference)
    out = {}
    for name, pair in others.items():
        other = by_seed(*pair)
        out[name] = {s: other[s] - ref[s] for s in sorted(set(ref) & set(other))}
    return out


def seed_differences_table(differences: dict[str, dict[int, float]], *, reference: str, metric: str = "train error",
                           caption: str = "", note: str = ""):
    """:func:`seed_differences` as a table: per run (:func:`display_name`), the difference (points)
    in each seed and their mean."""
    rows = [[display_name(name), ", ".join(f"{100 * d:+.1f}" for d in diffs.values()),
             f"{100 * statistics.mean(diffs.values()):+.1f}", ", ".join(map(str, diffs))]
            for name, diffs in differences.items() if diffs]
    return Table(["run", f"minus {display_name(reference)}, per seed (points)", "mean", "seeds"], rows,
                 caption=caption or f"{metric.capitalize()}, seed by seed", note=note)
# --- third-party trained networks, kept apart from our runs -------------------------------------

def _published_nets(record: dict, kind: str = "accuracy") -> dict:
    if record.get("kind") != kind or "nets" not in record:
        raise ValueError(f"expected a stored {kind!r} measurement of the published nets (resnet_book.published); "
                         f"got kind {record.get('kind')!r}")
    return record["nets"]


def published_beside_table6(record: dict) -> Table:
    """The paper's Table 6 beside the fully trained networks of a public re-implementation
    (third-party weights, never our runs): the error its authors publish, and the error our code
    measures with their weights on our data copy (``record``: :func:`resnet_book.published.load`
    or ``measure`` of kind ``accuracy``)."""
    nets, data = _published_nets(record), record["data"]
    source = data["source"]
    rows = [[display_name(name), f"{net['paper_error_pct']:.2f}", f"{net['published_error_pct']:.2f}",
             f"{100 * net['test_error'][source]:.2f}"] for name, net in nets.items()]
    images = f"{data['images']:,} test images" if data.get("subset", "all") == "all" else data["subset"]
    return Table(["network", "paper, Table 6", "re-implementation, its README", "measured here"], rows,
                 align="lrrr", caption=f"CIFAR-10 test error (%): the paper's Table 6 and four fully trained networks "
                                       f"{record['credit']}",
                 note=f"Measured by this book's code with their weights on {images} of {source}. Their training "
                      f"differs from the paper's: all 50,000 training images with no validation split, 200 epochs "
                      f"(the weights of the last epoch, not chosen on the test set), inputs normalised with "
                      f"ImageNet's channel statistics.")


def published_jpeg_cost(record: dict) -> Table:
    """The cost of the JPEG copy with the weights held fixed: the published nets (trained on the
    original pixels by a public re-implementation) tested on both copies' full test sets."""
    nets, data = _published_nets(record), record["data"]
    source = data["source"]
    others = sorted(data.get("also_on", {}))
    if len(others) != 1 or data.get("subset", "all") != "all":
        raise ValueError("the JPEG cost needs an accuracy measurement on the full test sets of exactly two copies "
                         f"(measure(..., also_on=...), n_images=None); got {source} and {others or 'no other copy'}, "
                         f"{data.get('subset', 'all')}")
    other = others[0]
    rows = [[display_name(name), f"{100 * net['test_error'][source]:.2f}",
             f"{100 * net['test_error'][other]:.2f}",
             f"{100 * (net['test_error'][other] - net['test_error'][source]):+.2f}"] for name, net in nets.items()]
    return Table(["network", source, other, "difference (points)"], rows, align="lrrr",
                 caption=f"Test error (%) of the same fixed weights on the two copies: networks {record['credit']}",
                 note=f"All {data['images']:,} test images of each copy (the same images, stored in a different order); "
                      f"the weights were trained on the original pixels, so the difference is what the re-encoding "
                      f"costs a network that never saw it.")


def published_facts(record: dict) -> dict[str, str]:
    """The numbers of :func:`published_beside_table6` and :func:`published_jpeg_cost` for the prose:
    per net ``<net>-<source>`` (test error, %), ``<net>-minus-table6`` (ours minus the paper's,
    points), and over the nets ``jpeg-cost-min`` / ``-max`` (points) when a second copy is measured."""
    nets, data = _published_nets(record), record["data"]
    out, costs = {}, []
    for name, net in nets.items():
        for source, error in net["test_error"].items():
            out[f"{name}-{source}"] = f"{100 * error:.2f}"
        main = 100 * net["test_error"][data["source"]]
        out[f"{name}-minus-table6"] = f"{main - net['paper_error_pct']:+.2f}"
        costs += [100 * e - main for s, e in net["test_error"].items() if s != data["source"]]
    if costs:
        out["jpeg-cost-min"], out["jpeg-cost-max"] = f"{min(costs):.1f}", f"{max(costs):.1f}"
    return out
