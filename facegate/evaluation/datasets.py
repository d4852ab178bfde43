"""Labelled face collections: a folder per person, or a ``manifest.csv``, embedded once.

Embeddings are cached in a ``.npz`` keyed by the model, so evaluation, calibration and
benchmarks that share a dataset pay for the network once.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facegate.engine import FaceEngine
from facegate.parallel import Compute, EngineSpec, PhotoTask, map_photos

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".pgm", ".ppm", ".bmp", ".tif", ".tiff"}


@dataclass
class LabelledImage:
    path: Path
    identity: str


def read_dataset(root: Path) -> list[LabelledImage]:
    """``root/manifest.csv`` (relative_path,identity) if present, else ``root/<identity>/<image>``.

    Rows with no identity or several (``a|b``, group photos) are left out: they cannot
    make a labelled pair.
    """
    manifest = root / "manifest.csv"
    items: list[LabelledImage] = []
    if manifest.exists():
        with manifest.open(newline="") as handle:
            for row in csv.DictReader(handle):
                identity = (row.get("identity") or "").strip()
                if identity and "|" not in identity:
                    items.append(LabelledImage(root / row["relative_path"], identity))
        return items
    for person in sorted(p for p in root.iterdir() if p.is_dir()):
        for image in sorted(person.iterdir()):
            if image.is_file() and (image.suffix.lower() in IMAGE_SUFFIXES or "." not in image.name):
                items.append(LabelledImage(image, person.name))
    if not items:
        raise ValueError(f"{root}: no manifest.csv and no <identity>/<image> folders found")
    return items


@dataclass
class EmbeddedSet:
    paths: list[str]
    identities: np.ndarray
    vectors: np.ndarray  # (n, d) L2-normalised; zero rows for unreadable images
    fallbacks: np.ndarray  # "", "low_score", "center_crop", "unreadable"
    quality: np.ndarray  # overall quality score per image
    model_id: str
    model_sha256: str

    def subset(self, rows: np.ndarray) -> EmbeddedSet:
        return EmbeddedSet(
            paths=[self.paths[i] for i in rows],
            identities=self.identities[rows],
            vectors=self.vectors[rows],
            fallbacks=self.fallbacks[rows],
            quality=self.quality[rows],
            model_id=self.model_id,
            model_sha256=self.model_sha256,
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            paths=np.array(self.paths),
            identities=self.identities,
            vectors=self.vectors,
            fallbacks=self.fallbacks,
            quality=self.quality,
            model_id=self.model_id,
            model_sha256=self.model_sha256,
        )

    @classmethod
    def load(cls, path: Path) -> EmbeddedSet:
        data = np.load(path, allow_pickle=False)
        return cls(
            paths=[str(p) for p in data["paths"]],
            identities=data["identities"],
            vectors=data["vectors"],
            fallbacks=data["fallbacks"],
            quality=data["quality"],
            model_id=str(data["model_id"]),
            model_sha256=str(data["model_sha256"]),
        )


def embed_dataset(
    engine: FaceEngine,
    items: list[LabelledImage],
    on_progress: Callable[[], None] | None = None,
    cache: Path | None = None,
    compute: Compute | None = None,
) -> EmbeddedSet:
    """One template per image (its main face, with the engine's documented fall-backs),
    computed with ``engine`` in this process or, with ``compute`` on Ray, by actors holding
    the same engine (:mod:`facegate.parallel`)."""
    if cache is not None and cache.exists():
        cached = EmbeddedSet.load(cache)
        index = {str(Path(p).resolve()): i for i, p in enumerate(cached.paths)}
        wanted = [index.get(str(i.path.resolve())) for i in items]
        if cached.model_sha256 == engine.model_sha256 and None not in wanted:
            return cached.subset(np.array(wanted, dtype=np.int64))
    vectors = np.zeros((len(items), engine.recognizer.dimension), dtype=np.float32)
    fallbacks, quality = ["unreadable"] * len(items), np.zeros(len(items), dtype=np.float32)
    tasks = [PhotoTask(i, str(item.path), str(item.path)) for i, item in enumerate(items)]
    for photo in map_photos(tasks, EngineSpec.of(engine), "main_face", compute or Compute(), engine=engine):
        if photo.ok:
            face = photo.faces[0]
            vectors[photo.key] = face.template.vector
            fallbacks[photo.key] = face.fallback
            quality[photo.key] = face.quality.score
        if on_progress:
            on_progress()
    result = EmbeddedSet(
        paths=[str(i.path) for i in items],
        identities=np.array([i.identity for i in items]),
        vectors=vectors,
        fallbacks=np.array(fallbacks),
        quality=quality,
        model_id=engine.model_id,
        model_sha256=engine.model_sha256,
    )
    if cache is not None:
        result.save(cache)
    return result
