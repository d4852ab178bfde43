"""Threshold tables: FAR per comparison, gallery-size-aware identification thresholds."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from facegate.calibration import (
    calibrate_from_impostors,
    default_calibration,
    impostor_scores,
    threshold_table,
)
from facegate.models import MODELS


def test_threshold_table_accepts_at_most_the_allowed_share_of_impostors():
    rng = np.random.default_rng(0)
    impostors = rng.normal(0.0, 0.1, 200_000)
    fars, thresholds = threshold_table(impostors)
    assert fars[0] == pytest.approx(0.1) and len(fars) >= 17  # down to 1e-5 at least
    for far, threshold in zip(fars, thresholds):
        accepted = (impostors >= threshold).mean()
        assert accepted <= far
        assert accepted >= far * 0.5 or far * len(impostors) < 4
    assert all(b >= a for a, b in itertools.pairwise(thresholds))


def test_identification_threshold_grows_stricter_with_the_gallery():
    rng = np.random.default_rng(1)
    calibration = calibrate_from_impostors(rng.normal(0, 0.1, 1_000_000), "arcface", "x" * 64, "synthetic")
    small, far_small = calibration.identify_threshold(1e-3, 10)
    large, far_large = calibration.identify_threshold(1e-3, 10_000)
    assert far_small == pytest.approx(1e-4) and far_large == pytest.approx(1e-7)
    assert large > small
    assert not calibration.resolvable(far_large) and calibration.resolvable(far_small)
    # Beyond the sample the threshold is extrapolated, never loosened.
    assert calibration.threshold_at(1e-9) >= calibration.threshold_at(1e-6)


def test_impostor_scores_skip_same_identity_and_self_pairs():
    vectors = np.eye(4, dtype=np.float32)
    vectors[1] = vectors[0]
    ids = np.array(["a", "a", "b", "c"])
    scores = impostor_scores(vectors, ids, chunk=2)
    assert len(scores) == 5  # 6 pairs minus the one same-identity pair
    assert scores.max() == 0.0


def test_too_few_impostors_are_refused():
    with pytest.raises(ValueError, match="too few"):
        calibrate_from_impostors(np.array([0.1, 0.2, 0.3]), "arcface", "x", "tiny")


@pytest.mark.parametrize("model", ["arcface", "dlib"])
def test_shipped_calibration_matches_the_installed_weights(model):
    calibration = default_calibration(model)
    key = "arcface_mbf" if model == "arcface" else "dlib_resnet"
    assert calibration.model_sha256 == MODELS[key].sha256
    assert calibration.impostor_pairs > 10_000_000
    assert "LFW" in calibration.source
    # ArcFace impostors sit near 0 cosine: a 1e-4 threshold well above 0.2, below 0.6.
    threshold = calibration.verify_threshold(1e-4)
    assert (0.2 < threshold < 0.6) if model == "arcface" else (0.85 < threshold < 0.99)


def test_shipped_provider_returns_the_default_calibration():
    from facegate.calibration import CalibrationProvider, ShippedCalibrations

    provider: CalibrationProvider = ShippedCalibrations()
    sha = default_calibration("arcface").model_sha256
    assert provider.calibration_for("arcface", sha) == default_calibration("arcface")
    # Stateless, and no sha256 check of its own: the caller compares.
    assert ShippedCalibrations().calibration_for("arcface", "0" * 64) == default_calibration("arcface")


def test_registry_provider_returns_what_active_calibration_returns(tmp_path):
    from facegate.calibration import CalibrationProvider
    from facegate.config import Settings
    from facegate.modelops.registry import (
        RegistryCalibrations,
        active_calibration,
        refresh_active_calibration,
    )

    settings = Settings(data_dir=tmp_path / "data")
    provider: CalibrationProvider = RegistryCalibrations(settings)
    sha = default_calibration("arcface").model_sha256
    try:
        assert provider.calibration_for("arcface", sha) == active_calibration("arcface", settings, sha)
        # No MLflow store under this data folder: the shipped default, for any weights.
        assert provider.calibration_for("arcface", "0" * 64) == default_calibration("arcface")
    finally:
        refresh_active_calibration()


def test_the_calibration_floor_does_not_import_mlflow():
    import subprocess
    import sys

    code = (
        "import sys, facegate.calibration as c; c.ShippedCalibrations().calibration_for('arcface', ''); "
        "assert 'mlflow' not in sys.modules, 'mlflow imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
