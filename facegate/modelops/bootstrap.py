"""A threshold at a target FAR with a bootstrap interval over the people behind the pairs.

Impostor pairs share people, so a few people who look alike move many pairs at once:
resampling pairs would give an interval far too narrow, so the bootstrap resamples
*identities* when it knows them. Pure maths on scores (no MLflow): the registry
(:mod:`facegate.modelops.registry`, which re-exports these names) stores what it returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from facegate.calibration import CALIBRATION_FARS, Calibration, allowed_at_far, threshold_above
from facegate.evaluation.dataset_eval import sample_impostor_pairs

# A FAR is "resolved" by a sample when at least this many impostor pairs lie above its
# threshold: with fewer, the threshold rests on a handful of pairs and jumps between samples.
MIN_PAIRS_ABOVE = 10


@dataclass
class CalibrationResult:
    """A calibration with its bootstrap uncertainty at the target FAR.

    ``threshold_ci``: percentile interval of the threshold re-chosen on each resample of the
    people. ``far_ci``: percentile interval of the FAR that the chosen ``threshold`` gives on
    those resamples, i.e. the range of false-accept rates to expect on another population
    drawn like this one.
    """

    calibration: Calibration
    target_far: float
    threshold: float
    achieved_far: float
    threshold_ci: tuple[float, float]
    far_ci: tuple[float, float]
    confidence: float
    bootstrap: int
    n_impostors: int
    n_identities: int
    resolvable: bool
    extra: dict = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "target_far": self.target_far,
            "threshold": self.threshold,
            "achieved_far": self.achieved_far,
            "threshold_ci_low": self.threshold_ci[0],
            "threshold_ci_high": self.threshold_ci[1],
            "far_ci_low": self.far_ci[0],
            "far_ci_high": self.far_ci[1],
            "far_prediction_low": (self.extra.get("far_prediction") or [math.nan])[0],
            "far_prediction_high": (self.extra.get("far_prediction") or [math.nan, math.nan])[1],
            "confidence": self.confidence,
            "bootstrap": self.bootstrap,
            "n_impostors": self.n_impostors,
            "n_identities": self.n_identities,
            "resolvable": self.resolvable,
        }


def _checked_scores(impostor_scores: np.ndarray, target_far: float, min_pairs_above: int) -> np.ndarray:
    scores = np.asarray(impostor_scores, dtype=np.float64)
    if scores.ndim != 1 or not np.isfinite(scores).all():
        raise ValueError("impostor scores must be a 1-D array of finite numbers")
    n = len(scores)
    if not 0 < target_far < 1:
        raise ValueError(f"target FAR must be in (0, 1), got {target_far}")
    if n * target_far < 1:
        raise ValueError(
            f"{n:,} impostor pairs cannot show FAR {target_far:g}: at least {math.ceil(1 / target_far):,} are needed "
            f"(and {math.ceil(min_pairs_above / target_far):,} for a stable threshold)"
        )
    return scores


def _table(
    ordered: np.ndarray, target_far: float, fars: tuple[float, ...], min_pairs_above: int
) -> tuple[list[float], list[float]]:
    """FAR grid from 1e-1 down to the last rate with ``min_pairs_above`` pairs above its
    threshold, the target FAR always included (exact)."""
    n = len(ordered)
    min_far = min_pairs_above / n
    grid = sorted({float(f) for f in fars if f >= min_far * 0.999} | {float(target_far)}, reverse=True)
    table_fars = [f for f in grid if allowed_at_far(f, n) >= 1]
    return table_fars, [threshold_above(ordered, allowed_at_far(f, n)) for f in table_fars]


@dataclass
class _Resamples:
    thresholds: np.ndarray
    fars: np.ndarray
    identities: int
    unit: str


def _identity_bootstrap(
    scores: np.ndarray,
    order: np.ndarray,
    identities: tuple[np.ndarray, np.ndarray],
    target_far: float,
    bootstrap: int,
    rng: np.random.Generator,
) -> _Resamples:
    """Draw people with replacement; a pair weighs the product of its two people's counts."""
    n = len(scores)
    ordered = scores[order]
    allowed = allowed_at_far(target_far, n)
    a_labels, b_labels = (np.asarray(x) for x in identities)
    if len(a_labels) != n or len(b_labels) != n:
        raise ValueError("identities must give two labels per impostor score")
    labels, inverse = np.unique(np.concatenate([a_labels, b_labels]), return_inverse=True)
    a_idx, b_idx = inverse[:n], inverse[n:]
    n_ids = len(labels)
    from scipy import sparse

    # Pairs per pair of people: the total weight of a resample is c^T M c.
    pair_counts = sparse.coo_matrix((np.ones(n), (a_idx, b_idx)), shape=(n_ids, n_ids)).tocsr()
    a_sorted, b_sorted = a_idx[order], b_idx[order]
    thresholds_b, fars_b = np.empty(bootstrap), np.empty(bootstrap)
    for r in range(bootstrap):
        counts = rng.multinomial(n_ids, np.full(n_ids, 1.0 / n_ids)).astype(np.float64)
        total = float(counts @ (pair_counts @ counts))
        budget = target_far * total
        k = min(n, max(4096, int(target_far * n * 40)))
        while True:
            weights = counts[a_sorted[:k]] * counts[b_sorted[:k]]
            cumulative = np.cumsum(weights)
            if cumulative[-1] > budget or k == n:
                break
            k = min(n, k * 4)
        cut = int(np.searchsorted(cumulative, budget, side="right"))  # pairs that fit the budget
        thresholds_b[r] = threshold_above(ordered, cut)
        fars_b[r] = (float(cumulative[allowed - 1]) if allowed > 0 else 0.0) / total if total > 0 else 0.0
    return _Resamples(thresholds_b, fars_b, n_ids, "identity")


