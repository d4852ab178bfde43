"""Video: end-to-end frames per second, beside face_recognition's own per-frame loop, and the
accuracy of per-track identity on real clips.

Usage (from the repository root; needs ../shared/datasets/videos)::

    .venv/bin/python bench/video.py                 # speed: Hamilton 640x360 and the 1080p crowd
    .venv/bin/python bench/video.py --accuracy      # + Hamilton labels and the LivePortrait protocol
    .venv/bin/python bench/video.py --json out/video.json

Speed: FaceGate's whole path (decode, detect, track, embed, decide against a gallery, events)
over every frame of the clip, and in the same run face_recognition's webcam-example loop
(``face_locations`` then ``face_encodings`` on every frame) in ``.venv-bench`` (``make bench``
builds it), with the ratio. Accuracy: a gallery from the two Hamilton stills (Lin-Manuel
Miranda, Alex Lacamoire): which tracks are named whom; the eight LivePortrait clips: each person
enrolled from the first half of their clip, recognised in the second half (closed set), and
each whole clip run against a gallery of the other seven (open set: any naming is a false accept).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "datasets"
VIDEOS = DATA / "videos"
HAMILTON = VIDEOS / "face_recognition" / "short_hamilton_clip.mp4"
CROWD = VIDEOS / "facenet-pytorch" / "video.mp4"
STILLS = DATA / "face_recognition_examples" / "examples"
BENCH_PYTHON = REPO / ".venv-bench" / "bin" / "python"

PEER_LOOP = r"""
import sys, time, cv2, face_recognition
capture = cv2.VideoCapture(sys.argv[1]); frames = faces = 0; start = time.perf_counter()
while True:
    ok, bgr = capture.read()
    if not ok:
        break
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    locations = face_recognition.face_locations(rgb)
    faces += len(face_recognition.face_encodings(rgb, locations))
    frames += 1
