"""Liveness with storage: the server-issued active challenge, and the check of a recording.

The server alone decides. :func:`issue_challenge` draws 2 random actions (1-3 when fixed) and a 128-bit
nonce (only its SHA-256 is stored) with an expiry; :func:`check_recording` consumes the
nonce (single use: one UPDATE ... WHERE used_at IS NULL), decodes the 6-40 frames, finds
the main face in every one (a frame without a face fails), computes landmarks and signals,
requires each action IN ORDER (each starting after the previous one's start) and within
``max_seconds`` of the first frame, adds the passive signals, and embeds the face in a few
frames (first, middle, last and where each action starts): they must match each other and,
when a subject is claimed, that subject at the gallery's verify threshold (no splice of
another person). Every check is a ``liveness`` decision with the whole result.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select, update

from facegate.engine import Face, FaceEngine, main_face_index
from facegate.errors import ConflictError, InvalidRequestError
from facegate.gallery.context import GalleryContext, find_gallery, find_subject, gallery_settings
from facegate.gallery.decisions import log_decision
from facegate.gallery.inputs import FrameInput, PhotoInput, Probe
from facegate.gallery.liveness_schemas import (
    INSTRUCTIONS,
    ActionOutcome,
    ChallengeAction,
    ChallengeIssued,
    IdentityScore,
    LivenessResult,
)
from facegate.gallery.thresholds import verify_threshold
from facegate.liveness import actions as act
from facegate.liveness import passive
from facegate.liveness.landmarks import Landmarks106
from facegate.security import Principal
from facegate.storage.models import FaceTemplate, Gallery, LivenessChallenge, as_utc, utcnow

ACTIONS = ("blink", "turn_left", "turn_right", "look_up", "smile")
MIN_FRAMES, MAX_FRAMES = 6, 40
MAX_TOTAL_BYTES = 16 * 1024 * 1024
MAX_RECORDING_SECONDS = 10.0
# Shipped operating point (bench/liveness_eval.py): a turn of 10 degrees from the baseline
# (the LivePortrait clips turn 10-20 degrees; the detector's own default, 20, is stricter).
TURN_DEGREES = 10.0
# Look up: 10 degrees above the baseline (the detector's default, 12, missed d12's 0.5 s nod
# of +10-12 degrees over a baseline whose frames include a blink).
LOOK_UP_DEGREES = 10.0
# Actions per drawn challenge: two distinct ones in random order. A recording answers a new
# random 1-action challenge far more often than a new 2-action one (bench/liveness_eval.py,
# "replay limit"); three do not fit comfortably in the time allowed.
CHALLENGE_ACTIONS = 2

_landmarker: Landmarks106 | None = None
_landmarker_lock = threading.Lock()


def landmarker(ctx: GalleryContext) -> Landmarks106:
    """One 106-point model per process (an ONNX session is costly to open)."""
    global _landmarker
    with _landmarker_lock:
        if _landmarker is None:
            _landmarker = Landmarks106(ctx.settings.ort_intra_threads, ctx.settings.ort_inter_threads)
        return _landmarker


def nonce_hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


def draw_actions(rng: secrets.SystemRandom | None = None, n: int | None = None) -> list[str]:
    """``n`` (default :data:`CHALLENGE_ACTIONS`) distinct random actions in random order, never
    both turns back to back (left-right reads as a shake)."""
    rng = rng or secrets.SystemRandom()
    while True:
        chosen = rng.sample(ACTIONS, n or CHALLENGE_ACTIONS)
        if not any({a, b} == {"turn_left", "turn_right"} for a, b in zip(chosen, chosen[1:])):
            return chosen


def issue_challenge(
    ctx: GalleryContext, gallery: str, principal: Principal, subject: str | None = None,
    now: dt.datetime | None = None, actions: Sequence[str] | None = None,
) -> ChallengeIssued:
    """A new random challenge (``actions`` fixed only by tests and the evaluation)."""
    now = now or utcnow()
    nonce = secrets.token_hex(16)
    chosen = list(actions) if actions is not None else draw_actions()
    if not chosen or any(a not in ACTIONS for a in chosen):
        raise InvalidRequestError(f"actions must be 1-3 of {ACTIONS}")
    with ctx.sessions.begin() as session:
        g = find_gallery(session, gallery, principal)
        principal.require("recognize", g)
        if subject is not None:
            find_subject(session, g, subject)
        opts = gallery_settings(g)
        row = LivenessChallenge(
            gallery_id=g.id, nonce_hash=nonce_hash(nonce), actions=chosen, subject_external_id=subject,
            max_seconds=opts.liveness_max_seconds, issued_at=now,
            expires_at=now + dt.timedelta(seconds=opts.liveness_challenge_seconds), outcome="",
        )
        session.add(row)
    return ChallengeIssued(
        nonce=nonce, actions=[ChallengeAction.model_validate({"action": a, "instruction": INSTRUCTIONS[a]}) for a in chosen],
        issued_at=now, expires_at=row.expires_at, max_seconds=row.max_seconds, subject=subject,
    )


@dataclass
class Recording:
    """What a client sends: 6-40 frames (JPEG/PNG bytes or decoded), their times in seconds
    from the first frame, and the challenge nonce (active mode)."""

    frames: list[PhotoInput | FrameInput]
    timestamps: list[float]
    challenge: str | None = None


@dataclass
class LivenessCheck:
    """The verdict and, when it passed, the face to recognise (the middle frame's)."""

    result: LivenessResult
    probe: Probe | None = None
    frames: list[np.ndarray] = field(default_factory=list)


class _Refused(Exception):
    """A check that fails before the frames are judged (a reason, not an error)."""


def consume_challenge(ctx: GalleryContext, g: Gallery, nonce: str, now: dt.datetime) -> LivenessChallenge:
    """Mark the challenge used, atomically; an unknown, used or expired one is refused."""
    digest = nonce_hash(nonce)
    reason = ""
    with ctx.sessions.begin() as session:
        taken = session.execute(  # type: ignore[attr-defined]
            update(LivenessChallenge)
            .where(LivenessChallenge.nonce_hash == digest, LivenessChallenge.gallery_id == g.id,
                   LivenessChallenge.used_at.is_(None))
            .values(used_at=now)
        ).rowcount
        row = session.scalar(select(LivenessChallenge).where(LivenessChallenge.nonce_hash == digest,
                                                             LivenessChallenge.gallery_id == g.id))
        if row is None:
            reason = "unknown challenge: ask for a new one"
        elif not taken:
            reason = "challenge already used: ask for a new one"
        elif now > as_utc(row.expires_at):
            row.outcome, reason = "expired", "challenge expired: ask for a new one"
        if row is not None:
            session.flush()
            session.expunge(row)
    if reason or row is None:
        raise _Refused(reason)
    return row


def _validate(rec: Recording, ctx: GalleryContext) -> list[np.ndarray]:
    n = len(rec.frames)
    if not MIN_FRAMES <= n <= MAX_FRAMES:
        raise InvalidRequestError(f"send {MIN_FRAMES} to {MAX_FRAMES} frames (got {n})")
    if len(rec.timestamps) != n:
        raise InvalidRequestError(f"send one timestamp per frame ({n} frames, {len(rec.timestamps)} timestamps)")
    t = np.asarray(rec.timestamps, dtype=np.float64)
    if not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0) or t[-1] - t[0] > MAX_RECORDING_SECONDS:
        raise InvalidRequestError(f"timestamps must increase and span at most {MAX_RECORDING_SECONDS} s")
    total = sum(len(f.data) for f in rec.frames if isinstance(f, PhotoInput))
    if total > MAX_TOTAL_BYTES:
        raise InvalidRequestError(f"the frames total {total} bytes, over {MAX_TOTAL_BYTES}")
    return [(f.to_frame(ctx.image_limits) if isinstance(f, PhotoInput) else f).image for f in rec.frames]


