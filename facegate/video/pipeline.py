"""Live recognition: every face of every frame boxed, tracked and named by its track's evidence.

:class:`LiveRecognizer` takes frames one at a time (a file, a camera, a browser's WebSocket all
feed it the same way). Detection runs on every ``every``-th frame; between them boxes move by
the tracker's prediction. Faces of tracks still unnamed are embedded on detection frames;
named tracks are re-embedded now and then to catch a tracker that jumped to another person.
Decisions go through the gallery's search and thresholds; a track named, or an unknown face
ended, is one entry of the decision log, and an unknown face in view at an access point is an
alert.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from facegate.gallery.context import find_gallery, gallery_settings
from facegate.gallery.decisions import log_decision
from facegate.gallery.recognition import rank_vectors
from facegate.gallery.schemas import ThresholdInfo
from facegate.gallery.service import GalleryService
from facegate.gallery.thresholds import calibration_for
from facegate.security import Principal
from facegate.video.events import Event, EventSink
from facegate.video.identity import TrackIdentity, per_look_fpir, usable_detection
from facegate.video.sources import Frame
from facegate.video.tracking import IouTracker, Track

RECHECK_EVERY = 10  # a named track's face is embedded again every this many detection frames
# An unnamed track's face is embedded on each of its first detections, then every this many
# (neighbouring frames of one face add little evidence, and embedding is the costly step).
DENSE_LOOKS, SPARSE_EVERY = 8, 3
# A face that joins a track must look like the track's face so far: a cosine similarity under the
# calibrated threshold at this FAR means the tracker followed the box onto someone else.
SAME_PERSON_FAR = 1e-2
# A scene cut (mean absolute difference of small grey thumbnails, 0-255) ends every track: a box
# at the same place after a cut is another person.
SCENE_CUT = 40.0


def thumbnail(image: np.ndarray) -> np.ndarray:
    return cv2.resize(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (64, 36), interpolation=cv2.INTER_AREA).astype(np.float32)


@dataclass
class FaceLabel:
    """One face on one frame, as the live view draws it."""

    track: int
    box: list[float]
    state: str  # "identified", "unknown" or "pending" (no good-quality face yet)
    subject: str | None
    display_name: str | None
    score: float | None

    def text(self) -> str:
        if self.subject:
            return f"{self.display_name or self.subject} {self.score:.2f}" if self.score is not None else self.subject
        return "unknown" if self.state == "unknown" else "..."


class LiveRecognizer:
    """Tracks and names the faces of one stream of frames against one gallery."""

    def __init__(
        self,
        service: GalleryService,
        gallery: str,
        *,
        principal: Principal,
        every: int = 1,
        fps: float = 25.0,
        track_fpir: float | None = None,
        unknown_after_s: float = 5.0,
        alert_unknown: bool = False,
        sinks: Sequence[EventSink] = (),
        source: str = "",
    ) -> None:
        self.service, self.ctx = service, service.ctx
        with self.ctx.sessions() as session:
            self.gallery = find_gallery(session, gallery, principal)
            principal.require("recognize", self.gallery)
        self.engine = self.ctx.engine_for(self.gallery)
        self.every, self.fps = max(1, every), fps
        self.fpir = per_look_fpir(track_fpir or gallery_settings(self.gallery).identify_fpir)
        self.unknown_after_s, self.alert_unknown = unknown_after_s, alert_unknown
        self.tracker = IouTracker(max_missed=max(self.every * 3, int(fps)))
        self.identities: dict[int, TrackIdentity] = {}
        self.sinks, self.source = list(sinks), source
        self._detections_seen: dict[int, int] = {}
        self.threshold: ThresholdInfo | None = None  # the last checkpoint's, logged with decisions
        self.same_person = calibration_for(self.ctx, self.gallery).threshold_at(SAME_PERSON_FAR)
        self._last_thumbnail: np.ndarray | None = None
        self.scene_cuts = 0
        self.frames = 0
        self.started = time.perf_counter()

    # -- per frame ----------------------------------------------------------------------------
    def process(self, frame: Frame) -> list[FaceLabel]:
        """The faces of this frame with their track's current name."""
        self.frames += 1
        if frame.index % self.every:
            return [self._label(t.id, t.predicted(frame.index)) for t in self.tracker.tracks.values()]
        self._scene_cut(frame)
        detections = self.engine.detect(frame.image)
        assigned, ended = self.tracker.update(frame.index, detections)
        for track in ended:
            self._end(track)
        wanted, qualities = [], []
        for i, tid in enumerate(assigned):
            if self._wants_face(tid, frame.index):
                quality = self.engine.assess(frame.image, detections[i])
                if usable_detection(detections[i], quality):  # only faces worth embedding
                    wanted.append(i)
                    qualities.append(quality)
        faces = self.engine.faces_from_detections(frame.image, [detections[i] for i in wanted], qualities)
        due: list[tuple[TrackIdentity, np.ndarray]] = []
        for i, face in zip(wanted, faces):
            identity = self.identities[assigned[i]]
            if identity.good_frames and float(identity.template() @ face.template.vector) < self.same_person:
                identity = self._split(assigned, i, frame.index)  # the box now holds someone else
            if identity.label is not None:  # a named track's recheck: this face alone
                identity.last_frame = frame.index
                due.append((identity, face.template.vector))
            elif identity.add(frame.index, face):
                due.append((identity, identity.template()))
        if due:
            self._decide(frame.index, due)
        self._unknown_too_long(frame.index)
        return [self._label(tid, det.box) for tid, det in zip(assigned, detections)]

    def _scene_cut(self, frame: Frame) -> None:
        """End every track at a cut: the tracker would carry boxes onto the next shot's people."""
        small = thumbnail(frame.image)
        if self._last_thumbnail is not None and float(np.abs(small - self._last_thumbnail).mean()) > SCENE_CUT:
            self.scene_cuts += 1
            for track in self.tracker.finish():
                self._end(track)
        self._last_thumbnail = small

    def _split(self, assigned: list[int], i: int, frame: int) -> TrackIdentity:
        """End the track whose box moved onto another face, and start a new one for that face."""
        old = self.tracker.tracks.pop(assigned[i])
        self._end(old)
        track = self.tracker.start(old.box, frame)
        assigned[i] = track.id
        identity = self.identities[track.id] = TrackIdentity(track.id, frame, frame)
        self._detections_seen[track.id] = 1
        return identity

    def _wants_face(self, track_id: int, frame: int) -> bool:
        identity = self.identities.setdefault(track_id, TrackIdentity(track_id, frame, frame))
        identity.last_frame = frame
        seen = self._detections_seen[track_id] = self._detections_seen.get(track_id, 0) + 1
        track = self.tracker.tracks.get(track_id)
        if track is not None and track.jumped:
            return True
        if identity.label is None:
            return identity.good_frames < DENSE_LOOKS or seen % SPARSE_EVERY == 0
        return seen % RECHECK_EVERY == 0

    def _decide(self, frame: int, due: list[tuple[TrackIdentity, np.ndarray]]) -> None:
        """Rank the due tracks' templates in one search and apply the outcomes."""
        ranking = rank_vectors(self.ctx, self.gallery, np.stack([v for _, v in due]), 3, self.fpir)
        self.threshold = ranking.threshold
        threshold = ranking.threshold.threshold
        for (identity, _), candidates in zip(due, ranking.candidates):
            outcome = identity.decide(frame, candidates, threshold)
            if outcome == "named" and identity.label is not None:
                decision_id = self._log(identity, "match")
                self._emit("track_identified", identity, frame, subject=identity.label.subject,
                           display_name=identity.label.display_name, score=identity.label.score,
                           threshold=threshold, decision_id=decision_id,
                           frames_to_name=frame - identity.first_frame + 1, good_frames=identity.good_frames)
            elif outcome == "conflict":
                self._emit("track_conflict", identity, frame, threshold=threshold,
                           candidates=[c.model_dump() for c in candidates[:2]])

    def _unknown_too_long(self, frame: int) -> None:
        for identity in self.identities.values():
            in_view_s = (frame - identity.first_frame) / self.fps
            if identity.label is None and not identity.unknown_reported and in_view_s >= self.unknown_after_s \
                    and identity.track_id in self.tracker.tracks:
                identity.unknown_reported = True
                alert_id = self._alert(identity, in_view_s) if self.alert_unknown else None
                self._emit("unknown_in_view", identity, frame, seconds=round(in_view_s, 2), alert_id=alert_id)

    # -- ends -----------------------------------------------------------------------------------
    def finish(self) -> None:
        """End every track (the source ended or the run stopped)."""
        for track in self.tracker.finish():
            self._end(track)

    def _end(self, track: Track) -> None:
        identity = self.identities.pop(track.id, None)
        if identity is None:
            return
        self._detections_seen.pop(track.id, None)
        decision_id = None
        if identity.label is None and identity.good_frames:
            decision_id = self._log(identity, "unknown")
        self._emit("track_ended", identity, identity.last_frame, subject=identity.label.subject if identity.label else None,
                   frames=identity.frames_seen, good_frames=identity.good_frames, best_score=identity.best_score,
                   decision_id=decision_id)

    # -- records --------------------------------------------------------------------------------
    def _label(self, track_id: int, box: np.ndarray) -> FaceLabel:
        identity = self.identities.get(track_id)
        label = identity.label if identity else None
        return FaceLabel(
            track=track_id, box=[round(float(v), 1) for v in box], state=identity.state if identity else "pending",
            subject=label.subject if label else None, display_name=label.display_name if label else None,
            score=label.score if label else None,
        )

    def _log(self, identity: TrackIdentity, outcome: str) -> int:
        """One decision per track: when it is named, or when it ends unknown."""
        label = identity.label
        return log_decision(
            self.ctx, self.gallery.id, "video_track", outcome, label.subject if label else None,
            score=label.score if label else identity.best_score, threshold=self.threshold,
            details={"track": identity.track_id, "source": self.source, "first_frame": identity.first_frame,
                     "last_frame": identity.last_frame, "good_frames": identity.good_frames,
                     "looks": len(identity.history)},
            face=identity.best_face,
        )

    def _alert(self, identity: TrackIdentity, seconds: float) -> int:
        from facegate.workflows.alerts import AlertCenter

        with self.ctx.sessions.begin() as session:
            alert = AlertCenter(self.service).raise_alert(
                session, session.merge(self.gallery), "unknown_face",
                f"unknown face in view for {seconds:.0f} s at {self.source or 'a camera'} (track {identity.track_id})",
                details={"track": identity.track_id, "source": self.source, "first_frame": identity.first_frame},
            )
            session.flush()
            return int(alert.id)

    def _emit(self, kind: str, identity: TrackIdentity, frame: int, **fields: object) -> None:
        event: Event = {"event": kind, "track": identity.track_id, "source": self.source, "frame": frame,
                        "time_s": round(frame / self.fps, 3), "first_frame": identity.first_frame,
                        "last_frame": identity.last_frame, **fields}
        for sink in self.sinks:
            sink.emit(event)

    @property
    def fps_measured(self) -> float:
        return self.frames / max(time.perf_counter() - self.started, 1e-9)

