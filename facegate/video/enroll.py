"""Enroll a person from a short clip: track the faces, keep the one person (or the track the
caller picks), choose K good and different-looking frames, and enroll them through the normal
enrollment rules (quality, duplicates, a face that matches another subject). Nothing is kept
of a clip that enrolls no frame."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facegate.engine import Face
from facegate.errors import FaceGateError, InvalidRequestError, NoFaceError, VideoError
from facegate.gallery.context import find_gallery
from facegate.gallery.inputs import Probe
from facegate.gallery.schemas import EnrollReport
from facegate.gallery.service import GalleryService
from facegate.security import Principal
from facegate.video.identity import usable
from facegate.video.sources import VideoSource
from facegate.video.tracking import IouTracker

MIN_TRACK_SHARE = 0.2  # a track in view for less than this share of the sampled frames is a passer-by


@dataclass
class TrackSummary:
    track: int
    frames: int
    first_frame: int
    last_frame: int
    usable_frames: int


@dataclass
class VideoEnrollReport:
    subject: str
    source: str
    frames_sampled: int
    tracks: list[TrackSummary]
    track: int
    chosen_frames: list[int]
    enrollment: EnrollReport
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject, "source": self.source, "frames_sampled": self.frames_sampled,
            "tracks": [t.__dict__ for t in self.tracks], "track": self.track, "chosen_frames": self.chosen_frames,
            "enrollment": self.enrollment.model_dump(mode="json"), "notes": self.notes,
        }


def rights_attributes(rights: str | None) -> dict[str, Any] | None:
    """A member's attributes from comma-separated rights (``lab:enter,lab:*``); None for none given."""
    return {"rights": [r.strip() for r in rights.split(",") if r.strip()]} if rights else None


def collect_tracks(
    service: GalleryService, gallery: str, source: str | Path, every: int, max_frames: int, principal: Principal
) -> tuple[dict[int, list[tuple[int, Face]]], int, tuple[int, int]]:
    """Faces per track over the sampled frames of the clip: ({track: [(frame, face)]}, frames, (h, w))."""
    with service.ctx.sessions() as session:
        g = find_gallery(session, gallery, principal)
        principal.require("enroll", g)
    engine = service.ctx.engine_for(g)
    tracker = IouTracker(max_missed=every * 5)
    faces: dict[int, list[tuple[int, Face]]] = {}
    sampled, shape = 0, (0, 0)
    with VideoSource(source) as video:
        for frame in video:
            if frame.index % every:
                continue
            sampled += 1
            shape = frame.image.shape[:2]
            found = engine.analyze(frame.image)
            assigned, _ = tracker.update(frame.index, [f.detection for f in found])
            for track_id, face in zip(assigned, found):
                faces.setdefault(track_id, []).append((frame.index, face))
            if sampled >= max_frames:
                break
    return faces, sampled, (int(shape[0]), int(shape[1]))


def choose_frames(faces: list[tuple[int, Face]], k: int) -> list[tuple[int, Face]]:
    """K frames that are good and unlike each other: the best quality first, then each time the
    usable face least similar to those chosen (weighted by its quality)."""
    # Faces that pass enrollment's own quality gate when there are any, else merely usable ones
    # (which enrollment will then refuse, each with its reason).
    pool = [(i, f) for i, f in faces if f.quality.acceptable] or [(i, f) for i, f in faces if usable(f)]
    if not pool:
        return []
    pool.sort(key=lambda item: -item[1].quality.score)
    chosen = [pool.pop(0)]
    while pool and len(chosen) < k:
        chosen_vectors = np.stack([f.template.vector for _, f in chosen])
        similarity = np.stack([f.template.vector for _, f in pool]) @ chosen_vectors.T
        gain = (1.0 - similarity.max(axis=1)) * np.array([max(f.quality.score, 0.05) for _, f in pool])
        chosen.append(pool.pop(int(np.argmax(gain))))
    return sorted(chosen, key=lambda item: item[0])


def enroll_from_video(
    service: GalleryService,
    gallery: str,
    external_id: str,
    source: str | Path,
    *,
    principal: Principal,
    display_name: str | None = None,
    attributes: dict[str, Any] | None = None,
    track: int | None = None,
    k: int = 5,
    every: int = 2,
    max_frames: int = 300,
) -> VideoEnrollReport:
    """Track the clip's person and enroll K chosen frames; a refusal says why and keeps nothing."""
    faces, sampled, (height, width) = collect_tracks(service, gallery, source, every, max_frames, principal)
    summaries = [TrackSummary(t, len(v), v[0][0], v[-1][0], sum(usable(f) for _, f in v)) for t, v in faces.items()]
    people = [s for s in summaries if s.frames >= max(3, MIN_TRACK_SHARE * sampled)]
    if track is None:
        if not people:
            raise NoFaceError(f"{source}: no face stays in view long enough to enroll (sampled {sampled} frames)")
        if len(people) > 1:
            listed = ", ".join(f"track {p.track} ({p.frames} frames from frame {p.first_frame})" for p in people)
            raise InvalidRequestError(f"{source}: {len(people)} people are in view ({listed}); pick one with track")
        track = people[0].track
    elif track not in faces:
        raise InvalidRequestError(f"{source}: there is no track {track}; tracks: {sorted(faces)}")
    chosen = choose_frames(faces[track], k)
    if not chosen:
        raise VideoError(f"{source}: track {track} has no frame good enough to enroll (too small, blurred or dark)")
    name = Path(str(source)).name
    probes = [Probe(f"{name}#frame{i}", [face], height, width) for i, face in chosen]
    existed = _subject_exists(service, gallery, external_id, principal)
    # A new subject is created with its first accepted frame: nothing of a failed one stays.
    report = service.enroll(gallery, external_id, probes, display_name=display_name, attributes=attributes,
                            principal=principal)
    notes = []
    if report.accepted == 0 and not existed:
        notes.append("no frame was accepted: no subject was created")
    return VideoEnrollReport(external_id, str(source), sampled, summaries, track, [i for i, _ in chosen], report, notes)


def _subject_exists(service: GalleryService, gallery: str, external_id: str, principal: Principal) -> bool:
    try:
        service.get_subject(gallery, external_id, principal=principal)
        return True
    except FaceGateError:
        return False
