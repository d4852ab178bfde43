"""APCER/BPCER (ISO/IEC 30107-3) of the liveness check at the shipped operating point.

    .venv/bin/python bench/liveness_eval.py            # needs ../shared/datasets/videos/LivePortrait

Bona fide presentations: the real LivePortrait clips answering challenges they happen to
satisfy. For each action a clip performs (times from bench/pose_check.py's traces), the
window starts 1.2 s before it and lasts 3 s (10 fps), and the challenge is that action; for
actions that follow each other within 2 s in one clip, the pair in the order they occur.
The claimed subject is the clip's person, enrolled from the clip's first frame.

Attacks, built from the same windows and answering the same challenge:
  still   - the window's first frame repeated, with noise (sigma 2 grey levels);
  plane   - that frame warped by a smooth random homography over time (a printed photo held
            up: tilted up to 25 degrees about the vertical axis - mimicking a turn - rotated,
            shifted and scaled), with noise;
  order   - a pair's actions asked in the reverse order;
  late    - the window starts 5.0 s before the action (6 fps): it comes after the 4 s allowed;
  replay  - the recording answering a new challenge (an action it does not perform), and the
            same nonce sent a second time;
  splice  - frames 40-70 % of the window replaced by another clip's (another person).
APCER(type) = attacks accepted / attacks of that type; BPCER = bona fide refused / bona fide.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from facegate.config import Settings  # noqa: E402
from facegate.gallery import liveness as lv  # noqa: E402
from facegate.gallery.inputs import FrameInput  # noqa: E402
from facegate.gallery.schemas import GallerySettings  # noqa: E402
from facegate.gallery.service import GalleryService  # noqa: E402
from facegate.liveness.recording import read_window  # noqa: E402
from facegate.security import SYSTEM  # noqa: E402

CLIPS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "videos" / "LivePortrait"
# (clip, [actions in order], time of the first action in seconds)
BONA_FIDE = [
    ("d3", ["turn_left"], 4.93), ("d3", ["turn_left"], 8.70), ("d3", ["turn_right"], 0.47),
    ("d12", ["turn_left"], 1.44), ("d12", ["turn_right"], 3.16), ("d12", ["look_up"], 4.84),
    ("d0", ["blink"], 2.56), ("d3", ["blink"], 1.57), ("d12", ["blink"], 1.92), ("d12", ["blink"], 5.36),
    ("d18", ["blink"], 3.13),
    ("d0", ["smile"], 0.8), ("d9", ["smile"], 9.8), ("d12", ["smile"], 1.0), ("d19", ["smile"], 2.73),
    ("d12", ["smile", "turn_left"], 1.0), ("d12", ["turn_left", "blink"], 1.44), ("d12", ["turn_right", "look_up"], 3.16),
]
OTHER = {"d0": "d19", "d3": "d18", "d9": "d0", "d12": "d0", "d18": "d3", "d19": "d12"}
UNPERFORMED = {"turn_left": "look_up", "turn_right": "smile", "look_up": "turn_right", "blink": "turn_left",
               "smile": "turn_right"}


def noisy(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)


def plane_attack(img: np.ndarray, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A flat picture moved smoothly: a homography from a rotation of the picture's plane
    about the vertical and horizontal axes, plus in-plane rotation, shift and scale."""
    h, w = img.shape[:2]
    f = float(w)
    k = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]])
    end = rng.uniform([-25, -12, -10, -0.08, -0.08, 0.85], [25, 12, 10, 0.08, 0.08, 1.15])
    out = []
    for i in range(n):
        a = min(1.0, i / max(1, n * 0.6))  # move over the first 60 %, then hold
        yaw, pitch, roll, tx, ty, s = (end * a) + np.array([0, 0, 0, 0, 0, 1.0]) * (1 - a)
        ry, rx = np.radians(yaw), np.radians(pitch)
        r = (np.array([[np.cos(ry), 0, np.sin(ry)], [0, 1, 0], [-np.sin(ry), 0, np.cos(ry)]])
             @ np.array([[1, 0, 0], [0, np.cos(rx), -np.sin(rx)], [0, np.sin(rx), np.cos(rx)]]))
        # Plane z = f (the picture at the focal distance), normal along the optical axis.
        hom = k @ (r + np.outer(np.array([tx * f, ty * f, 0]), [0, 0, 1 / f])) @ np.linalg.inv(k)
        c = cv2.getRotationMatrix2D((w / 2, h / 2), roll, s)
        hom = np.vstack([c, [0, 0, 1]]) @ hom
        out.append(noisy(cv2.warpPerspective(img, hom, (w, h), borderMode=cv2.BORDER_REPLICATE), rng))
    return out


