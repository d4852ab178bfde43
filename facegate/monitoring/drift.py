"""Drift: does recent traffic still look like the traffic the thresholds were set for?

A reference window of decisions is compared with a recent window, feature by feature:

* similarity scores of verify and identify decisions (all of them, and matches only): a
  camera, a lighting change or a new population moves them first;
* probe quality, brightness (mean luminance of the face's centre, from the quality check)
  and face size (box height in px): the image conditions behind the scores;
* the reject rate (verify / identify decisions that did not match) and the no-face rate.

Each continuous feature gets the population stability index (PSI, on ten equal-frequency bins
of the reference) and the two-sample Kolmogorov-Smirnov test; each rate gets PSI on its two
outcomes and Fisher's exact test. **A feature is marked drifted** when both windows hold at
least ``min_samples`` values and either

* PSI > ``psi_limit``, where the limit is the usual 0.2 *or*, when larger, the PSI that
  sampling noise alone exceeds 1 % of the time for these window sizes (PSI times
  n·m/(n+m) is about chi-squared with bins-1 degrees of freedom when nothing changed; with
  50 decisions per window and ten bins that is 0.87, so small windows are not flagged for
  noise), or
* the test's p-value < ``p_value`` (0.01).

Nine features each tested at 1 % mean roughly one false alarm in ten quiet comparisons at
worst (the features are correlated, so fewer); the automatic response it triggers only
proposes reversible actions (see :mod:`facegate.monitoring.response`).

Windows are given by time (the last ``recent_days``, and the ``reference_days`` before them)
or by count (the last ``recent_last`` decisions and the ``reference_last`` before them).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from pydantic import BaseModel, Field, model_validator
from scipy import stats

from facegate.gallery.context import find_gallery
from facegate.gallery.service import GalleryService
from facegate.security import Principal

RECOGNITION_KINDS = ("verify", "identify")


# -- statistics -----------------------------------------------------------------------------
def _clean(values: Sequence[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[np.isfinite(array)]


def psi_bins(n_reference: int, n_recent: int, max_bins: int = 10) -> int:
    """Ten bins, fewer for small windows (at least ~5 values per bin of the smaller one)."""
    return int(max(2, min(max_bins, min(n_reference, n_recent) // 5)))


def population_stability_index(
    reference: Sequence[float] | np.ndarray, recent: Sequence[float] | np.ndarray, bins: int = 10
) -> float:
    """PSI = sum (q - p) ln(q / p) over equal-frequency bins of the reference.

    Bin edges are the reference's quantiles (ties merge bins, so a discrete feature gets as
    many bins as it has distinct values); each bin gets half a count added so an empty bin
    gives a large but finite term instead of infinity.
    """
    ref, new = _clean(reference), _clean(recent)
    if ref.size == 0 or new.size == 0:
        return float("nan")
    edges = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    k = edges.size + 1
    p = (np.bincount(np.searchsorted(edges, ref, side="right"), minlength=k) + 0.5) / (ref.size + 0.5 * k)
    q = (np.bincount(np.searchsorted(edges, new, side="right"), minlength=k) + 0.5) / (new.size + 0.5 * k)
    return float(np.sum((q - p) * np.log(q / p)))


def rate_psi(k_reference: int, n_reference: int, k_recent: int, n_recent: int) -> float:
    """PSI of a yes/no outcome (two bins), with the same half-count smoothing."""
    p = (np.array([k_reference, n_reference - k_reference]) + 0.5) / (n_reference + 1.0)
    q = (np.array([k_recent, n_recent - k_recent]) + 0.5) / (n_recent + 1.0)
    return float(np.sum((q - p) * np.log(q / p)))


def psi_noise_limit(n_reference: int, n_recent: int, bins: int, base: float = 0.2, quantile: float = 0.99) -> float:
    """The PSI limit for these window sizes: ``base``, or the PSI that chance alone exceeds
    with probability 1 - ``quantile`` if that is larger (chi-squared approximation)."""
    if n_reference <= 0 or n_recent <= 0:
        return float("inf")
    noise = float(stats.chi2.ppf(quantile, max(bins - 1, 1))) * (1.0 / n_reference + 1.0 / n_recent)
    return max(base, noise)


def ks_test(reference: Sequence[float] | np.ndarray, recent: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov statistic and p-value (scipy, two-sided)."""
    ref, new = _clean(reference), _clean(recent)
    if ref.size == 0 or new.size == 0:
        return float("nan"), float("nan")
    result = stats.ks_2samp(ref, new)
    return float(result.statistic), float(result.pvalue)