def _pair_bootstrap(
    scores: np.ndarray, threshold: float, target_far: float, bootstrap: int, rng: np.random.Generator
) -> _Resamples:
    """Resample pairs: too narrow when pairs share people (said so in the result)."""
    allowed = allowed_at_far(target_far, len(scores))
    thresholds_b, fars_b = np.empty(bootstrap), np.empty(bootstrap)
    for r in range(bootstrap):
        sample = np.sort(rng.choice(scores, size=len(scores), replace=True))[::-1]
        thresholds_b[r] = threshold_above(sample, allowed)
        fars_b[r] = float((sample >= threshold).mean())
    return _Resamples(thresholds_b, fars_b, 0, "pair")


def _intervals(
    resamples: _Resamples, confidence: float, achieved: float
) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]]:
    """(threshold CI, FAR CI, FAR prediction on other people); NaN without resamples."""
    if len(resamples.thresholds) == 0:
        nan = (math.nan, math.nan)
        return nan, nan, nan
    tail = (1.0 - confidence) / 2.0 * 100.0
    t, f = resamples.thresholds, resamples.fars
    threshold_ci = (float(np.percentile(t, tail)), float(np.percentile(t, 100 - tail)))
    far_ci = (float(np.percentile(f, tail)), float(np.percentile(f, 100 - tail)))
    # For the FAR measured on *other* people (a population of the same size), both samples'
    # noise adds up: about sqrt(2) wider around the target (bench/calibration_honesty.py: this
    # held on 19 of 20 LFW half-splits per model, the plain interval on 18 and 15 of 20).
    far_prediction = (achieved - math.sqrt(2) * (achieved - far_ci[0]), achieved + math.sqrt(2) * (far_ci[1] - achieved))
    return threshold_ci, far_ci, far_prediction