def main() -> None:
    rng = np.random.default_rng(0)
    tmp = Path(tempfile.mkdtemp())
    svc = GalleryService(Settings(data_dir=tmp / "data"), migrate=True)
    svc.create_gallery("eval", settings=GallerySettings(liveness="active"), principal=SYSTEM)
    ctx = svc.ctx
    for clip in sorted({c for c, _, _ in BONA_FIDE} | set(OTHER.values())):
        first, _ = read_window(CLIPS / f"{clip}.mp4", 0, 0.2)
        svc.enroll("eval", clip, [FrameInput("enrol", first[0])], create_subject=True, principal=SYSTEM)

    def run(clip: str, frames, times, asked, nonce=None, late=False):
        ch = lv.issue_challenge(ctx, "eval", SYSTEM, actions=asked) if nonce is None else None
        now = (ch.issued_at if ch else dt.datetime.now(dt.UTC)) + dt.timedelta(seconds=12 if late else 5)
        rec = lv.Recording([FrameInput(f"f{i}", f) for i, f in enumerate(frames)], list(times),
                           nonce or (ch.nonce if ch else None))
        return lv.check_recording(ctx, "eval", rec, clip, SYSTEM, now=now).result, (ch.nonce if ch else nonce)

    rows: dict[str, list[tuple[str, bool, str]]] = defaultdict(list)
    for clip, asked, t in BONA_FIDE:
        path = CLIPS / f"{clip}.mp4"
        start = max(0.0, t - 1.2)
        frames, times = read_window(path, start, start + 3.0)
        label = f"{clip} {'+'.join(asked)} @{t}"
        res, nonce = run(clip, frames, times, asked)
        rows["bona fide"].append((label, res.passed, res.reason))
        print(f"bona fide {label}: {'PASS' if res.passed else 'FAIL'} {res.reason} "
              f"[{', '.join(f'{a.action}@{a.start}' for a in res.actions)}] plane={res.passive.get('plane')}", flush=True)
        again, _ = run(clip, frames, times, asked, nonce=nonce)
        rows["replay (same nonce)"].append((label, again.passed, again.reason))
        res, _ = run(clip, [noisy(frames[0], rng) for _ in frames], times, asked)
        rows["still"].append((label, res.passed, res.reason))
        res, _ = run(clip, plane_attack(frames[0], len(frames), rng), times, asked)
        rows["plane"].append((label, res.passed, res.reason))
        new = [UNPERFORMED[a] for a in asked][:1]
        res, _ = run(clip, frames, times, new)
        rows["replay (new challenge)"].append((label + f" asked {new}", res.passed, res.reason))
        if len(asked) == 2:
            res, _ = run(clip, frames, times, asked[::-1])
            rows["order"].append((label, res.passed, res.reason))
        lf, lt = read_window(path, max(0.0, t - 5.0), t + 1.0, fps=6)
        if lt and lt[-1] > 4.5:
            res, _ = run(clip, lf, lt, asked, late=True)
            rows["late"].append((label, res.passed, res.reason))
        other, _ = read_window(CLIPS / f"{OTHER[clip]}.mp4", 0.0, 3.0)
        a, b = int(len(frames) * 0.4), int(len(frames) * 0.7)
        spliced = frames[:a] + [cv2.resize(o, frames[0].shape[1::-1]) for o in other[a:b]] + frames[b:]
        res, _ = run(clip, spliced[: len(times)], times[: len(spliced)], asked)
        rows["splice"].append((label, res.passed, res.reason))

    print("\n== Results at the shipped operating point (turn >= %g deg, still < %g, plane < %g) ==" % (
        lv.TURN_DEGREES, lv.passive.STILL_MAX, lv.passive.PLANE_MAX))
    bona = rows.pop("bona fide")
    refused = [r for r in bona if not r[1]]
    print(f"BPCER = {len(refused)}/{len(bona)} = {len(refused) / len(bona):.3f}")
    for label, _, reason in refused:
        print(f"   refused: {label}: {reason}")
    for kind, items in rows.items():
        accepted = [r for r in items if r[1]]
        print(f"APCER[{kind}] = {len(accepted)}/{len(items)} = {len(accepted) / max(1, len(items)):.3f}")
        for label, _, reason in accepted:
            print(f"   accepted: {label}")
        reasons = Counter(r[2].split(" (")[0].split(":")[0] for r in items if not r[1])
        print(f"   refusal reasons: {dict(reasons)}")
    print("\n== Decision log ==")
    decisions = svc.list_decisions("eval", limit=500, kind="liveness", principal=SYSTEM).items
    print(Counter(d.outcome for d in decisions))
    for outcome in ("passed", "failed"):
        d = next((d for d in decisions if d.outcome == outcome), None)
        if d:
            keep = {k: d.details[k] for k in ("passed", "reason", "mode", "challenge", "passive", "frames_embedded")}
            print(f"  {outcome}: subject={d.subject} details={keep} actions={d.details['actions']}")
    svc.close()


if __name__ == "__main__":
    main()