def rate_test(k_reference: int, n_reference: int, k_recent: int, n_recent: int) -> tuple[float, float]:
    """(recent rate - reference rate, Fisher's exact two-sided p-value)."""
    if n_reference <= 0 or n_recent <= 0:
        return float("nan"), float("nan")
    table = [[k_reference, n_reference - k_reference], [k_recent, n_recent - k_recent]]
    p_value = float(stats.fisher_exact(table).pvalue)
    return k_recent / n_recent - k_reference / n_reference, p_value


# -- report ---------------------------------------------------------------------------------
class DriftLimits(BaseModel):
    """When a feature counts as drifted (see the module docstring)."""

    psi: float = Field(0.2, gt=0, description="PSI limit (raised to the 1 % noise level for small windows).")
    p_value: float = Field(0.01, gt=0, lt=1, description="KS / Fisher p-value under which a feature drifted.")
    min_samples: int = Field(20, ge=2, description="Values needed in each window before a feature is judged.")


def drift_limits(psi: float | None = None, p_value: float | None = None, min_samples: int | None = None) -> DriftLimits:
    """The limits with the caller's overrides (None keeps the default), as the CLI and API take them."""
    given = {"psi": psi, "p_value": p_value, "min_samples": min_samples}
    return DriftLimits(**{k: v for k, v in given.items() if v is not None})


class FeatureDrift(BaseModel):
    feature: str
    test: str = Field(description="'ks' for continuous features, 'fisher' for rates.")
    reference_n: int
    recent_n: int
    reference_mean: float | None = Field(None, description="Mean value, or the rate for a rate feature.")
    recent_mean: float | None = None
    psi: float | None = None
    psi_limit: float | None = None
    statistic: float | None = Field(None, description="KS statistic, or the rate difference (recent - reference).")
    p_value: float | None = None
    enough_samples: bool
    drifted: bool
    reasons: list[str] = Field(default_factory=list)


class WindowInfo(BaseModel):
    label: str
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    decisions: int
    first_decision_id: int | None = None
    last_decision_id: int | None = None


class DriftReport(BaseModel):
    gallery: str
    reference: WindowInfo
    recent: WindowInfo
    limits: DriftLimits
    features: list[FeatureDrift]
    drifted: bool
    drifted_features: list[str]
    reference_reject_rate: float | None = None
    recent_reject_rate: float | None = None

    def feature(self, name: str) -> FeatureDrift:
        return next(f for f in self.features if f.feature == name)


class DriftWindows(BaseModel):
    """Which decisions to compare: by time (days) or by count (last N). Count wins if given."""

    reference_days: float = Field(28.0, gt=0, le=36500, description="Reference: this many days before the recent window.")
    recent_days: float = Field(7.0, gt=0, le=36500, description="Recent: the last this many days.")
    reference_last: int | None = Field(None, ge=1, description="Reference: the N decisions before the recent ones.")
    recent_last: int | None = Field(None, ge=1, description="Recent: the last N decisions.")

    @model_validator(mode="after")
    def _both_counts(self) -> "DriftWindows":
        if (self.reference_last is None) != (self.recent_last is None):
            raise ValueError("give both reference_last and recent_last, or neither (then days are used)")
        return self

    @property
    def by_count(self) -> bool:
        return self.recent_last is not None


@dataclass(frozen=True)
class DecisionSample:
    """What drift needs of one decision (no probe vector, so windows load cheaply)."""

    id: int
    kind: str
    outcome: str
    score: float | None
    quality: float | None
    brightness: float | None
    face_size: float | None
    created_at: dt.datetime | None = None


