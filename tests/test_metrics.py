"""Verification metrics on small cases whose answers are worked out by hand in the comments."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from facegate.evaluation.metrics import (
    KFoldResult,
    RocCurve,
    TarAtFar,
    best_accuracy_threshold,
    eer,
    far_frr_at,
    kfold_accuracy,
    roc,
    roc_auc,
    summary,
    tar_at_far,
)

# Perfectly separable: every genuine (1) outscores every impostor (0).
SEP_SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1])
SEP_LABELS = np.array([1, 1, 1, 1, 0, 0, 0, 0])


def test_separable_scores_are_perfect() -> None:
    assert roc_auc(SEP_SCORES, SEP_LABELS) == 1.0
    rate, threshold = eer(SEP_SCORES, SEP_LABELS)
    assert rate == 0.0
    assert 0.4 < threshold <= 0.6  # lowest genuine score: accepts all genuines, no impostor
    assert far_frr_at(SEP_SCORES, SEP_LABELS, threshold) == (0.0, 0.0)
    threshold, acc = best_accuracy_threshold(SEP_SCORES, SEP_LABELS)
    assert acc == 1.0 and threshold == pytest.approx(0.5)  # midpoint of the 0.4 / 0.6 gap
    folds = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    result = kfold_accuracy(SEP_SCORES, SEP_LABELS, folds)
    assert isinstance(result, KFoldResult)
    assert result.fold_accuracies == [1.0, 1.0]
    assert result.mean == 1.0 and result.std == 0.0


def test_roc_curve_points() -> None:
    curve = roc([0.9, 0.7, 0.5, 0.3], [1, 0, 1, 0])
    assert isinstance(curve, RocCurve)
    # Thresholds descending from +inf: inf, .9, .7, .5, .3 (no point dropped).
    assert math.isinf(curve.thresholds[0])
    np.testing.assert_allclose(curve.thresholds[1:], [0.9, 0.7, 0.5, 0.3])
    np.testing.assert_allclose(curve.far, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(curve.tar, [0, 0.5, 0.5, 1, 1])
    # Genuine/impostor orderings won: (.9>.7, .9>.3, .5>.3) = 3 of 4.
    assert roc_auc([0.9, 0.7, 0.5, 0.3], [1, 0, 1, 0]) == pytest.approx(0.75)


def test_eer_exact_crossing() -> None:
    # genuine .9 .8 .6 .4, impostor .7 .5 .3 .2
    # threshold .6: FAR = 1/4 (.7), FRR = 1/4 (.4) -> FAR == FRR exactly.
    scores = [0.9, 0.8, 0.6, 0.4, 0.7, 0.5, 0.3, 0.2]
    labels = [1, 1, 1, 1, 0, 0, 0, 0]
    rate, threshold = eer(scores, labels)
    assert rate == pytest.approx(0.25)
    assert threshold == pytest.approx(0.6)
    assert far_frr_at(scores, labels, 0.6) == (0.25, 0.25)


def test_eer_interpolated_crossing() -> None:
    # genuine .9 .5, impostor .7 .3 .2 .1
    # t=.7: FAR .25, FRR .5  (FAR-FRR = -.25)
    # t=.5: FAR .25, FRR 0   (FAR-FRR = +.25) -> halfway: EER .25, threshold .6
    scores = [0.9, 0.5, 0.7, 0.3, 0.2, 0.1]
    labels = [1, 1, 0, 0, 0, 0]
    rate, threshold = eer(scores, labels)
    assert rate == pytest.approx(0.25)
    assert threshold == pytest.approx(0.6)


def test_eer_crossing_from_accept_nothing_point_is_finite() -> None:
    # Top score tied between a genuine and an impostor: the crossing starts at +inf.
    rate, threshold = eer([1.0, 1.0, 1.0, 0.0], [1, 1, 0, 0])
    assert math.isfinite(threshold) and threshold == 1.0
    # inf: FAR 0, FRR 1 (diff -1); t=1: FAR .5, FRR 0 (diff .5); alpha 2/3 -> 1/3
    assert rate == pytest.approx(1 / 3)


# 4 genuine, 10 impostor pairs for TAR@FAR.
TAR_GEN = [0.9, 0.8, 0.7, 0.4]
TAR_IMP = [0.85, 0.6, 0.5, 0.3, 0.2, 0.1, 0.05, 0.0, -0.1, -0.2]
TAR_SCORES = np.array(TAR_GEN + TAR_IMP)
TAR_LABELS = np.array([1] * 4 + [0] * 10)


def test_tar_at_far_hand_computed() -> None:
    # FAR <= 0.1 allows 1 of 10 impostors (the .85). Going down: .85 FAR .1, .8 FAR .1,
    # .7 FAR .1, .6 FAR .2 -> smallest admissible threshold .7, genuines .9 .8 .7 -> TAR .75.
    r = tar_at_far(TAR_SCORES, TAR_LABELS, 0.1)
    assert isinstance(r, TarAtFar)
    assert r.threshold == pytest.approx(0.7)
    assert r.tar == pytest.approx(0.75)
    assert r.achieved_far == pytest.approx(0.1)
    assert r.far_target == 0.1 and r.n_impostors == 10
    assert r.resolvable is True
    assert far_frr_at(TAR_SCORES, TAR_LABELS, r.threshold) == pytest.approx((0.1, 0.25))


def test_tar_at_far_unresolvable_is_flagged_and_uses_strictest_threshold() -> None:
    # 10 impostors < 1/0.01 = 100: no false accept is allowed, so the threshold must be
    # above the .85 impostor: smallest such score is .9 -> TAR 1/4, FAR 0, flagged.
    r = tar_at_far(TAR_SCORES, TAR_LABELS, 0.01)
    assert r.resolvable is False
    assert r.n_impostors == 10
    assert r.threshold == pytest.approx(0.9)
    assert r.tar == pytest.approx(0.25)
    assert r.achieved_far == 0.0


def test_tar_at_far_resolvable_boundary() -> None:
    # Exactly 1/far impostors is enough; one fewer is not.
    scores = np.r_[np.linspace(1, 2, 5), np.linspace(0, 0.9, 10)]
    labels = np.r_[np.ones(5, int), np.zeros(10, int)]
    assert tar_at_far(scores, labels, 0.1).resolvable is True
    assert tar_at_far(scores[:-1], labels[:-1], 0.1).resolvable is False


def test_tar_at_far_when_top_score_is_an_impostor() -> None:
    # No score accepts zero impostors: reject everything, threshold just above the max.
    r = tar_at_far([0.5, 0.4, 0.9, 0.1], [1, 1, 0, 0], 0.1)
    assert r.tar == 0.0 and r.achieved_far == 0.0
    assert r.threshold > 0.9 and math.isfinite(r.threshold)
    assert far_frr_at([0.5, 0.4, 0.9, 0.1], [1, 1, 0, 0], r.threshold) == (0.0, 1.0)


def test_far_frr_at_uses_accept_when_greater_or_equal() -> None:
    scores = [0.5, 0.5, 0.2, 0.8]
    labels = [1, 0, 1, 0]
    # At 0.5: genuine .5 accepted (>=), .2 rejected; impostor .5 and .8 accepted.
    assert far_frr_at(scores, labels, 0.5) == (1.0, 0.5)
    assert far_frr_at(scores, labels, 0.51) == (0.5, 1.0)


def test_best_accuracy_threshold_hand_computed() -> None:
    # sorted: .1(0) .3(1) .4(0) .6(1) .7(1); midpoints .2 .35 .5 .65
    # acc at .2: accept .3 .4 .6 .7 -> correct .1,.3,.6,.7 = 4/5; at .5: reject .1 .3 .4 ->
    # correct .1,.4,.6,.7 = 4/5 as well; ties go to the lowest: .2
    threshold, acc = best_accuracy_threshold([0.1, 0.3, 0.4, 0.6, 0.7], [0, 1, 0, 1, 1])
    assert acc == pytest.approx(0.8)
    assert threshold == pytest.approx(0.2)


def test_kfold_threshold_is_chosen_without_the_test_fold() -> None:
    # fold 0: genuine .3 .35, impostor 0 .05   fold 1: genuine .8 .9, impostor .1 .2
    # Test fold 0 -> threshold from fold 1 only: midpoint of .2/.8 = .5, which rejects
    #   fold 0's genuines -> accuracy 2/4. (Using all data would give .25 and accuracy 1.)
    # Test fold 1 -> threshold from fold 0 only: midpoint of .05/.3 = .175, which accepts
    #   the .2 impostor -> accuracy 3/4.
    scores = np.array([0.3, 0.35, 0.0, 0.05, 0.8, 0.9, 0.1, 0.2])
    labels = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    folds = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    leaky_threshold, leaky_acc = best_accuracy_threshold(scores, labels)
    assert leaky_threshold == pytest.approx(0.25) and leaky_acc == 1.0

    result = kfold_accuracy(scores, labels, folds)
    assert result.thresholds == pytest.approx([0.5, 0.175])
    assert result.fold_accuracies == pytest.approx([0.5, 0.75])
    assert result.mean == pytest.approx(0.625)
    assert result.std == pytest.approx(0.125)  # population std: |0.5 - 0.75| / 2


def test_kfold_fold_without_both_classes_in_training_is_an_error() -> None:
    # Training for test fold 0 is fold 1 alone, which holds only genuines.
    with pytest.raises(ValueError, match="fold 0"):
        kfold_accuracy([0.1, 0.9, 0.8, 0.7], [0, 1, 1, 1], [0, 0, 1, 1])


def test_kfold_input_validation() -> None:
    with pytest.raises(ValueError, match="at least 2 folds"):
        kfold_accuracy(SEP_SCORES, SEP_LABELS, np.zeros(8, int))
    with pytest.raises(ValueError, match="one entry per pair"):
        kfold_accuracy(SEP_SCORES, SEP_LABELS, [0, 1])
    with pytest.raises(ValueError, match="integer"):
        kfold_accuracy(SEP_SCORES, SEP_LABELS, np.linspace(0, 1, 8))


ALL_FUNCTIONS = [
    roc,
    roc_auc,
    eer,
    lambda s, y: tar_at_far(s, y, 0.01),
    lambda s, y: far_frr_at(s, y, 0.5),
    best_accuracy_threshold,
    lambda s, y: kfold_accuracy(s, y, np.arange(len(s)) % 2),
    summary,
]


@pytest.mark.parametrize("fn", ALL_FUNCTIONS)
@pytest.mark.parametrize(
    ("scores", "labels", "message"),
    [
        ([0.1, 0.2, 0.3], [0, 1], "same length"),
        ([], [], "empty"),
        ([0.1, 0.2, 0.3], [1, 1, 1], "no impostor"),
        ([0.1, 0.2, 0.3], [0, 0, 0], "no genuine"),
        ([0.1, float("nan"), 0.3], [0, 1, 1], "finite"),
        ([0.1, float("inf"), 0.3], [0, 1, 1], "finite"),
        ([0.1, 0.2, 0.3], [0, 1, 2], "0/1"),
        ([[0.1, 0.2]], [[0, 1]], "1-D"),
        (["a", "b"], [0, 1], "numeric"),
    ],
)
def test_input_validation(fn, scores, labels, message) -> None:
    with pytest.raises(ValueError, match=message):
        fn(scores, labels)


def test_bool_labels_and_lists_are_accepted() -> None:
    assert roc_auc(list(SEP_SCORES), [bool(v) for v in SEP_LABELS]) == 1.0


@pytest.mark.parametrize("far", [0.0, -0.1, 1.5, float("nan")])
def test_tar_at_far_rejects_bad_target(far: float) -> None:
    with pytest.raises(ValueError, match="far"):
        tar_at_far(SEP_SCORES, SEP_LABELS, far)


def test_far_frr_at_rejects_nan_threshold() -> None:
    with pytest.raises(ValueError, match="NaN"):
        far_frr_at(SEP_SCORES, SEP_LABELS, float("nan"))


def test_summary_contents() -> None:
    folds = np.arange(len(TAR_SCORES)) % 2
    out = summary(TAR_SCORES, TAR_LABELS, folds)
    assert out["n_pairs"] == 14 and out["n_genuine"] == 4 and out["n_impostor"] == 10
    assert out["auc"] == pytest.approx(roc_auc(TAR_SCORES, TAR_LABELS))
    assert (out["eer"], out["eer_threshold"]) == pytest.approx(eer(TAR_SCORES, TAR_LABELS))
    assert list(out["tar_at_far"]) == ["1e-01", "1e-02", "1e-03", "1e-04"]
    assert out["tar_at_far"]["1e-01"]["tar"] == pytest.approx(0.75)
    assert out["tar_at_far"]["1e-01"]["resolvable"] is True
    assert out["tar_at_far"]["1e-04"]["resolvable"] is False
    k = kfold_accuracy(TAR_SCORES, TAR_LABELS, folds)
    assert out["kfold"] == {
        "mean": k.mean,
        "std": k.std,
        "fold_accuracies": k.fold_accuracies,
        "thresholds": k.thresholds,
    }
    json.dumps(out, allow_nan=False)  # plain, finite Python values only

    assert "kfold" not in summary(TAR_SCORES, TAR_LABELS)