def _find(sigs: list[act.FrameSignals], action: str, after: int, relax: float = 1.0) -> act.ActionResult:
    """The first occurrence of ``action`` starting after frame ``after``, judged against the
    baseline of the recording's first frames (they are kept in front of the searched part).
    ``relax`` < 1 scales every threshold down (the evaluation's "is it there at all" check)."""
    base = act.BASELINE_FRAMES
    offset = max(after + 1, base)
    seq = sigs[:base] + sigs[offset:]

    def back(i: int | None) -> int | None:
        return None if i is None else (i if i < base else i - base + offset)

    if action == "blink":
        ratio = 1.0 - (1.0 - act.BLINK_RATIO) * relax
        found = [b for b in act.blinks(sigs, ratio=ratio) if b.start_index is not None and b.start_index > after]
        return found[0] if found else act.ActionResult(False, peak=act.blinked(sigs).peak)
    if action in ("turn_left", "turn_right"):
        r = act.turned(seq, "left" if action == "turn_left" else "right", min_degrees=TURN_DEGREES * relax)
    elif action == "look_up":
        r = act.looked_up(seq, min_degrees=LOOK_UP_DEGREES * relax)
    else:
        r = act.smiled(seq, min_ratio=act.SMILE_RATIO * relax)
    if r.happened and (back(r.start_index) or 0) <= after:
        return act.ActionResult(False, peak=r.peak)
    return act.ActionResult(r.happened, back(r.start_index), back(r.end_index), r.start, r.end, r.peak)