def _values(samples: Sequence[DecisionSample], pick: Callable[[DecisionSample], float | None],
            keep: Callable[[DecisionSample], bool]) -> np.ndarray:
    return _clean([v for s in samples if keep(s) and (v := pick(s)) is not None])


CONTINUOUS_FEATURES: dict[str, tuple[Callable[[DecisionSample], float | None], Callable[[DecisionSample], bool]]] = {
    "verify_score": (lambda s: s.score, lambda s: s.kind == "verify"),
    "verify_match_score": (lambda s: s.score, lambda s: s.kind == "verify" and s.outcome == "match"),
    "identify_score": (lambda s: s.score, lambda s: s.kind == "identify"),
    "identify_match_score": (lambda s: s.score, lambda s: s.kind == "identify" and s.outcome == "match"),
    "quality": (lambda s: s.quality, lambda s: True),
    "brightness": (lambda s: s.brightness, lambda s: True),
    "face_size": (lambda s: s.face_size, lambda s: True),
}
RATE_FEATURES: dict[str, Callable[[DecisionSample], bool]] = {
    "reject_rate": lambda s: s.outcome != "match",
    "no_face_rate": lambda s: s.outcome == "no_face",
}


def _finite(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _reasons(enough: bool, psi: float, psi_limit: float, test: str, p_value: float, limits: DriftLimits) -> list[str]:
    """Why a feature drifted (empty: it did not): its PSI over the limit, its test's p under it."""
    reasons = []
    if enough and psi > psi_limit:
        reasons.append(f"PSI {psi:.3f} > {psi_limit:.3f}")
    if enough and p_value < limits.p_value:
        reasons.append(f"{test} p {p_value:.2g} < {limits.p_value:g}")
    return reasons


def continuous_drift(name: str, reference: np.ndarray, recent: np.ndarray, limits: DriftLimits) -> FeatureDrift:
    n, m = int(reference.size), int(recent.size)
    enough = n >= limits.min_samples and m >= limits.min_samples
    psi = population_stability_index(reference, recent, psi_bins(n, m)) if n and m else float("nan")
    limit = psi_noise_limit(n, m, psi_bins(n, m), limits.psi)
    statistic, p_value = ks_test(reference, recent)
    reasons = _reasons(enough, psi, limit, "KS", p_value, limits)
    return FeatureDrift(
        feature=name, test="ks", reference_n=n, recent_n=m,
        reference_mean=_finite(float(reference.mean())) if n else None,
        recent_mean=_finite(float(recent.mean())) if m else None,
        psi=_finite(psi), psi_limit=_finite(limit), statistic=_finite(statistic), p_value=_finite(p_value),
        enough_samples=enough, drifted=bool(reasons), reasons=reasons,
    )


def rate_drift(name: str, k_ref: int, n_ref: int, k_new: int, n_new: int, limits: DriftLimits) -> FeatureDrift:
    enough = n_ref >= limits.min_samples and n_new >= limits.min_samples
    psi = rate_psi(k_ref, n_ref, k_new, n_new) if n_ref and n_new else float("nan")
    limit = psi_noise_limit(n_ref, n_new, 2, limits.psi)
    difference, p_value = rate_test(k_ref, n_ref, k_new, n_new)
    reasons = _reasons(enough, psi, limit, "Fisher", p_value, limits)
    return FeatureDrift(
        feature=name, test="fisher", reference_n=n_ref, recent_n=n_new,
        reference_mean=k_ref / n_ref if n_ref else None, recent_mean=k_new / n_new if n_new else None,
        psi=_finite(psi), psi_limit=_finite(limit), statistic=_finite(difference), p_value=_finite(p_value),
        enough_samples=enough, drifted=bool(reasons), reasons=reasons,
    )


def compare_windows(
    reference: Sequence[DecisionSample], recent: Sequence[DecisionSample], limits: DriftLimits | None = None
) -> list[FeatureDrift]:
    """Every feature's drift between two windows of verify / identify decisions."""
    limits = limits or DriftLimits()
    reference = [s for s in reference if s.kind in RECOGNITION_KINDS]
    recent = [s for s in recent if s.kind in RECOGNITION_KINDS]
    out = [
        continuous_drift(name, _values(reference, pick, keep), _values(recent, pick, keep), limits)
        for name, (pick, keep) in CONTINUOUS_FEATURES.items()
    ]
    for name, hit in RATE_FEATURES.items():
        out.append(rate_drift(name, sum(map(hit, reference)), len(reference), sum(map(hit, recent)), len(recent), limits))
    return out


# -- windows of a gallery's decision log ----------------------------------------------------
def load_windows(
    session, gallery_id: int, windows: DriftWindows, now: dt.datetime | None = None
) -> tuple[list[DecisionSample], list[DecisionSample], WindowInfo, WindowInfo]:
    """The reference and recent decisions (verify / identify only), oldest first."""
    from sqlalchemy import select

    from facegate.storage.models import Decision, as_utc

    columns = (Decision.id, Decision.kind, Decision.outcome, Decision.score, Decision.quality,
               Decision.brightness, Decision.face_size, Decision.created_at)
    base = select(*columns).where(Decision.gallery_id == gallery_id, Decision.kind.in_(RECOGNITION_KINDS))
    if windows.recent_last is not None and windows.reference_last is not None:  # by count
        total = windows.recent_last + windows.reference_last
        rows = [DecisionSample(*r) for r in session.execute(base.order_by(Decision.id.desc()).limit(total)).all()]
        rows.reverse()
        split = max(len(rows) - windows.recent_last, 0)
        reference, recent = rows[:split], rows[split:]
        ref_label, new_label = f"{windows.reference_last} decisions before", f"last {windows.recent_last} decisions"
        ref_span = (reference[0].created_at, reference[-1].created_at) if reference else (None, None)
        new_span = (recent[0].created_at, recent[-1].created_at) if recent else (None, None)
    else:
        now = now or dt.datetime.now(dt.timezone.utc)
        cut = now - dt.timedelta(days=windows.recent_days)
        start = cut - dt.timedelta(days=windows.reference_days)
        rows = [
            DecisionSample(*r)
            for r in session.execute(base.where(Decision.created_at >= start).order_by(Decision.id)).all()
        ]
        stamped = [(s, as_utc(s.created_at)) for s in rows if s.created_at is not None]  # a NOT NULL column
        reference = [s for s, at in stamped if at < cut]
        recent = [s for s, at in stamped if at >= cut]
        ref_label, new_label = f"{windows.reference_days:g} days before", f"last {windows.recent_days:g} days"
        ref_span, new_span = (start, cut), (cut, now)

    def info(label: str, samples: list[DecisionSample], span) -> WindowInfo:
        return WindowInfo(
            label=label, start=as_utc(span[0]), end=as_utc(span[1]), decisions=len(samples),
            first_decision_id=samples[0].id if samples else None, last_decision_id=samples[-1].id if samples else None,
        )

    return reference, recent, info(ref_label, reference, ref_span), info(new_label, recent, new_span)


def gallery_drift(
    service: GalleryService, gallery: str, windows: DriftWindows | None = None,
    limits: DriftLimits | None = None, *, principal: Principal,
) -> DriftReport:
    """The drift report of one gallery: what ``facegate monitor`` prints and the API returns."""
    windows = windows or DriftWindows()
    limits = limits or DriftLimits()
    with service.ctx.sessions() as session:
        g = find_gallery(session, gallery, principal)
        principal.require("admin", g)
        reference, recent, ref_info, new_info = load_windows(session, g.id, windows)
    features = compare_windows(reference, recent, limits)
    reject = {f.feature: f for f in features}["reject_rate"]
    drifted = [f.feature for f in features if f.drifted]
    return DriftReport(
        gallery=gallery, reference=ref_info, recent=new_info, limits=limits, features=features,
        drifted=bool(drifted), drifted_features=drifted,
        reference_reject_rate=reject.reference_mean, recent_reject_rate=reject.recent_mean,
    )