def calibrate_scores(
    impostor_scores: np.ndarray,
    target_far: float,
    model_id: str,
    model_sha256: str,
    source: str,
    *,
    identities: tuple[np.ndarray, np.ndarray] | None = None,
    bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    name: str = "candidate",
    fars: tuple[float, ...] = CALIBRATION_FARS,
    min_pairs_above: int = MIN_PAIRS_ABOVE,
) -> CalibrationResult:
    """Choose the threshold at ``target_far`` from impostor scores, with a bootstrap interval.

    ``identities`` gives, per score, the two people of the pair (any labels); the bootstrap
    then draws people with replacement and weights each pair by how often both of its people
    were drawn. Without it the interval resamples pairs (too narrow when pairs share people;
    said so in ``extra['bootstrap_unit']``). The table runs from FAR 1e-1 down to the smallest
    rate with at least ``min_pairs_above`` impostor pairs above its threshold.
    """
    scores = _checked_scores(impostor_scores, target_far, min_pairs_above)
    n = len(scores)
    order = np.argsort(-scores, kind="stable")
    ordered = scores[order]
    table_fars, table_thresholds = _table(ordered, target_far, fars, min_pairs_above)
    allowed = allowed_at_far(target_far, n)
    threshold = threshold_above(ordered, allowed)
    achieved = allowed / n

    rng = np.random.default_rng(seed)
    if identities is not None:
        resamples = _identity_bootstrap(scores, order, identities, target_far, bootstrap, rng)
    else:
        resamples = _pair_bootstrap(scores, threshold, target_far, bootstrap, rng)
    threshold_ci, far_ci, far_prediction = _intervals(resamples, confidence, achieved)
    resolvable = n * target_far >= min_pairs_above
    booted = bootstrap > 0
    extra = {
        "target_far": target_far,
        "threshold": threshold,
        # None without a bootstrap: NaN is not JSON, and the calibration JSON must stay portable.
        "threshold_ci": list(threshold_ci) if booted else None,
        "far_ci": list(far_ci) if booted else None,
        "far_prediction": [max(far_prediction[0], 0.0), far_prediction[1]] if booted else None,
        "confidence": confidence,
        "bootstrap": bootstrap,
        "bootstrap_unit": resamples.unit,
        "identities": resamples.identities,
        "resolvable": resolvable,
    }
    calibration = Calibration(
        model_id=model_id,
        model_sha256=model_sha256,
        source=source,
        fars=tuple(table_fars),
        thresholds=tuple(table_thresholds),
        impostor_pairs=n,
        name=name,
        extra=extra,
    )
    return CalibrationResult(
        calibration=calibration,
        target_far=target_far,
        threshold=threshold,
        achieved_far=achieved,
        threshold_ci=threshold_ci,
        far_ci=far_ci,
        confidence=confidence,
        bootstrap=bootstrap,
        n_impostors=n,
        n_identities=resamples.identities,
        resolvable=resolvable,
        extra=extra,
    )


def impostor_pairs(
    vectors: np.ndarray, identities: np.ndarray, max_pairs: int | None = None, seed: int = 0, chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(scores, i, j)`` of every pair of images of different people (i < j), or a seeded
    uniform sample of ``max_pairs`` of them when there are more."""
    vectors = np.asarray(vectors, dtype=np.float32)
    ids = np.asarray(identities)
    n = len(vectors)
    _, per_id = np.unique(ids, return_counts=True)
    total = n * (n - 1) // 2 - int((per_id * (per_id - 1) // 2).sum())
    if max_pairs is None or total <= max_pairs:
        scores, rows, cols = [], [], []
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            block = vectors[start:stop] @ vectors.T
            r = np.arange(start, stop)
            mask = (np.arange(n)[None, :] > r[:, None]) & (ids[r][:, None] != ids[None, :])
            ri, ci = np.nonzero(mask)
            scores.append(block[ri, ci])
            rows.append(ri + start)
            cols.append(ci)
        if not scores:
            return np.zeros(0, np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(scores), np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64)
    i, j = sample_impostor_pairs(ids, max_pairs, seed)
    sampled = np.einsum("ij,ij->i", vectors[i], vectors[j])
    return sampled, i, j


def calibrate_from_embeddings(
    vectors: np.ndarray,
    identities: np.ndarray,
    target_far: float,
    model_id: str,
    model_sha256: str,
    source: str,
    *,
    usable: np.ndarray | None = None,
    max_impostors: int | None = 5_000_000,
    bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    name: str = "candidate",
) -> CalibrationResult:
    """:func:`calibrate_scores` on the impostor pairs of a labelled set of templates.

    ``usable`` masks out images that gave no template (unreadable). Above ``max_impostors``
    pairs a seeded uniform sample is scored (unbiased for FAR, and the bootstrap still
    resamples people).
    """
    vectors = np.asarray(vectors)
    identities = np.asarray(identities)
    if usable is not None:
        vectors, identities = vectors[usable], identities[usable]
    _, codes = np.unique(identities, return_inverse=True)  # ints: the bootstrap sorts them fast
    scores, i, j = impostor_pairs(vectors, codes, max_impostors, seed)
    return calibrate_scores(
        scores,
        target_far,
        model_id,
        model_sha256,
        source,
        identities=(codes[i], codes[j]),
        bootstrap=bootstrap,
        confidence=confidence,
        seed=seed,
        name=name,
    )
