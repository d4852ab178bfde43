"""Video: sources and their errors, the tracker, identity per track, enrollment from a clip,
live recognition with events, decisions and alerts; on clips made here from the photos that
ship with the models, and on the real clips of ../shared when present."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from facegate.config import Settings
from facegate.detection import Detection
from facegate.errors import InvalidRequestError, StreamUnavailableError, VideoError
from facegate.gallery.inputs import PhotoInput
from facegate.gallery.schemas import Candidate
from facegate.gallery.service import GalleryService
from facegate.security import SYSTEM
from facegate.video.enroll import enroll_from_video
from facegate.video.identity import LOOKS, TrackIdentity, per_look_fpir
from facegate.video.runner import recognize_video
from facegate.video.sources import VideoSource
from facegate.video.tracking import IouTracker
from tests.conftest import datasets_dir, package_photo


def write_clip(path: Path, photo: str, frames: int = 24, width: int = 480, step: int = 2) -> Path:
    """A clip of a still photo drifting sideways (a person in front of a camera, steadily)."""
    image = cv2.imread(str(package_photo(photo)))
    scale = width / image.shape[1]
    image = cv2.resize(image, (width, int(image.shape[0] * scale)))
    h, w = image.shape[:2]
    canvas_w = w + step * frames
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 25.0, (canvas_w, h))
    for i in range(frames):
        canvas = np.full((h, canvas_w, 3), 40, np.uint8)
        canvas[:, i * step: i * step + w] = image
        writer.write(canvas)
    writer.release()
    return path


@pytest.fixture
def service(tmp_path):
    svc = GalleryService(Settings(data_dir=tmp_path / "data"), migrate=True)
    svc.create_gallery("g", principal=SYSTEM)
    yield svc
    svc.close()


# -- the parts ----------------------------------------------------------------------------------
def _det(x: float, y: float, size: float = 50.0) -> Detection:
    return Detection(box=np.array([x, y, x + size, y + size], np.float32), score=0.9, landmarks=None, detector="t")


def test_tracker_follows_moving_faces_and_ends_lost_ones():
    tracker = IouTracker(max_missed=3)
    ids, _ = tracker.update(0, [_det(10, 10), _det(200, 10)])
    for frame in range(1, 6):  # both move right by 5 px a frame, listed in the other order
        got, ended = tracker.update(frame, [_det(200 + 5 * frame, 10), _det(10 + 5 * frame, 10)])
        assert got == [ids[1], ids[0]] and ended == []
    got, _ = tracker.update(8, [_det(10 + 5 * 8, 10)])  # predicted through two missing frames
    assert got == [ids[0]]
    _, ended = tracker.update(10, [_det(10 + 5 * 10, 10)])
    assert [t.id for t in ended] == [ids[1]]  # unseen for more than 3 frames
    new, _ = tracker.update(11, [_det(400, 300)])
    assert new[0] not in ids


def test_a_track_is_unknown_until_the_evidence_passes_and_never_takes_another_name():
    assert per_look_fpir(1e-3) == pytest.approx(1e-3 / LOOKS)
    identity = TrackIdentity(track_id=1, first_frame=0, last_frame=0)
    def cand(subject: str, score: float) -> Candidate:
        return Candidate(subject=subject, display_name=subject.title(), score=score)

    lin, alex = cand("lin", 0.25), cand("alex", 0.5)
    assert identity.decide(1, [lin], threshold=0.3) == "unchanged" and identity.label is None
    assert identity.decide(2, [cand("lin", 0.45)], threshold=0.3) == "named"
    assert identity.label is not None and identity.label.subject == "lin"
    assert identity.decide(3, [cand("lin", 0.1)], threshold=0.3) == "unchanged"  # sticky
    assert identity.label.subject == "lin"
    assert identity.decide(4, [alex], threshold=0.3) == "conflict"  # back to unknown, not to "alex"
    assert identity.label is None and identity.good_frames == 0


def test_bad_sources_give_clear_errors_and_nothing_hangs(tmp_path, service):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    good = write_clip(tmp_path / "good.mp4", "yaoming.jpg")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # mp4v writes its index last
    cases = {empty: "empty", text: "not a video", truncated: "not a video", tmp_path / "missing.mp4": "no such file"}
    for path, words in cases.items():
        with pytest.raises(VideoError, match=words):
            VideoSource(path)
        with pytest.raises(VideoError):
            enroll_from_video(service, "g", "nobody", path, principal=SYSTEM)
    assert service.list_subjects("g", principal=SYSTEM).items == []  # nothing half-enrolled
    started = time.perf_counter()
    with pytest.raises(StreamUnavailableError, match="could not be opened"):
        VideoSource("rtsp://127.0.0.1:9/stream", timeout_s=3)
    assert time.perf_counter() - started < 30


# -- enrollment and recognition -----------------------------------------------------------------
def test_enroll_from_a_clip_then_recognise_it_with_events_decisions_and_an_annotated_copy(tmp_path, service):
    clip = write_clip(tmp_path / "yao.mp4", "yaoming.jpg")
    report = enroll_from_video(service, "g", "yao", clip, principal=SYSTEM, display_name="Yao Ming",
                               attributes={"rights": ["lab:enter"]}, k=3, every=1)
    assert report.enrollment.accepted >= 1 and len(report.tracks) == 1
    assert all(item.image.startswith("yao.mp4#frame") for item in report.enrollment.items)
    subject = service.get_subject("g", "yao", principal=SYSTEM)
    assert subject.display_name == "Yao Ming" and subject.attributes["rights"] == ["lab:enter"]

    events, annotated = tmp_path / "events.jsonl", tmp_path / "annotated.mp4"
    run = recognize_video(service, "g", clip, principal=SYSTEM, out=annotated, events=events)
    assert run.identified == {"yao": 1} and run.frames == 24
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["event"] for e in lines] == ["track_identified", "track_ended"]
    assert lines[0]["subject"] == "yao" and lines[0]["score"] >= lines[0]["threshold"]
    assert cv2.VideoCapture(str(annotated)).get(cv2.CAP_PROP_FRAME_COUNT) == 24
    decisions = service.list_decisions("g", kind="video_track", principal=SYSTEM).items
    assert [(d.outcome, d.subject) for d in decisions] == [("match", "yao")] and decisions[0].calibration


def test_a_clip_of_several_people_is_refused_unless_a_track_is_picked(tmp_path, service):
    clip = write_clip(tmp_path / "team.mp4", "players.jpg", frames=12, width=960)
    with pytest.raises(InvalidRequestError, match="people are in view"):
        enroll_from_video(service, "g", "someone", clip, principal=SYSTEM, every=1)
    assert service.list_subjects("g", principal=SYSTEM).items == []
    picked = enroll_from_video(service, "g", "someone", clip, principal=SYSTEM, every=1, track=1, k=2)
    assert picked.track == 1 and picked.enrollment.accepted + picked.enrollment.rejected >= 1


def test_an_unknown_face_at_an_access_point_raises_an_alert(tmp_path, service):
    from facegate.workflows import Workflows

    service.enroll("g", "yao", [PhotoInput("y.jpg", package_photo("yaoming.jpg").read_bytes())], principal=SYSTEM)
    team = write_clip(tmp_path / "team.mp4", "players.jpg", frames=30, width=960)
    run = recognize_video(service, "g", team, principal=SYSTEM, unknown_after_s=0.5, alert_unknown=True)
    # Yao Ming stands in the top row of the team photo (identify scores him 0.63 on the photo);
    # his team mates are not enrolled.
    assert run.identified == {"yao": 1}
    yao_track = next(e["track"] for e in run.events if e["event"] == "track_identified")
    unknown = [e for e in run.events if e["event"] == "unknown_in_view"]
    assert len(unknown) >= 10 and all(e["alert_id"] for e in unknown)
    assert yao_track not in {e["track"] for e in unknown}
    alerts = Workflows(service).alerts.list_alerts("g", principal=SYSTEM).items
    assert {a.kind for a in alerts} == {"unknown_face"} and len(alerts) == len(unknown)


def test_the_cli_enrolls_from_a_clip_and_recognises_it(tmp_path, monkeypatch):
    from facegate.cli import app

    monkeypatch.setenv("FACEGATE_DATA_DIR", str(tmp_path / "cli"))
    from facegate.config import get_settings

    get_settings.cache_clear()
    clip = write_clip(tmp_path / "yao.mp4", "yaoming.jpg")
    runner = CliRunner()
    try:
        assert runner.invoke(app, ["gallery", "create", "door"]).exit_code == 0
        enrolled = runner.invoke(app, ["video", "enroll", str(clip), "-g", "door", "-s", "yao", "--rights", "lab:enter"])
        assert enrolled.exit_code == 0, enrolled.output
        seen = runner.invoke(app, ["video", "recognize", str(clip), "-g", "door", "--events", str(tmp_path / "e.jsonl")])
        assert seen.exit_code == 0 and "named: yao (1 track)" in seen.output, seen.output
        bad = runner.invoke(app, ["video", "recognize", str(tmp_path / "none.mp4"), "-g", "door"])
        assert bad.exit_code == 2 and "no such file" in " ".join(bad.output.split())  # rich wraps lines
    finally:
        get_settings.cache_clear()


# -- real clips ---------------------------------------------------------------------------------
def test_hamilton_tracks_of_lin_manuel_miranda_are_named_him_and_nobody_is_misnamed(tmp_path, service):
    videos, stills = datasets_dir("videos"), datasets_dir("face_recognition_examples") / "examples"
    for subject in ("lin-manuel-miranda", "alex-lacamoire"):
        photo = stills / f"{subject}.png"
        assert service.enroll("g", subject, [PhotoInput(photo.name, photo.read_bytes())], principal=SYSTEM).accepted
    run = recognize_video(service, "g", videos / "face_recognition" / "short_hamilton_clip.mp4", principal=SYSTEM)
    ended = {e["track"]: e for e in run.events if e["event"] == "track_ended"}
    named = [e for e in ended.values() if e["subject"]]
    # Checked by eye, frame by frame (209-216) and on the annotated copy: Lin-Manuel Miranda sings
    # until the cut to the audience (frame 210 is the stage, 211 the audience); Alex Lacamoire is at
    # the piano and in a close profile at frames 25-45.
    lin = [e for e in named if e["subject"] == "lin-manuel-miranda"]
    assert any(e["first_frame"] <= 100 <= e["last_frame"] for e in lin)
    assert all(e["last_frame"] <= 211 for e in lin)  # the name is dropped at the cut itself
    assert all(e["subject"] in ("lin-manuel-miranda", "alex-lacamoire") for e in named)
    assert all(20 <= e["first_frame"] and e["last_frame"] <= 50 for e in named if e["subject"] == "alex-lacamoire")
    assert any(e["first_frame"] >= 211 and e["subject"] is None for e in ended.values())  # the audience: unknown


def test_liveportrait_people_enrolled_from_half_a_clip_are_named_in_the_other_half_only(service):
    clips = sorted((datasets_dir("videos") / "LivePortrait").glob("*.mp4"))[:3]
    halves = {c.stem: int(cv2.VideoCapture(str(c)).get(cv2.CAP_PROP_FRAME_COUNT)) // 2 for c in clips}
    for c in clips[:2]:
        report = enroll_from_video(service, "g", c.stem, c, principal=SYSTEM, every=2, max_frames=halves[c.stem] // 2)
        assert report.enrollment.accepted >= 3 and all(f < halves[c.stem] for f in report.chosen_frames)
    for c in clips[:2]:
        run = recognize_video(service, "g", c, principal=SYSTEM, start_frame=halves[c.stem])
        assert run.identified == {c.stem: 1}
    stranger = recognize_video(service, "g", clips[2], principal=SYSTEM)  # never enrolled
    assert stranger.identified == {}


# -- over HTTP and a WebSocket ------------------------------------------------------------------
@pytest.fixture
def video_server(tmp_path):
    from facegate.api import create_app
    from tests.api_fixtures import ServerThread

    svc = GalleryService(Settings(data_dir=tmp_path / "srv", max_video_bytes=5 * 1024 * 1024), migrate=True)
    svc.create_gallery("g", principal=SYSTEM)
    recognizer = svc.create_api_key("kiosk", ["recognize"], "g", principal=SYSTEM).secret
    admin = svc.create_api_key("admin", ["admin"], principal=SYSTEM).secret
    runner = ServerThread(create_app(svc))
    runner.start()
    yield {"url": runner.base_url, "admin": admin, "recognize": recognizer, "service": svc}
    runner.stop()
    svc.close()


def test_enroll_from_an_uploaded_clip_and_recognise_it_as_a_job(tmp_path, video_server):
    import httpx

    clip = write_clip(tmp_path / "yao.mp4", "yaoming.jpg")
    base, admin = video_server["url"], {"X-API-Key": video_server["admin"]}
    with httpx.Client(base_url=base, timeout=120) as http:
        enrolled = http.post("/api/v1/galleries/g/subjects/yao/enroll-video", headers=admin,
                             files={"file": ("yao.mp4", clip.read_bytes(), "video/mp4")},
                             data={"display_name": "Yao Ming", "rights": "lab:enter", "frames": "3"})
        assert enrolled.status_code == 200, enrolled.text
        assert enrolled.json()["enrollment"]["accepted"] >= 1
        bad = http.post("/api/v1/galleries/g/subjects/x/enroll-video", headers=admin,
                        files={"file": ("x.mp4", b"not a video at all", "video/mp4")})
        assert bad.status_code == 422 and bad.json()["code"] == "invalid_video"
        huge = http.post("/api/v1/galleries/g/video-jobs", headers=admin,
                         files={"file": ("big.mp4", b"\0" * (6 * 1024 * 1024), "video/mp4")})
        assert huge.status_code == 413 and huge.json()["code"] == "video_too_large"

        kiosk = {"X-API-Key": video_server["recognize"]}
        submitted = http.post("/api/v1/galleries/g/video-jobs", headers=kiosk,
                              files={"file": ("yao.mp4", clip.read_bytes(), "video/mp4")})
        assert submitted.status_code == 202, submitted.text
        job_url = submitted.headers["location"]
        deadline = time.monotonic() + 120
        while (job := http.get(job_url, headers=kiosk).json())["state"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert job["state"] == "done", job
        assert job["frames"] == job["total_frames"] == 24
        assert job["report"]["identified"] == {"yao": 1}
        assert [e["event"] for e in job["report"]["events"]] == ["track_identified", "track_ended"]
        assert http.get("/api/v1/video-jobs/nope", headers=kiosk).status_code == 404


def test_the_live_socket_names_faces_frame_by_frame(tmp_path, video_server):
    import asyncio

    import websockets

    svc = video_server["service"]
    svc.enroll("g", "yao", [PhotoInput("y.jpg", package_photo("yaoming.jpg").read_bytes())], principal=SYSTEM)
    clip = write_clip(tmp_path / "yao.mp4", "yaoming.jpg", frames=6)
    frames = [cv2.imencode(".jpg", f.image[:, :, ::-1])[1].tobytes() for f in VideoSource(clip)]
    url = video_server["url"].replace("http://", "ws://") + "/api/v1/galleries/g/live"

    async def session(key: str, payloads: list[bytes]) -> list[dict]:
        answers = []
        async with websockets.connect(f"{url}?api_key={key}") as socket:
            if not payloads:
                answers.append(json.loads(await socket.recv()))
            for data in payloads:
                await socket.send(data)
                answers.append(json.loads(await socket.recv()))
        return answers

    answers = asyncio.run(session(video_server["recognize"], [*frames, b"garbage"]))
    assert [a["frame"] for a in answers] == [0, 1, 2, 3, 4, 5, 6]
    assert all(len(a["faces"]) == 1 for a in answers[:6])
    assert answers[5]["faces"][0]["subject"] == "yao" and answers[5]["faces"][0]["state"] == "identified"
    assert answers[6]["error"] == "not_an_image"  # a bad frame is answered, the session goes on
    refused = asyncio.run(session("fg_bad_key", []))
    assert refused[0]["error"] == "unauthenticated"
