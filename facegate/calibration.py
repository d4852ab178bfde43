"""Decision thresholds tied to false-accept rates, and where they come from.

A calibration is a table of (false-accept rate per comparison -> similarity threshold)
measured on impostor pairs of one model. Verification (1:1) reads it at the target FAR.
Identification (1:N) must count that a stranger is compared with every enrolled template,
so its per-comparison rate is the search's false-positive identification rate divided by the
gallery size (union bound): the threshold grows stricter as the gallery grows.

FaceGate ships a default calibration per model measured on LFW impostor pairs
(``facegate/data/calibration_default.json``, made by ``bench/calibrate_defaults.py``);
every decision reports which calibration and which rate it used.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Protocol

import numpy as np

from facegate.errors import ModelNotFoundError

DEFAULT_VERIFY_FAR = 1e-4
DEFAULT_IDENTIFY_FPIR = 1e-3


@dataclass(frozen=True)
class Calibration:
    """Far-to-threshold table of one model, with its provenance."""

    model_id: str
    model_sha256: str
    source: str
    fars: tuple[float, ...]  # decreasing
    thresholds: tuple[float, ...]  # increasing with decreasing far
    impostor_pairs: int
    name: str = "default"
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def min_far(self) -> float:
        """Below this rate the threshold is extrapolated, not measured."""
        return float(self.fars[-1])

    def threshold_at(self, far: float) -> float:
        """Threshold for a per-comparison false-accept rate, interpolated in log(FAR).

        Rates below what the sample can show are clamped to the strictest measured
        threshold plus a margin that grows with each missing decade, and flagged by
        :meth:`resolvable`.
        """
        if not 0 < far <= 1:
            raise ValueError(f"far must be in (0, 1], got {far}")
        log_fars = np.log10(np.array(self.fars))
        target = math.log10(far)
        if target >= log_fars[0]:
            return float(self.thresholds[0])
        if target <= log_fars[-1]:
            # Extrapolate with the slope of the last measured decade, never looser.
            anchor = int(np.searchsorted(-log_fars, -(log_fars[-1] + 1.0)))
            anchor = min(anchor, len(log_fars) - 2)
            slope = (self.thresholds[-1] - self.thresholds[anchor]) / (log_fars[anchor] - log_fars[-1])
            return float(self.thresholds[-1] + max(slope, 0.0) * (log_fars[-1] - target))
        return float(np.interp(-target, -log_fars, np.array(self.thresholds)))

    def resolvable(self, far: float) -> bool:
        return far >= self.min_far

    def verify_threshold(self, far: float = DEFAULT_VERIFY_FAR) -> float:
        return self.threshold_at(far)

    def identify_threshold(self, fpir: float = DEFAULT_IDENTIFY_FPIR, gallery_size: int = 1) -> tuple[float, float]:
        """(threshold, per-comparison FAR) for a whole search of ``gallery_size`` templates."""
        per_comparison = fpir / max(gallery_size, 1)
        return self.threshold_at(per_comparison), per_comparison

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "model_id": self.model_id,
            "model_sha256": self.model_sha256,
            "source": self.source,
            "impostor_pairs": self.impostor_pairs,
            "table": [[f, t] for f, t in zip(self.fars, self.thresholds)],
            **({"extra": self.extra} if self.extra else {}),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        table = data["table"]
        return cls(
            model_id=data["model_id"],
            model_sha256=data["model_sha256"],
            source=data["source"],
            fars=tuple(float(f) for f, _ in table),
            thresholds=tuple(float(t) for _, t in table),
            impostor_pairs=int(data["impostor_pairs"]),
            name=data.get("name", "default"),
            extra=data.get("extra", {}),
        )


CALIBRATION_FARS = tuple(10.0 ** -k for k in np.arange(1, 8.01, 0.25))


def impostor_scores(vectors: np.ndarray, identities: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Similarity of every pair of images of different people (upper triangle only)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    ids = np.asarray(identities)
    parts = []
    for start in range(0, len(vectors), chunk):
        block = vectors[start : start + chunk] @ vectors.T
        rows = np.arange(start, min(start + chunk, len(vectors)))
        upper = np.arange(len(vectors))[None, :] > rows[:, None]
        different = ids[rows][:, None] != ids[None, :]
        parts.append(block[upper & different])
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def allowed_at_far(far: float, n: int) -> int:
    """Impostors of ``n`` that may score at or above the threshold at ``far``."""
    return math.floor(far * n)


def threshold_above(ordered_desc: np.ndarray, allowed: int) -> float:
    """The threshold accepting exactly the ``allowed`` highest of ``ordered_desc`` (sorted
    high to low; accept when score >= threshold): strictly above the (allowed+1)-th score,
    or every score when ``allowed`` covers them all.

    The one rule behind every FAR table, bootstrap and FPIR threshold in FaceGate. The
    scores keep their dtype, so float32 scores get a float32 step above the cut.
    """
    if allowed >= len(ordered_desc):
        return float(ordered_desc[-1])
    return float(np.nextafter(ordered_desc[allowed], np.inf))


def threshold_at_far(ordered_desc: np.ndarray, far: float) -> float:
    """The smallest threshold whose accept rate on these impostor scores is at most ``far``
    (``ordered_desc``: sorted high to low). A rate below ``1 / len`` accepts no one."""
    return threshold_above(ordered_desc, allowed_at_far(far, len(ordered_desc)))


def threshold_table(impostors: np.ndarray, fars: tuple[float, ...] = CALIBRATION_FARS) -> tuple[list[float], list[float]]:
    """For each FAR the sample can resolve, the smallest threshold with accept rate <= FAR
    (accept when score >= threshold)."""
    ordered = np.sort(np.asarray(impostors, dtype=np.float64))[::-1]
    kept_fars, thresholds = [], []
    for far in fars:
        if allowed_at_far(far, len(ordered)) < 1:
            break
        kept_fars.append(float(far))
        thresholds.append(threshold_at_far(ordered, far))
    return kept_fars, thresholds


def calibrate_from_impostors(
    impostors: np.ndarray,
    model_id: str,
    model_sha256: str,
    source: str,
    name: str = "default",
    min_far: float = 0.0,
) -> Calibration:
    """``min_far`` stops the table where the sample's tail stops being trustworthy (on LFW,
    below 1e-5 the highest 'impostor' scores are label noise: one person filed under two
    names, or a mislabelled photo); rates below it are extrapolated."""
    fars, thresholds = threshold_table(impostors, tuple(f for f in CALIBRATION_FARS if f >= min_far * 0.999))
    if len(fars) < 2:
        raise ValueError(f"{len(impostors)} impostor pairs are too few to calibrate (need at least 100)")
    return Calibration(
        model_id=model_id,
        model_sha256=model_sha256,
        source=source,
        fars=tuple(fars),
        thresholds=tuple(thresholds),
        impostor_pairs=len(impostors),
        name=name,
    )


@lru_cache(maxsize=1)
def _shipped() -> dict[str, Calibration]:
    path = resources.files("facegate") / "data" / "calibration_default.json"
    data = json.loads(path.read_text())
    return {model: Calibration.from_dict(entry) for model, entry in data.items()}


def default_calibration(model_id: str) -> Calibration:
    try:
        return _shipped()[model_id]
    except KeyError:
        raise ModelNotFoundError(f"no shipped calibration for model {model_id!r}") from None


class CalibrationProvider(Protocol):
    """Where a service gets the calibration of a gallery's model: injected, so the request
    path never imports MLflow unless the registry provider is the one given."""

    def calibration_for(self, model_id: str, model_sha256: str) -> Calibration: ...


class ShippedCalibrations:
    """The calibrations shipped in ``facegate/data``; stateless. The caller checks that the
    returned calibration's sha256 is the gallery's."""

    def calibration_for(self, model_id: str, model_sha256: str) -> Calibration:
        return default_calibration(model_id)
