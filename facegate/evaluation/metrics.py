"""Verification metrics over scored pairs: ROC, AUC, EER, TAR@FAR, LFW-style k-fold accuracy.

Conventions used everywhere in this module, so results from different functions agree:

* ``labels``: 1 (or True) = genuine pair (same person), 0 (or False) = impostor pair.
* ``scores``: higher = more alike (cosine similarity, negated distance, ...).
* Decision rule: a pair is **accepted** (claimed "same person") when ``score >= threshold``.
* FAR (false accept rate) = accepted impostors / impostors.
  FRR (false reject rate) = rejected genuines / genuines. TAR = 1 - FRR.

Every public function validates its inputs and raises ``ValueError`` with a plain message,
because a silently wrong metric (NaN scores, one class missing, misaligned arrays) is
worse than no metric at all.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

# FAR targets reported by summary(): the usual operating points for face verification.
SUMMARY_FARS: tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4)

# Tolerance for comparing a rate k/n with a target like 1e-3, which is not exact in binary.
_RATE_EPS = 1e-12


def _validate(scores: object, labels: object) -> tuple[np.ndarray, np.ndarray]:
    """Return (scores as float64, labels as bool), or raise ValueError saying what is wrong."""
    s = np.asarray(scores)
    y = np.asarray(labels)
    if s.ndim != 1 or y.ndim != 1:
        raise ValueError(
            f"scores and labels must be 1-D, got shapes {s.shape} and {y.shape}"
        )
    if len(s) != len(y):
        raise ValueError(
            f"scores and labels must have the same length, got {len(s)} and {len(y)}"
        )
    if len(s) == 0:
        raise ValueError("scores and labels are empty")
    if not (np.issubdtype(s.dtype, np.number) or s.dtype == bool):
        raise ValueError(f"scores must be numeric, got dtype {s.dtype}")
    s = s.astype(np.float64)
    bad = ~np.isfinite(s)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"scores must be finite: {int(bad.sum())} NaN/inf value(s), first at index {first}"
        )
    if y.dtype != bool:
        if not np.issubdtype(y.dtype, np.number):
            raise ValueError(f"labels must be 0/1 or bool, got dtype {y.dtype}")
        odd = ~np.isin(y, (0, 1))
        if odd.any():
            first = int(np.flatnonzero(odd)[0])
            raise ValueError(
                f"labels must be 0/1 or bool, got {y[first]!r} at index {first}"
            )
        y = y == 1
    n_gen = int(y.sum())
    if n_gen == 0 or n_gen == len(y):
        missing = "genuine (label 1)" if n_gen == 0 else "impostor (label 0)"
        raise ValueError(f"both classes are needed, but there is no {missing} pair")
    return s, y


def _validate_rate(name: str, value: float) -> float:
    value = float(value)
    if not (0.0 < value <= 1.0):
        raise ValueError(f"{name} must be in (0, 1], got {value}")
    return value


@dataclass
class RocCurve:
    """ROC points ordered by decreasing threshold.

    ``thresholds[0]`` is +inf (accept nothing: FAR = TAR = 0), as sklearn returns it.
    """

    far: np.ndarray
    tar: np.ndarray
    thresholds: np.ndarray


def roc(scores: object, labels: object) -> RocCurve:
    """Full ROC (no points dropped), so EER and TAR@FAR can be read off exactly."""
    s, y = _validate(scores, labels)
    far, tar, thresholds = roc_curve(y, s, drop_intermediate=False)
    return RocCurve(far=far, tar=tar, thresholds=thresholds)


def roc_auc(scores: object, labels: object) -> float:
    """Area under the ROC: the chance a random genuine pair outscores a random impostor pair."""
    s, y = _validate(scores, labels)
    return float(roc_auc_score(y, s))


def eer(scores: object, labels: object) -> tuple[float, float]:
    """Equal error rate and the threshold at it: ``(eer, threshold)``.

    FAR rises and FRR falls as the threshold goes down. Between the two consecutive ROC
    points where FAR - FRR changes sign, both the rate and the threshold are interpolated
    linearly, so the EER does not depend on which side of the crossing a sample falls.
    When the crossing starts from the +inf "accept nothing" point, the threshold reported
    is the highest score (a finite value is more useful than an interpolated infinity).
    """
    curve = roc(scores, labels)
    far, frr, thr = curve.far, 1.0 - curve.tar, curve.thresholds
    diff = far - frr  # -1 at the +inf point, >= 0 at the lowest threshold (FRR = 0)
    i = int(np.argmax(diff >= 0))  # first point at or past the crossing; always >= 1
    if diff[i] == 0:
        return float(far[i]), float(thr[i])
    d0, d1 = diff[i - 1], diff[i]
    alpha = -d0 / (d1 - d0)
    rate = far[i - 1] + alpha * (far[i] - far[i - 1])
    t0 = thr[i - 1] if np.isfinite(thr[i - 1]) else thr[i]
    threshold = t0 + alpha * (thr[i] - t0)
    return float(rate), float(threshold)


@dataclass
class TarAtFar:
    """TAR at a target FAR, with what was actually achieved.

    ``resolvable`` is False when there are fewer than ``1 / far_target`` impostor pairs:
    then even a single false accept overshoots the target, so the only admissible
    thresholds accept no impostor at all and the number says nothing about that FAR.
    The TAR is still reported (at the strictest threshold) but must not be quoted as
    "TAR @ FAR = far_target".
    """

    tar: float
    threshold: float
    far_target: float
    achieved_far: float
    n_impostors: int
    resolvable: bool


def tar_at_far(scores: object, labels: object, far: float) -> TarAtFar:
    """TAR at the most lenient threshold whose FAR does not exceed ``far``.

    The threshold is the smallest observed score whose impostor accept rate is <= ``far``
    (accept when score >= threshold). If no observed score qualifies (the top score is an
    impostor's and the target allows none), the threshold is the next float above the
    highest score: nothing is accepted and TAR is 0.
    """
    far = _validate_rate("far", far)
    s, y = _validate(scores, labels)
    curve = roc(s, y)
    n_imp = int((~y).sum())
    ok = curve.far <= far + _RATE_EPS  # non-decreasing along the curve; ok[0] is always True
    j = int(np.flatnonzero(ok)[-1])
    threshold = float(curve.thresholds[j])
    if not np.isfinite(threshold):
        threshold = float(np.nextafter(s.max(), np.inf))
    return TarAtFar(
        tar=float(curve.tar[j]),
        threshold=threshold,
        far_target=far,
        achieved_far=float(curve.far[j]),
        n_impostors=n_imp,
        resolvable=n_imp * far >= 1.0 - 1e-9,
    )


def far_frr_at(scores: object, labels: object, threshold: float) -> tuple[float, float]:
    """``(FAR, FRR)`` at a fixed threshold, e.g. one chosen on another data set."""
    s, y = _validate(scores, labels)
    threshold = float(threshold)
    if np.isnan(threshold):
        raise ValueError("threshold is NaN")
    accepted = s >= threshold
    return float(accepted[~y].mean()), float((~accepted[y]).mean())


def _accuracy_at(s: np.ndarray, y: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Accuracy at each candidate threshold, in O((n + m) log n) rather than O(n * m)."""
    gen = np.sort(s[y])
    imp = np.sort(s[~y])
    gen_accepted = len(gen) - np.searchsorted(gen, thresholds, side="left")
    imp_rejected = np.searchsorted(imp, thresholds, side="left")
    return (gen_accepted + imp_rejected) / len(s)


def best_accuracy_threshold(scores: object, labels: object) -> tuple[float, float]:
    """``(threshold, accuracy)`` maximizing accuracy on these very pairs.

    Candidates are the midpoints between consecutive distinct scores (so the threshold
    sits in the gap, not on a sample), plus the lowest score (accept all) and the next
    float above the highest (reject all). Ties go to the lowest threshold, so the
    result is deterministic. This is an optimistic, in-sample number: use
    ``kfold_accuracy`` to report accuracy.
    """
    s, y = _validate(scores, labels)
    uniq = np.unique(s)
    candidates = np.concatenate(
        ([uniq[0]], (uniq[:-1] + uniq[1:]) / 2.0, [np.nextafter(uniq[-1], np.inf)])
    )
    acc = _accuracy_at(s, y, candidates)
    k = int(np.argmax(acc))
    return float(candidates[k]), float(acc[k])


@dataclass
class KFoldResult:
    """Per-fold test accuracies and the thresholds used, chosen without the test fold.

    ``std`` is the population standard deviation (``np.std``, ddof=0) of the fold
    accuracies, as the usual LFW evaluation code reports it; it is not a standard error.
    """

    fold_accuracies: list[float]
    thresholds: list[float]
    mean: float
    std: float


def kfold_accuracy(scores: object, labels: object, folds: object) -> KFoldResult:
    """Accuracy under the LFW View 2 protocol.

    For each fold k (in sorted order of fold id), the threshold is chosen by
    ``best_accuracy_threshold`` on all *other* folds and accuracy is measured on fold k,
    so no test pair influences its own threshold.
    """
    s, y = _validate(scores, labels)
    f = np.asarray(folds)
    if f.ndim != 1 or len(f) != len(s):
        raise ValueError(
            f"folds must be 1-D with one entry per pair ({len(s)}), got shape {f.shape}"
        )
    if not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"folds must be integer fold ids, got dtype {f.dtype}")
    fold_ids = np.unique(f)
    if len(fold_ids) < 2:
        raise ValueError(f"k-fold needs at least 2 folds, got {len(fold_ids)}")
    accuracies: list[float] = []
    thresholds: list[float] = []
    for k in fold_ids:
        test = f == k
        train = ~test
        try:
            threshold, _ = best_accuracy_threshold(s[train], y[train])
        except ValueError as exc:
            raise ValueError(f"cannot choose a threshold for test fold {k}: {exc}") from exc
        accepted = s[test] >= threshold
        accuracies.append(float((accepted == y[test]).mean()))
        thresholds.append(threshold)
    return KFoldResult(
        fold_accuracies=accuracies,
        thresholds=thresholds,
        mean=float(np.mean(accuracies)),
        std=float(np.std(accuracies)),
    )


def summary(scores: object, labels: object, folds: object = None) -> dict:
    """Every headline number in one JSON-ready dict, so reports are comparable run to run.

    Keys: n_pairs, n_genuine, n_impostor, auc, eer, eer_threshold, tar_at_far
    (``{"1e-01": {...}, ...}``, each a ``TarAtFar`` as a dict) and, when ``folds`` is
    given, ``kfold`` with mean, std (population), fold_accuracies, thresholds.
    """
    s, y = _validate(scores, labels)
    rate, rate_threshold = eer(s, y)
    out: dict = {
        "n_pairs": len(s),
        "n_genuine": int(y.sum()),
        "n_impostor": int((~y).sum()),
        "auc": roc_auc(s, y),
        "eer": rate,
        "eer_threshold": rate_threshold,
        "tar_at_far": {f"{far:.0e}": asdict(tar_at_far(s, y, far)) for far in SUMMARY_FARS},
    }
    if folds is not None:
        result = kfold_accuracy(s, y, folds)
        out["kfold"] = {
            "mean": result.mean,
            "std": result.std,
            "fold_accuracies": result.fold_accuracies,
            "thresholds": result.thresholds,
        }
    return out
