"""Validation of the liveness vision floor: head pose, and the per-frame action signals.

Usage (from the repository root; the data checks need ../shared/datasets)::

    .venv/bin/python bench/pose_check.py                 # everything below
    .venv/bin/python bench/pose_check.py --only synthetic,orl,clips,lfw
    .venv/bin/python bench/pose_check.py --frames d3:265,d0:66   # write those frames, annotated
    .venv/bin/python bench/pose_check.py --draw-indices PHOTO     # the 106 points, numbered

* synthetic: the mean 3-D face posed at random yaw/pitch/roll in [-40, 40] degrees, projected
  by a pinhole camera with 1 % of the eye distance of landmark noise, estimated back: mean
  absolute error per angle (106-point and 5-point models);
* orl: ORL has no angle labels, so the checks are (a) the spread of yaw and the yaw of the
  photos whose nose sits midway between the eyes, and (b) mirroring: a horizontally flipped
  photo must give the negated yaw and roll and the same pitch;
* clips: the eight LivePortrait clips: yaw range, frames beyond +-20 degrees, turns, blinks,
  smiles found with their times; a trace plot per clip under out/liveness_traces/;
* lfw: how many of the first 300 LFW photos pass enrollment quality with the old pose
  formula and with the solvePnP estimate.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from facegate.liveness import actions
from facegate.liveness.landmarks import Landmarks106
from facegate.liveness.pose import (
    MODEL_5,
    MODEL_106_INDICES,
    MODEL_106_POINTS,
    pose_from_5,
    pose_from_106,
    project,
)

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"
OUT = REPO / "out" / "liveness_traces"
CLIPS = ("d0", "d3", "d6", "d9", "d12", "d18", "d19", "d20")


def synthetic(n: int = 500, noise: float = 0.01, seed: int = 0) -> dict[str, np.ndarray]:
    """Mean absolute error (yaw, pitch, roll) of both models on posed, projected, noised points."""
    rng = np.random.default_rng(seed)
    errors: dict[str, list[list[float]]] = {"106": [], "5": []}
    for _ in range(n):
        yaw, pitch, roll = rng.uniform(-40, 40, 3)
        for name, model in (("106", MODEL_106_POINTS), ("5", MODEL_5)):
            pts = project(model, yaw, pitch, roll, 640, 480)
            eye = float(np.linalg.norm(pts[0] - pts[3] if name == "106" else pts[0] - pts[1]))
            pts = pts + rng.normal(0, noise * eye, pts.shape)
            if name == "106":
                full = np.zeros((106, 2))
                full[list(MODEL_106_INDICES)] = pts
                est = pose_from_106(full, (480, 640))
            else:
                est = pose_from_5(pts, (480, 640))
            errors[name].append([est.yaw - yaw, est.pitch - pitch, est.roll - roll])
    return {k: np.abs(np.array(v)).mean(0) for k, v in errors.items()}


class Measurer:
    """Detector + 106 landmarks on one frame: the main face's landmarks, or None."""

    def __init__(self) -> None:
        from facegate.engine import get_engine

        self.engine = get_engine()
        self.landmarks = Landmarks106()

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        from facegate.engine import main_face_index

        dets = self.engine.detect(rgb)
        if not dets:
            return None
        det = dets[main_face_index(dets, rgb.shape[0], rgb.shape[1])]
        return self.landmarks(rgb, det.box), det.landmarks


