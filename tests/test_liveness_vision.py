"""The liveness vision floor: 106 landmarks, head pose, and the action detectors."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from facegate.errors import ModelChecksumError
from facegate.liveness import actions
from facegate.liveness.landmarks import EYE_LEFT, EYE_RIGHT, NOSE_TIP, PUPIL_LEFT, PUPIL_RIGHT, Landmarks106
from facegate.liveness.pose import (
    MODEL_5,
    MODEL_106_INDICES,
    MODEL_106_POINTS,
    pose_from_5,
    pose_from_106,
    project,
)
from facegate.models import onnx_session
from facegate.models.registry import locate, verified_path
from facegate.quality import estimate_pose
from tests.conftest import datasets_dir


@pytest.fixture(scope="module")
def landmarker() -> Landmarks106:
    return Landmarks106(intra_threads=1, inter_threads=1)


def _main(engine, image: np.ndarray):
    from facegate.engine import main_face_index

    dets = engine.detect(image)
    assert dets, "no face found"
    return dets[main_face_index(dets, image.shape[0], image.shape[1])]


def test_synthetic_rotation_is_recovered_within_3_degrees():
    rng = np.random.default_rng(7)
    for _ in range(60):
        yaw, pitch, roll = rng.uniform(-40, 40, 3)
        offset = (float(rng.uniform(-120, 120)), float(rng.uniform(-80, 80)))
        pts = project(MODEL_106_POINTS, yaw, pitch, roll, 640, 480, 500, offset)
        pts += rng.normal(0, 0.6, pts.shape)  # ~1 % of the eye distance at this size
        full = np.zeros((106, 2))
        full[list(MODEL_106_INDICES)] = pts
        est = pose_from_106(full, (480, 640, 3))
        assert abs(est.yaw - yaw) < 3 and abs(est.pitch - pitch) < 3 and abs(est.roll - roll) < 3
        five = pose_from_5(project(MODEL_5, yaw, pitch, roll, 640, 480, 500, offset), (480, 640, 3))
        assert abs(five.yaw - yaw) < 3 and abs(five.pitch - pitch) < 3 and abs(five.roll - roll) < 3


def test_sign_conventions_follow_the_person():
    # Turning to their left moves the nose to the image right; looking up moves it up.
    frontal = project(MODEL_5, 0, 0, 0, 640, 480)
    left = project(MODEL_5, 25, 0, 0, 640, 480)
    up = project(MODEL_5, 0, 20, 0, 640, 480)
    assert left[2, 0] - left[:2, 0].mean() > frontal[2, 0] - frontal[:2, 0].mean() + 5
    assert up[2, 1] - up[:2, 1].mean() < frontal[2, 1] - frontal[:2, 1].mean() - 5


def test_frontal_package_photo_is_near_zero_and_mirroring_negates_yaw(arcface_engine, portrait, landmarker):
    det = _main(arcface_engine, portrait)
    points = landmarker(portrait, det.box)
    pose = pose_from_106(points, portrait.shape)
    assert abs(pose.yaw) < 15 and abs(pose.roll) < 10 and abs(pose.pitch) < 15, pose
    yaw5, roll5 = estimate_pose(det.landmarks, portrait.shape)  # the old formula said about -50
    assert abs(yaw5) < 15 and abs(roll5) < 10
    # The points are where the picture has them: pupils inside the eye rings, nose below them.
    for ring in (EYE_LEFT, EYE_RIGHT):
        xs = points[list(ring), 0]
        assert xs.min() < points[ring[0], 0] + 1 or xs.max() > points[ring[0], 0] - 1
    assert points[NOSE_TIP, 1] > points[list(EYE_LEFT), 1].mean() + 10
    assert points[EYE_LEFT[0], 0] < points[EYE_RIGHT[0], 0]

    mirrored = np.ascontiguousarray(portrait[:, ::-1])
    mdet = _main(arcface_engine, mirrored)
    mpose = pose_from_106(landmarker(mirrored, mdet.box), mirrored.shape)
    assert abs(pose.yaw + mpose.yaw) < 4 and abs(pose.roll + mpose.roll) < 4 and abs(pose.pitch - mpose.pitch) < 4


def test_orl_mirroring_negates_yaw_and_roll_and_keeps_pitch(arcface_engine, landmarker):
    # ORL has no angle labels: a mirrored photo must read as the opposite turn (the models
    # are symmetric), and the yaw's sign must follow the nose's side of the eye midline.
    rows = []
    for path in sorted(datasets_dir("orl").glob("s[1-6]/*.pgm")):
        rgb = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), cv2.COLOR_GRAY2RGB)
        poses, offsets = [], []
        for image in (rgb, np.ascontiguousarray(rgb[:, ::-1])):
            points = landmarker(image, _main(arcface_engine, image).box)
            poses.append(pose_from_106(points, image.shape))
            pupils = points[[PUPIL_LEFT, PUPIL_RIGHT]]
            offsets.append((points[NOSE_TIP, 0] - pupils[:, 0].mean()) / (pupils[1, 0] - pupils[0, 0]))
        rows.append((poses[0].yaw, poses[1].yaw, poses[0].roll, poses[1].roll, poses[0].pitch, poses[1].pitch,
                     offsets[0]))
    a = np.array(rows)
    assert len(a) == 60
    assert np.abs(a[:, 0] + a[:, 1]).mean() < 3 and np.abs(a[:, 0] + a[:, 1]).max() < 8
    assert np.abs(a[:, 2] + a[:, 3]).mean() < 2 and np.abs(a[:, 4] - a[:, 5]).mean() < 2
    assert a[:, 0].max() - a[:, 0].min() > 20  # ORL's heads do turn
    clear = np.abs(a[:, 6]) > 0.15  # nose well off the eye midline: the sign is plain to see
    assert clear.sum() >= 5 and (np.sign(a[clear, 0]) == np.sign(a[clear, 6])).all()


def _clip(name: str, arcface_engine, landmarker) -> list[actions.FrameSignals]:
    path = datasets_dir("videos") / "LivePortrait" / f"{name}.mp4"
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    out, i = [], 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        det = _main(arcface_engine, rgb)
        out.append(actions.frame_signals(landmarker(rgb, det.box), rgb.shape, i / fps))
        i += 1
    cap.release()
    return out


def test_blink_in_liveportrait_d0_where_the_eyes_close(arcface_engine, landmarker):
    # Frames 64-68 of d0 (2.56-2.72 s): eyes shut, looked at on the written frame.
    frames = _clip("d0", arcface_engine, landmarker)
    found = actions.blinks(frames)
    assert len(found) == 1 and 2.4 <= found[0].start <= 2.7 and found[0].end <= 2.9, found
    assert actions.blinked(frames).happened
    assert not actions.turned(frames, "left").happened and not actions.turned(frames, "right").happened
    assert actions.smiled(frames).happened  # the wide grin from 0.8 s on
    assert not actions.blinked(frames[:50]).happened


def test_turns_in_liveportrait_d12_where_the_head_turns(arcface_engine, landmarker):
    # Looked at by eye: 1.6 s turned to his left, 3.2 s to his right (and head back), 6.7 s left.
    frames = _clip("d12", arcface_engine, landmarker)
    left = actions.turned(frames, "left", min_degrees=10)
    right = actions.turned(frames, "right", min_degrees=10)
    assert left.happened and 1.2 <= left.start <= 1.8, left
    assert right.happened and 2.9 <= right.start <= 3.4, right
    assert left.end is not None and right.start is not None and left.end < right.start
    assert max(f.yaw for f in frames) > 15 and min(f.yaw for f in frames) < -10
    blinks = actions.blinks(frames)
    assert any(1.8 <= b.start <= 2.2 for b in blinks) and any(5.2 <= b.start <= 5.7 for b in blinks)


def test_2d106det_checksum_is_verified(tmp_path: Path):
    original = locate("landmark_2d106")
    assert verified_path("landmark_2d106") == original
    corrupt = tmp_path / "2d106det.onnx"
    shutil.copyfile(original, corrupt)
    with corrupt.open("r+b") as handle:
        handle.seek(4096)
        byte = handle.read(1)
        handle.seek(4096)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ModelChecksumError):
        verified_path("landmark_2d106", corrupt)
    with pytest.raises(ModelChecksumError):
        onnx_session("landmark_2d106", 1, 1, path=corrupt)