def judge_actions(sigs: list[act.FrameSignals], asked: Sequence[str], max_seconds: float,
                  relax: float = 1.0) -> tuple[list[ActionOutcome], str]:
    """Each asked action in order, each starting after the previous one's start, in time."""
    out: list[ActionOutcome] = []
    after, t0 = -1, sigs[0].t
    for name in asked:
        r = _find(sigs, name, after, relax)
        reason = ""
        if not r.happened:
            reason = f"{name} not seen" + (" after the previous action" if after >= 0 else "")
        elif (r.start or 0.0) - t0 > max_seconds:
            reason = f"{name} at {(r.start or 0.0) - t0:.2f} s, after the {max_seconds:g} s allowed"
        out.append(ActionOutcome(action=name, happened=r.happened, start=r.start, end=r.end,
                                 peak=round(r.peak, 4), reason=reason))
        if reason:
            return out, reason
        after = int(r.start_index or 0)
    return out, ""


def _identity(ctx: GalleryContext, g: Gallery, engine: FaceEngine, frames: list[np.ndarray], dets: list,
              picks: list[int], times: list[float], subject: str | None) -> tuple[list[IdentityScore], float, str, list[Face]]:
    faces = [engine.faces_from_detections(frames[i], [dets[i]])[0] for i in picks]
    vectors = np.stack([f.template.vector for f in faces])
    pair = vectors @ vectors.T
    np.fill_diagonal(pair, 2.0)
    subject_scores: list[float | None] = [None] * len(picks)
    with ctx.sessions() as session:
        if subject is not None:
            sid = find_subject(session, g, subject).id
            rows = list(session.scalars(select(FaceTemplate).where(FaceTemplate.subject_id == sid)))
        else:
            rows = []
    threshold = verify_threshold(ctx, g, max(1, len(rows))).threshold
    if rows:
        matrix = np.stack([np.asarray(r.vector, dtype=np.float32) for r in rows])
        subject_scores = [float((matrix @ v).max()) for v in vectors]
    scores = [IdentityScore(frame=i, t=times[i], subject_score=s, min_pair_score=float(pair[k].min()))
              for k, (i, s) in enumerate(zip(picks, subject_scores))]
    reason = ""
    if len(picks) > 1 and float(pair.min()) < threshold:
        worst = scores[int(np.argmin(pair.min(1)))]
        reason = f"the face changes during the recording (frame {worst.frame}: {worst.min_pair_score:.3f} < {threshold:.3f})"
    elif rows and min(s for s in subject_scores if s is not None) < threshold:
        reason = f"a face in the recording does not match {subject} at the verify threshold {threshold:.3f}"
    return scores, threshold, reason, faces