def orl(measure: Measurer) -> None:
    rows = []
    for path in sorted((DATASETS / "orl").glob("s*/*.pgm")):
        grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        rgb = cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
        both = []
        for im in (rgb, np.ascontiguousarray(rgb[:, ::-1])):
            got = measure(im)
            if got is None:
                break
            p, five = got
            pose = pose_from_106(p, im.shape)
            eyes = (p[38] + p[88]) / 2.0
            nose_offset = float((p[86, 0] - eyes[0]) / (np.linalg.norm(p[88] - p[38]) or 1.0))
            both.append((pose.yaw, pose.pitch, pose.roll, nose_offset))
        if len(both) == 2:
            rows.append(both[0] + both[1])
    a = np.array(rows)
    yaw, pitch, roll, off, myaw, mpitch, mroll = a[:, 0], a[:, 1], a[:, 2], a[:, 3], a[:, 4], a[:, 5], a[:, 6]
    print(f"ORL: {len(a)} of 400 photos measured (face found in the photo and its mirror)")
    print(f"  yaw  range {yaw.min():+.1f} .. {yaw.max():+.1f}, 5/50/95 pct "
          f"{np.percentile(yaw, 5):+.1f} {np.percentile(yaw, 50):+.1f} {np.percentile(yaw, 95):+.1f}")
    print(f"  pitch range {pitch.min():+.1f} .. {pitch.max():+.1f}; roll range {roll.min():+.1f} .. {roll.max():+.1f}")
    centred = np.abs(off) < 0.05
    print(f"  nose midway between the eyes (|offset| < 5% of eye distance): {centred.sum()} photos, "
          f"mean |yaw| {np.abs(yaw[centred]).mean():.1f}")
    agree = np.sign(off[np.abs(off) > 0.15]) == np.sign(yaw[np.abs(off) > 0.15])
    print(f"  nose clearly off-centre (> 15%): {agree.size} photos, yaw sign agrees with the nose side in {agree.sum()}")
    print(f"  mirror: mean |yaw + yaw_m| {np.abs(yaw + myaw).mean():.2f}, |roll + roll_m| "
          f"{np.abs(roll + mroll).mean():.2f}, |pitch - pitch_m| {np.abs(pitch - mpitch).mean():.2f} degrees; "
          f"max |yaw + yaw_m| {np.abs(yaw + myaw).max():.1f}")
    print(f"  correlation of yaw and nose offset: {np.corrcoef(yaw, off)[0, 1]:.3f}")


def clip_signals(measure: Measurer, name: str) -> tuple[list[actions.FrameSignals], float]:
    """Signals of every frame of a clip where a face is found; the landmarks are cached in
    out/liveness_traces/<name>.npz (a rerun only recomputes the signals)."""
    OUT.mkdir(parents=True, exist_ok=True)
    cache = OUT / f"{name}.npz"
    if not cache.exists():
        cap = cv2.VideoCapture(str(DATASETS / "videos" / "LivePortrait" / f"{name}.mp4"))
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        points, times, shape = [], [], (0, 0, 3)
        i = 0
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            shape = rgb.shape
            got = measure(rgb)
            if got is not None:
                points.append(got[0])
                times.append(i / fps)
            i += 1
        cap.release()
        np.savez(cache, points=np.array(points), times=np.array(times), shape=np.array(shape), fps=fps)
    data = np.load(cache)
    shape = tuple(int(v) for v in data["shape"])
    signals = [actions.frame_signals(p, shape, float(t)) for p, t in zip(data["points"], data["times"])]
    return signals, float(data["fps"])


def annotate(measure: Measurer, name: str, index: int) -> Path:
    """Write frame ``index`` of a clip with its landmarks, pose and eye openness drawn on it."""
    cap = cv2.VideoCapture(str(DATASETS / "videos" / "LivePortrait" / f"{name}.mp4"))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    cap.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, bgr = cap.read()
    cap.release()
    if not ok:
        raise SystemExit(f"{name} has no frame {index}")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    got = measure(rgb)
    if got is not None:
        s = actions.frame_signals(got[0], rgb.shape, index / fps)
        for x, y in got[0]:
            cv2.circle(bgr, (int(round(x)), int(round(y))), 1, (0, 255, 0), -1)
        nose = got[0][86]
        tip = nose + np.array([np.sin(np.radians(s.yaw)), -np.sin(np.radians(s.pitch))]) * 80
        cv2.line(bgr, (int(nose[0]), int(nose[1])), (int(tip[0]), int(tip[1])), (0, 0, 255), 2)
        text = f"{name} #{index} t={s.t:.2f}s yaw {s.yaw:+.1f} pitch {s.pitch:+.1f} roll {s.roll:+.1f}"
        text2 = f"eyes {s.eye_left:.2f}/{s.eye_right:.2f} mouth w {s.mouth_width:.2f} open {s.mouth_open:.2f}"
        for k, line in enumerate((text, text2)):
            cv2.putText(bgr, line, (8, 22 + 22 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 255, 255), 2)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}_{index:04d}.png"
    cv2.imwrite(str(path), bgr)
    return path