print(frames, faces, time.perf_counter() - start)
"""


def service_with(stills: dict[str, Path], data_dir: Path):
    from facegate.config import Settings
    from facegate.gallery.inputs import PhotoInput
    from facegate.gallery.service import GalleryService
    from facegate.security import SYSTEM

    service = GalleryService(Settings(data_dir=data_dir, ort_intra_threads=2), migrate=True)
    service.create_gallery("g", principal=SYSTEM)
    for subject, path in stills.items():
        service.enroll("g", subject, [PhotoInput(path.name, path.read_bytes())], principal=SYSTEM)
    return service


def facegate_speed(clip: Path, service, every: int) -> dict:
    from facegate.security import SYSTEM
    from facegate.video.runner import recognize_video

    report = recognize_video(service, "g", clip, principal=SYSTEM, every=every)
    return {"frames": report.frames, "seconds": round(report.seconds, 2), "fps": round(report.fps, 1),
            "tracks": report.tracks, "named": report.identified}


def peer_speed(clip: Path) -> dict | None:
    if not BENCH_PYTHON.exists():
        return None
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    done = subprocess.run([str(BENCH_PYTHON), "-c", PEER_LOOP, str(clip)], capture_output=True, text=True, env=env,
                          timeout=1800)
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"rc {done.returncode}"}
    frames, faces, seconds = done.stdout.split()
    return {"frames": int(frames), "faces": int(faces), "seconds": round(float(seconds), 2),
            "fps": round(int(frames) / float(seconds), 1)}


def hamilton_labels(service) -> list[dict]:
    from facegate.security import SYSTEM
    from facegate.video.runner import recognize_video

    report = recognize_video(service, "g", HAMILTON, principal=SYSTEM)
    return [{k: e.get(k) for k in ("event", "track", "first_frame", "last_frame", "subject", "score", "frames_to_name")}
            for e in report.events if e["event"] in ("track_identified", "track_ended")]


def liveportrait(work: Path) -> dict:
    """Closed set (second halves) and open set (each clip against the other seven)."""
    import cv2

    from facegate.security import SYSTEM
    from facegate.video.enroll import enroll_from_video
    from facegate.video.runner import recognize_video

    clips = sorted((VIDEOS / "LivePortrait").glob("*.mp4"))
    halves = {c.stem: int(cv2.VideoCapture(str(c)).get(cv2.CAP_PROP_FRAME_COUNT)) // 2 for c in clips}
    closed = service_with({}, work / "closed")
    for c in clips:  # enrolled from the first half only (every 2nd frame, up to its middle)
        enroll_from_video(closed, "g", c.stem, c, principal=SYSTEM, every=2, max_frames=halves[c.stem] // 2)
    rows = []
    for c in clips:
        report = recognize_video(closed, "g", c, principal=SYSTEM, start_frame=halves[c.stem])
        rows.append(_clip_row(c.stem, "second half", report.events))
    for held_out in clips:  # open set: a gallery of the other seven
        service = service_with({}, work / f"open_{held_out.stem}")
        for c in clips:
            if c != held_out:
                enroll_from_video(service, "g", c.stem, c, principal=SYSTEM, every=2, max_frames=halves[c.stem] // 2)
        report = recognize_video(service, "g", held_out, principal=SYSTEM)
        rows.append(_clip_row(held_out.stem, "not enrolled", report.events))
    return {"clips": rows,
            "false_accepts": sum(r["wrong"] for r in rows),
            "closed_set_tracks_correct": sum(r["correct"] for r in rows if r["setting"] == "second half"),
            "closed_set_tracks": sum(r["tracks"] for r in rows if r["setting"] == "second half")}


def _clip_row(person: str, setting: str, events: list[dict]) -> dict:
    named = [e for e in events if e["event"] == "track_identified"]
    ended = [e for e in events if e["event"] == "track_ended"]
    expected = person if setting == "second half" else None
    correct = sum(1 for e in ended if e.get("subject") == expected)
    wrong = sum(1 for e in named if e["subject"] != expected)
    return {"person": person, "setting": setting, "tracks": len(ended), "correct": correct, "wrong": wrong,
            "frames_to_name": [e["frames_to_name"] for e in named if e["subject"] == expected]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--accuracy", action="store_true", help="also the Hamilton labels and the LivePortrait protocol")
    ap.add_argument("--every", type=int, default=1, help="detect on every Nth frame (default 1: every frame)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not HAMILTON.exists():
        raise SystemExit(f"needs {VIDEOS} (../shared/datasets/videos)")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    out: dict = {"every": args.every}
    with tempfile.TemporaryDirectory() as tmp:
        stills = {"lin-manuel-miranda": STILLS / "lin-manuel-miranda.png", "alex-lacamoire": STILLS / "alex-lacamoire.png"}
        service = service_with(stills, Path(tmp) / "ham")
        for name, clip in (("hamilton_640x360", HAMILTON), ("crowd_1080p", CROWD)):
            started = time.perf_counter()
            ours = facegate_speed(clip, service, args.every)
            peer = peer_speed(clip)
            ratio = round(ours["fps"] / peer["fps"], 2) if peer and "fps" in peer else None
            out[name] = {"facegate": ours, "face_recognition": peer, "fps_ratio": ratio}
            print(f"{name}: FaceGate {ours['fps']} fps ({ours['frames']} frames, {ours['tracks']} tracks, named "
                  f"{ours['named']}); face_recognition {peer['fps'] if peer and 'fps' in peer else peer}; "
                  f"ratio {ratio} ({time.perf_counter() - started:.0f} s)")
        if args.accuracy:
            out["hamilton_labels"] = hamilton_labels(service)
            for row in out["hamilton_labels"]:
                print("  hamilton", row)
            out["liveportrait"] = liveportrait(Path(tmp))
            for row in out["liveportrait"]["clips"]:
                print("  liveportrait", row)
            lp = out["liveportrait"]
            print(f"liveportrait: closed set {lp['closed_set_tracks_correct']}/{lp['closed_set_tracks']} tracks correct; "
                  f"false accepts {lp['false_accepts']}")
    print(f"machine after the run: load average {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    sys.exit(main())
