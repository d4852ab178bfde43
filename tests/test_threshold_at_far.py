"""One rule for "the threshold at a FAR": the calibration table, the registry's bootstrap
calibration and the open-set FPIR thresholds of a dataset evaluation all give the same
threshold on the same scores."""

from __future__ import annotations

import numpy as np
import pytest

from facegate.calibration import allowed_at_far, threshold_above, threshold_at_far, threshold_table
from facegate.evaluation import dataset_eval
from facegate.evaluation.datasets import EmbeddedSet
from facegate.modelops.registry import calibrate_scores

FARS = (1e-1, 1e-2, 1e-3)


def test_threshold_above_accepts_exactly_the_allowed_highest_scores():
    ordered = np.array([0.9, 0.8, 0.8, 0.5, 0.1])
    assert threshold_above(ordered, 0) > 0.9 and (ordered >= threshold_above(ordered, 0)).sum() == 0
    assert (ordered >= threshold_above(ordered, 1)).sum() == 1
    # A tie at the cut: strictly above it, so fewer than allowed rather than more.
    assert (ordered >= threshold_above(ordered, 2)).sum() == 1
    assert threshold_above(ordered, 5) == threshold_above(ordered, 99) == 0.1  # everyone
    assert allowed_at_far(1e-3, 12_345) == 12
    assert threshold_at_far(ordered, 0.2) == threshold_above(ordered, 1)


def test_table_registry_and_open_set_agree_on_the_same_scores(monkeypatch):
    rng = np.random.default_rng(7)
    scores = rng.normal(0.0, 0.1, 20_000)
    ordered = np.sort(scores)[::-1]

    table_fars, table_thresholds = threshold_table(scores, FARS)
    assert table_fars == list(FARS)
    shared = [threshold_at_far(ordered, far) for far in FARS]
    registry = [calibrate_scores(scores, far, "m", "s", "test", bootstrap=0).threshold for far in FARS]
    assert table_thresholds == shared == registry
    # The registry's table (on its own grid) holds the same thresholds at the same rates.
    calibration = calibrate_scores(scores, 1e-3, "m", "s", "test", bootstrap=0).calibration
    for far, threshold in zip(calibration.fars, calibration.thresholds):
        assert threshold == threshold_at_far(ordered, far)

    # The open-set evaluation goes through the same function (spied on), on its strangers'
    # best scores, and reports what it returns.
    seen: list[tuple[np.ndarray, float, float]] = []

    def spy(ordered_desc: np.ndarray, far: float) -> float:
        result = threshold_at_far(ordered_desc, far)
        seen.append((np.array(ordered_desc), far, result))
        return result

    monkeypatch.setattr(dataset_eval, "threshold_at_far", spy)
    people, per_person, dim = 60, 4, 24
    centres = np.repeat(rng.normal(size=(people, dim)), per_person, axis=0)
    vectors = (centres + 0.7 * rng.normal(size=centres.shape)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    n = people * per_person
    embedded = EmbeddedSet(
        paths=[f"p{i // per_person:02d}/{i:03d}.jpg" for i in range(n)],
        identities=np.array([f"p{i // per_person:02d}" for i in range(n)]),
        vectors=vectors,
        fallbacks=np.array([""] * n),
        quality=np.ones(n),
        model_id="m",
        model_sha256="s",
    )
    fpirs = (0.5, 1e-1, 1e-2)
    out = dataset_eval.open_set_identification(embedded, fpirs=fpirs, seed=3)
    assert [far for _, far, _ in seen] == list(fpirs)
    for (stranger_best, fpir, threshold), key in zip(seen, out["dir_at_fpir"]):
        assert out["dir_at_fpir"][key]["threshold"] == threshold
        best64 = stranger_best.astype(np.float64)
        if allowed_at_far(fpir, len(best64)) < 1:
            continue
        # float32 scores get a float32 step above the cut: the very same strangers are accepted.
        table = threshold_table(best64, (fpir,))[1][0]
        assert table == pytest.approx(threshold, abs=1e-6)
        assert np.array_equal(stranger_best >= threshold, best64 >= table)
        assert (stranger_best >= threshold).mean() <= fpir