def draw_indices(measure: Measurer, photo: Path, zoom: int = 6) -> Path:
    """The 106 points of a photo's main face numbered on a zoomed crop: how the index groups
    in facegate/liveness/landmarks.py were read off."""
    rgb = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
    got = measure(rgb)
    if got is None:
        raise SystemExit(f"no face in {photo}")
    points = got[0]
    x1, y1 = (points.min(0) - 10).astype(int).clip(0)
    x2, y2 = (points.max(0) + 10).astype(int)
    crop = cv2.resize(rgb[y1:y2, x1:x2], None, fx=zoom, fy=zoom, interpolation=cv2.INTER_CUBIC)
    crop = cv2.cvtColor(crop, cv2.COLOR_RGB2BGR)
    for i, (x, y) in enumerate(points):
        at = (int((x - x1) * zoom), int((y - y1) * zoom))
        cv2.circle(crop, at, 3, (0, 255, 0), -1)
        cv2.putText(crop, str(i), (at[0] + 3, at[1] - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 255), 1)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"indices_{photo.stem}.png"
    cv2.imwrite(str(path), crop)
    return path


def legacy_yaw_roll(points: np.ndarray) -> tuple[float, float]:
    """The pose formula facegate/quality.py used before the solvePnP estimate (kept here only
    to count what the change does to enrollment quality)."""
    left, right, nose = points[0], points[1], points[2]
    vec = right - left
    dist = float(np.linalg.norm(vec)) or 1.0
    offset = float(np.dot(nose - (left + right) / 2.0, vec / dist)) / dist
    return float(np.degrees(np.arcsin(np.clip(offset * 2.0, -1.0, 1.0)))), float(np.degrees(np.arctan2(vec[1], vec[0])))


def lfw_quality(n: int = 300) -> None:
    """Enrollment quality of the first ``n`` LFW photos (sorted paths) with the old and new pose."""
    from facegate.engine import get_engine, main_face_index
    from facegate.quality import assess

    engine = get_engine()
    paths = sorted((DATASETS / "lfw").glob("*/*.jpg"))[:n]
    new_ok = old_ok = pose_refused_old = pose_refused_new = 0
    yaws_old, yaws_new = [], []
    for path in paths:
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        dets = engine.detect(rgb)
        if not dets:
            continue
        det = dets[main_face_index(dets, rgb.shape[0], rgb.shape[1])]
        report = assess(rgb, det)
        new_ok += report.acceptable
        pose_refused_new += any("turned" in r or "tilted" in r for r in report.reasons)
        yaws_new.append(report.measures["yaw"])
        # The old verdict: the same report with the old yaw/roll limits applied instead.
        yaw, roll = legacy_yaw_roll(det.landmarks)
        yaws_old.append(yaw)
        others = [r for r in report.reasons if "turned" not in r and "tilted" not in r]
        old_pose_bad = abs(yaw) > 35.0 or abs(roll) > 30.0
        pose_refused_old += old_pose_bad
        old_ok += not others and not old_pose_bad
    print(f"LFW first {len(paths)} photos: pass enrollment quality with the old pose {old_ok}, with solvePnP {new_ok}")
    print(f"  refused for pose: old {pose_refused_old}, new {pose_refused_new}; median |yaw| old "
          f"{np.median(np.abs(yaws_old)):.1f}, new {np.median(np.abs(yaws_new)):.1f} degrees")


