"""Score image pairs with the engine: the core of every verification benchmark.

Each distinct image is embedded once. An image where no face is found at the normal
detector threshold is not dropped (that would flatter the result): it is scored through
:meth:`FaceEngine.main_face`'s fall-backs (a lower detector threshold, then a centred
crop), and the fall-backs are counted in the summary.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facegate.engine import FaceEngine
from facegate.errors import FaceGateError
from facegate.imaging import load_image
from facegate.recognition import Template


@dataclass
class EmbeddedImage:
    path: Path
    template: Template | None
    fallback: str = ""  # "", "low_score", "center_crop" or "unreadable"
    error: str = ""


@dataclass
class PairScores:
    scores: np.ndarray
    labels: np.ndarray | None
    fallbacks: Counter = field(default_factory=Counter)
    images: int = 0
    unreadable: list[str] = field(default_factory=list)


def embed_images(
    engine: FaceEngine, paths: Iterable[Path], on_progress: Callable[[], None] | None = None
) -> dict[Path, EmbeddedImage]:
    out: dict[Path, EmbeddedImage] = {}
    for path in paths:
        if path in out:
            continue
        try:
            face = engine.main_face(load_image(path))
            out[path] = EmbeddedImage(path, face.template, face.fallback)
        except FaceGateError as exc:
            out[path] = EmbeddedImage(path, None, "unreadable", exc.message)
        if on_progress:
            on_progress()
    return out


def score_pairs(
    engine: FaceEngine,
    pairs: list[tuple[Path, Path]],
    labels: list[bool] | None = None,
    on_progress: Callable[[], None] | None = None,
) -> PairScores:
    """Cosine similarity per pair (higher = more alike); an unreadable image scores -1."""
    unique = list(dict.fromkeys(p for pair in pairs for p in pair))
    embedded = embed_images(engine, unique, on_progress)
    scores = np.empty(len(pairs), dtype=np.float64)
    for i, (a, b) in enumerate(pairs):
        ta, tb = embedded[a].template, embedded[b].template
        scores[i] = -1.0 if ta is None or tb is None else ta.similarity(tb)
    fallbacks = Counter(e.fallback for e in embedded.values() if e.fallback)
    return PairScores(
        scores=scores,
        labels=None if labels is None else np.asarray(labels, dtype=np.int64),
        fallbacks=fallbacks,
        images=len(unique),
        unreadable=[f"{e.path}: {e.error}" for e in embedded.values() if e.fallback == "unreadable"],
    )


_TRUE = {"1", "true", "yes", "same", "y", "t"}
_FALSE = {"0", "false", "no", "different", "n", "f"}


def read_pairs_csv(path: Path) -> tuple[list[tuple[Path, Path]], list[bool] | None]:
    """Rows ``path1,path2[,same]``; a header row is skipped; paths are relative to the CSV."""
    pairs: list[tuple[Path, Path]] = []
    labels: list[bool] = []
    base = path.parent
    with path.open(newline="") as handle:
        for lineno, row in enumerate(csv.reader(handle), start=1):
            if not row or not "".join(row).strip() or row[0].startswith("#"):
                continue
            if lineno == 1 and row[0].strip().lower() in {"path1", "img1", "image1", "file1", "a"}:
                continue
            if len(row) < 2:
                raise ValueError(f"{path}:{lineno}: expected 'path1,path2[,same]', got {row!r}")
            p1, p2 = (base / row[0].strip()), (base / row[1].strip())
            pairs.append((p1, p2))
            if len(row) >= 3 and row[2].strip():
                value = row[2].strip().lower()
                if value not in _TRUE | _FALSE:
                    raise ValueError(f"{path}:{lineno}: 'same' must be 1/0, true/false or yes/no, got {row[2]!r}")
                labels.append(value in _TRUE)
    if labels and len(labels) != len(pairs):
        raise ValueError(f"{path}: the 'same' column is filled on some rows and not others")
    return pairs, (labels or None)


def write_scores_csv(
    path: Path, pairs: list[tuple[Path, Path]], result: PairScores, relative_to: Path | None = None
) -> None:
    def show(p: Path) -> str:
        if relative_to is not None:
            try:
                return str(p.relative_to(relative_to))
            except ValueError:
                pass
        return str(p)

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path1", "path2", "same", "score"] if result.labels is not None else ["path1", "path2", "score"])
        for i, (a, b) in enumerate(pairs):
            row: list[str | int] = [show(a), show(b)]
            if result.labels is not None:
                row.append(int(result.labels[i]))
            row.append(f"{result.scores[i]:.6f}")
            writer.writerow(row)