def check_recording(
    ctx: GalleryContext, gallery: str, rec: Recording, claimed_subject: str | None, principal: Principal,
    request_id: str = "", now: dt.datetime | None = None, mode: str | None = None,
) -> LivenessCheck:
    """The one liveness path of check-in, login and access (``mode`` overrides the gallery's)."""
    now = now or utcnow()
    with ctx.sessions() as session:
        g = find_gallery(session, gallery, principal)
        principal.require("recognize", g)
    mode = mode or gallery_settings(g).liveness
    if mode not in ("passive", "active"):
        raise InvalidRequestError(f"gallery {gallery!r} has liveness {mode!r}: send a photo, not a recording")
    result = LivenessResult.model_validate({"passed": False, "mode": mode, "frames": len(rec.frames)})
    check = LivenessCheck(result)
    try:
        max_seconds = MAX_RECORDING_SECONDS
        if mode == "active":
            if not rec.challenge:
                raise _Refused("no challenge: ask for one and answer it")
            row = consume_challenge(ctx, g, rec.challenge, now)
            result.challenge, max_seconds = list(row.actions), row.max_seconds
            if row.subject_external_id and claimed_subject and row.subject_external_id != claimed_subject:
                raise _Refused(f"the challenge was issued for {row.subject_external_id}, not {claimed_subject}")
            spent = (now - as_utc(row.issued_at)).total_seconds()
            if rec.timestamps and rec.timestamps[-1] - rec.timestamps[0] > spent + 1.0:
                raise _Refused("the recording is longer than the time since the challenge was issued")
        frames = _validate(rec, ctx)
        check.frames = frames
        _judge(ctx, g, frames, [float(t) for t in rec.timestamps], claimed_subject, mode, max_seconds, check)
    except _Refused as refused:
        result.reason = str(refused)
    if mode == "active" and result.challenge:
        with ctx.sessions.begin() as session:
            session.execute(update(LivenessChallenge).where(LivenessChallenge.nonce_hash == nonce_hash(rec.challenge or ""))
                            .values(outcome="passed" if result.passed else "failed"))
    result.decision_id = log_decision(
        ctx, g.id, "liveness", "passed" if result.passed else "failed", claimed_subject, request_id=request_id,
        details=result.model_dump(mode="json", exclude={"decision_id"}),
    )
    return check


def _judge(ctx: GalleryContext, g: Gallery, frames: list[np.ndarray], times: list[float], subject: str | None,
           mode: str, max_seconds: float, check: LivenessCheck) -> None:
    result = check.result
    engine = ctx.engine_for(g)
    model = landmarker(ctx)
    dets, points = [], []
    for i, image in enumerate(frames):
        found = engine.detect(image)
        if not found:
            raise _Refused(f"no face in frame {i} (t={times[i] - times[0]:.2f} s): the face must stay in view")
        det = found[main_face_index(found, image.shape[0], image.shape[1])]
        dets.append(det)
        points.append(model(image, det.box))
    t0 = times[0]
    sigs = [act.frame_signals(p, image.shape, t - t0) for p, image, t in zip(points, frames, times)]
    import cv2

    mid = len(frames) // 2
    gray = cv2.cvtColor(frames[mid], cv2.COLOR_RGB2GRAY)
    x1, y1, x2, y2 = (int(max(0, v)) for v in dets[mid].box[:4])
    scores = passive.passive_scores(
        points, len(act.blinks(sigs)), moire=passive.moire_score(gray[y1:y2, x1:x2]) if y2 > y1 and x2 > x1 else None,
        border=passive.border_score(gray, dets[mid].box),
    )
    result.passive = scores.to_dict()
    picks = {0, mid, len(frames) - 1}
    if mode == "active":
        outcomes, reason = judge_actions(sigs, result.challenge, max_seconds)
        result.actions = outcomes
        picks |= {int(np.searchsorted([s.t for s in sigs], o.start or 0.0)) for o in outcomes if o.happened}
        if reason:
            raise _Refused(reason)
    if not scores.passed:
        raise _Refused(scores.reason())
    ordered = sorted(p for p in picks if 0 <= p < len(frames))
    result.frames_embedded = ordered
    identity, threshold, reason, faces = _identity(ctx, g, engine, frames, dets, ordered, times, subject)
    result.identity, result.identity_threshold = identity, threshold
    if reason:
        raise _Refused(reason)
    result.passed, result.reason = True, "live"
    face = faces[ordered.index(mid)]
    check.probe = Probe(name=f"frame {mid}", faces=[face], height=frames[mid].shape[0], width=frames[mid].shape[1])


def require_recording(rec: Recording | None, mode: str) -> Recording:
    if rec is None or not rec.frames:
        raise ConflictError(
            f"this gallery's liveness is {mode!r}: send a recording (frames, timestamps"
            f"{', challenge' if mode == 'active' else ''}) instead of a single photo"
        )
    return rec