def clips_report(measure: Measurer | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for name in CLIPS:
        signals, fps = clip_signals(measure, name)  # type: ignore[arg-type]
        t = np.array([s.t for s in signals])
        yaw = np.array([s.yaw for s in signals])
        far = np.flatnonzero(np.abs(yaw) > 20)
        print(f"{name}: {len(signals)} frames at {fps:.0f} fps ({t[-1]:.1f} s), yaw {yaw.min():+.1f} .. {yaw.max():+.1f}, "
              f"pitch {min(s.pitch for s in signals):+.1f} .. {max(s.pitch for s in signals):+.1f}, "
              f"|yaw| > 20 in {len(far)} frames" + (f" ({t[far[0]]:.2f}-{t[far[-1]]:.2f} s)" if len(far) else ""))
        for direction in ("left", "right"):
            for degrees in (actions.TURN_DEGREES, 10.0):
                r = actions.turned(signals, direction, min_degrees=degrees)  # type: ignore[arg-type]
                when = f"{r.start:.2f}-{r.end:.2f} s" if r.happened else "no"
                print(f"    turn {direction:5s} >= {degrees:.0f} deg: {when} (largest {r.peak:+.1f})")
        up = actions.looked_up(signals)
        print(f"    look up: {f'{up.start:.2f}-{up.end:.2f} s' if up.happened else 'no'} (largest {up.peak:+.1f})")
        smile = actions.smiled(signals)
        print(f"    smile: {f'{smile.start:.2f}-{smile.end:.2f} s' if smile.happened else 'no'} (largest {smile.peak:+.0%})")
        found = actions.blinks(signals)
        print(f"    blinks: {len(found)}: " + ", ".join(f"{b.start:.2f}-{b.end:.2f}" for b in found))
        fig, axes = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
        axes[0].plot(t, yaw, label="yaw")
        axes[0].plot(t, [s.pitch for s in signals], label="pitch")
        axes[0].plot(t, [s.roll for s in signals], label="roll")
        axes[0].axhline(20, ls=":", c="k")
        axes[0].axhline(-20, ls=":", c="k")
        axes[0].set_ylabel("degrees")
        axes[0].legend(loc="upper right")
        axes[1].plot(t, [max(s.eye_left, s.eye_right) for s in signals], "k", label="eye openness")
        axes[1].plot(t, [s.mouth_width / 4 for s in signals], "m", label="mouth width / 4")
        for b in found:
            axes[1].axvspan(b.start, b.end, color="r", alpha=0.3)
        axes[1].legend(loc="upper right")
        axes[1].set_xlabel("seconds")
        fig.suptitle(f"LivePortrait {name}")
        fig.tight_layout()
        fig.savefig(OUT / f"{name}.png", dpi=70)
        plt.close(fig)
    print(f"  plots in {OUT.relative_to(REPO)}/")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="synthetic,orl,clips,lfw")
    parser.add_argument("--frames", default="", help="name:index,... frames to write annotated")
    parser.add_argument("--draw-indices", metavar="PHOTO", help="write PHOTO's 106 points, numbered")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    if args.draw_indices:
        print("wrote", draw_indices(Measurer(), Path(args.draw_indices)))
        return
    if "synthetic" in parts:
        for noise in (0.0, 0.01, 0.02):
            mae = synthetic(noise=noise)
            for model, err in mae.items():
                print(f"synthetic, {model}-point model, noise {noise:.0%} of eye distance: mean abs error "
                      f"yaw {err[0]:.2f} pitch {err[1]:.2f} roll {err[2]:.2f} degrees")
    needs_data = parts & {"orl", "clips", "lfw"} or args.frames
    if needs_data and not DATASETS.exists():
        raise SystemExit(f"{DATASETS} is missing: only the synthetic check can run")
    measure = Measurer() if needs_data else None
    if "orl" in parts and measure:
        orl(measure)
    if "clips" in parts and measure:
        clips_report(measure)
    if "lfw" in parts:
        lfw_quality()
    for spec in filter(None, args.frames.split(",")):
        name, index = spec.split(":")
        print("wrote", annotate(measure, name, int(index)))  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
