"""Liveness challenges: single use, expiry, order, still images, live clips, splices, and
check-in through the API with liveness active."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from facegate.gallery import liveness as lv
from facegate.gallery.inputs import FrameInput
from facegate.gallery.schemas import GallerySettings
from facegate.liveness.actions import FrameSignals
from facegate.liveness.recording import encode_jpeg, read_window
from facegate.security import SYSTEM
from tests.api_fixtures import live_api  # noqa: F401 - fixture
from tests.conftest import DATASETS

CLIPS = DATASETS / "videos" / "LivePortrait"  # a path only: the tests that read it are marked
needs_clips = pytest.mark.skipif(not (CLIPS / "d12.mp4").exists(), reason="needs ../shared/datasets/videos")


@pytest.fixture(scope="module")
def backend() -> str:
    return "sqlite"  # the API test is about liveness, not the database


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    from facegate.config import Settings
    from facegate.gallery.service import GalleryService

    svc = GalleryService(Settings(data_dir=tmp_path_factory.mktemp("lv") / "data"), migrate=True)
    svc.create_gallery("g", settings=GallerySettings(liveness="active"), principal=SYSTEM)
    yield svc
    svc.close()


def _rec(frames, times, nonce=None) -> lv.Recording:
    return lv.Recording([FrameInput(f"f{i}", f) for i, f in enumerate(frames)], list(times), nonce)


def _check(service, frames, times, actions, subject=None, mode=None):
    ch = lv.issue_challenge(service.ctx, "g", SYSTEM, actions=actions)
    now = ch.issued_at + dt.timedelta(seconds=5)
    return lv.check_recording(service.ctx, "g", _rec(frames, times, ch.nonce), subject, SYSTEM, now=now, mode=mode).result


def _still(portrait, n=12, seed=0):
    rng = np.random.default_rng(seed)
    return [np.clip(portrait + rng.normal(0, 2, portrait.shape), 0, 255).astype(np.uint8) for _ in range(n)]


def test_challenge_is_random_single_use_and_expires(service, portrait):
    drawn = {tuple(lv.draw_actions()) for _ in range(400)}
    # Two distinct actions in random order by default: 20 ordered pairs less the 2 left-right ones.
    assert len(drawn) == 18 and all(len(d) == lv.CHALLENGE_ACTIONS == 2 and d[0] != d[1] for d in drawn)
    assert all(1 <= len(lv.draw_actions(n=n)) == n <= 3 for n in (1, 3))
    assert not any(("turn_left", "turn_right") == d[i:i + 2] or ("turn_right", "turn_left") == d[i:i + 2]
                   for d in drawn for i in range(len(d) - 1))
    frames = _still(portrait)
    times = [i * 0.1 for i in range(len(frames))]
    ch = lv.issue_challenge(service.ctx, "g", SYSTEM, actions=["blink"])
    assert len(ch.nonce) == 32 and ch.expires_at - ch.issued_at == dt.timedelta(seconds=60)
    now = ch.issued_at + dt.timedelta(seconds=5)
    first = lv.check_recording(service.ctx, "g", _rec(frames, times, ch.nonce), None, SYSTEM, now=now).result
    assert not first.passed and first.decision_id
    again = lv.check_recording(service.ctx, "g", _rec(frames, times, ch.nonce), None, SYSTEM, now=now).result
    assert again.reason.startswith("challenge already used")
    unknown = lv.check_recording(service.ctx, "g", _rec(frames, times, "0" * 32), None, SYSTEM, now=now).result
    assert unknown.reason.startswith("unknown challenge")
    late = lv.issue_challenge(service.ctx, "g", SYSTEM, actions=["blink"])
    expired = lv.check_recording(service.ctx, "g", _rec(frames, times, late.nonce), None, SYSTEM,
                                 now=late.expires_at + dt.timedelta(seconds=1)).result
    assert expired.reason.startswith("challenge expired")


def _sig(t, mouth=0.8, eyes=0.3, yaw=0.0):
    return FrameSignals(t=t, yaw=yaw, pitch=0.0, roll=0.0, eye_left=eyes, eye_right=eyes, mouth_width=mouth, mouth_open=0.0)


def test_actions_must_come_in_order_and_in_time():
    # A smile at 0.8-1.1 s, then a blink at 2.0 s.
    sigs = [_sig(i * 0.1, mouth=1.05 if 8 <= i <= 11 else 0.8, eyes=0.05 if i == 20 else 0.3) for i in range(30)]
    assert lv.judge_actions(sigs, ["smile", "blink"], 4.0)[1] == ""
    outcomes, reason = lv.judge_actions(sigs, ["blink", "smile"], 4.0)
    assert "smile not seen after the previous action" in reason and outcomes[0].happened
    assert "after the 1.5 s allowed" in lv.judge_actions(sigs, ["smile", "blink"], 1.5)[1]


def test_still_image_sequence_fails(service, portrait):
    frames = _still(portrait)
    result = _check(service, frames, [i * 0.1 for i in range(len(frames))], ["blink"], mode="passive")
    assert not result.passed and "still image" in result.reason, result
    assert result.passive["still"] and result.passive["planar"]


@needs_clips
def test_live_window_passes_and_splice_fails(service):
    frames, times = read_window(CLIPS / "d12.mp4", 0.0, 2.5)
    service.enroll("g", "p12", [FrameInput("enrol", frames[0])], create_subject=True, principal=SYSTEM)
    result = _check(service, frames, times, ["smile"], subject="p12")
    assert result.passed, result.reason
    assert result.actions[0].happened and 0.5 <= (result.actions[0].start or 0) <= 1.5
    assert all(s.subject_score and s.subject_score >= (result.identity_threshold or 1) for s in result.identity)
    other, _ = read_window(CLIPS / "d0.mp4", 0.0, 2.5)
    spliced = frames[:12] + other[12:20] + frames[20:]
    bad = _check(service, spliced, times, ["smile"], subject="p12")
    assert not bad.passed and ("face changes" in bad.reason or "does not match" in bad.reason), bad.reason


@needs_clips
def test_checkin_with_liveness_through_the_api(live_api, portrait):  # noqa: F811
    fg = live_api.client()
    fg.create_gallery("exam", settings={"liveness": "active"})
    frames, times = read_window(CLIPS / "d12.mp4", 0.0, 2.5)
    fg.enroll("exam", "s12", [encode_jpeg(frames[0])])
    now = dt.datetime.now(dt.UTC)
    fg.create_exam_session("exam", {"code": "L1", "course": "C", "starts_at": (now - dt.timedelta(minutes=5)).isoformat(),
                                    "ends_at": (now + dt.timedelta(hours=1)).isoformat()})
    from facegate.client import RecordingArg

    # The API checks that the recording is not longer than the time since the challenge was issued.
    issued = fg.liveness_challenge("exam")
    ch = fg.liveness_challenge("exam")
    assert ch.actions and ch.max_seconds == 4.0
    # Answer with fixed actions: a challenge the clip performs (the random one above is only shown).
    ctx = live_api.service.ctx
    fixed = lv.issue_challenge(ctx, "exam", SYSTEM, actions=["smile"],
                               now=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5))
    rec = RecordingArg([encode_jpeg(f) for f in frames], times, fixed.nonce)
    ok = fg.checkin("exam", "L1", "s12", None, recording=rec)
    assert ok.status == "present" and ok.admitted and ok.liveness and ok.liveness.passed, ok
    still = [encode_jpeg(f) for f in _still(frames[0][..., :], 12)]
    fixed2 = lv.issue_challenge(ctx, "exam", SYSTEM, actions=["blink"], now=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5))
    bad = fg.checkin("exam", "L1", "s12", None, recording=RecordingArg(still, [i * 0.1 for i in range(12)], fixed2.nonce))
    assert bad.status == "liveness_failed" and not bad.admitted and "liveness_failed" in bad.alerts
    assert any(a.kind == "liveness_failed" for a in fg.alerts("exam"))
    decisions = fg.decisions("exam")
    assert {"passed", "failed"} <= {d.outcome for d in decisions if d.kind == "liveness"}
    verify = next(d for d in decisions if d.kind == "verify")
    assert verify.details["liveness"]["passed"] is True and verify.details["liveness"]["actions"][0]["action"] == "smile"
    # A photo alone is refused while liveness is on; the single-photo form works when it is off.
    with pytest.raises(Exception, match="recording"):
        fg.checkin("exam", "L1", "s12", encode_jpeg(frames[0]))
    fg.update_gallery_settings("exam", liveness="off")
    assert fg.checkin("exam", "L1", "s12", encode_jpeg(frames[0])).status == "duplicate"
    assert issued.nonce != ch.nonce
    assert issued.prepare.startswith("Look straight at the camera")


def test_passive_plane_signal_separates_a_flat_picture_from_a_turning_head():
    from facegate.liveness import passive
    from facegate.liveness.pose import MODEL_106_INDICES, MODEL_106_POINTS, project

    rng = np.random.default_rng(3)

    def full(pts):
        out = np.zeros((106, 2))
        out[list(MODEL_106_INDICES)] = pts
        out[[i for i in range(106) if i not in MODEL_106_INDICES]] = pts.mean(0) + rng.normal(0, 20, (106 - len(pts), 2))
        return out

    base = full(project(MODEL_106_POINTS, 0, 0, 0, 640, 480))
    # A flat picture of that face, tilted and moved: one homography per frame (plus 0.3 px jitter).
    flat = []
    for a in np.linspace(0, 1, 12):
        h = np.array([[1 + 0.1 * a, 0.05 * a, 20 * a], [0.02 * a, 1, -10 * a], [3e-4 * a, 1e-4 * a, 1]])
        flat.append(cv2_perspective(base, h) + rng.normal(0, 0.3, base.shape))
    # The real head turning by 20 degrees: its 3-D points do not move as one plane.
    turning = [base] + [full(project(MODEL_106_POINTS, yaw, 0, 0, 640, 480)) for yaw in np.linspace(2, 20, 11)]
    turning = [t + rng.normal(0, 0.3, t.shape) for t in turning]
    for t in turning[1:]:
        t[[i for i in range(106) if i not in MODEL_106_INDICES]] = turning[0][[i for i in range(106) if i not in MODEL_106_INDICES]]
    assert passive.passive_scores(flat, 0).planar
    assert not passive.passive_scores(turning, 0).planar
    # The nose stands out of the eye/mouth-corner plane: it moves off that plane's homography
    # when the head turns (~0.4 sin(18 deg) eye distances), not when a picture is tilted.
    assert passive.parallax(flat) < 0.02 < 0.08 < passive.parallax(turning)


def cv2_perspective(points, h):
    import cv2

    return cv2.perspectiveTransform(points[None].astype(np.float64), h)[0]
