"""The face engine on real photos with the real models."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from facegate.alignment import ARCFACE_TEMPLATE, align_arcface, similarity_transform
from facegate.errors import ManyFacesError, ModelChecksumError, ModelMismatchError, NoFaceError
from facegate.models.registry import MODELS, locate, verified_path
from facegate.quality import estimate_pose
from tests.conftest import datasets_dir


def test_every_model_file_is_found_and_matches_its_checksum():
    for key in MODELS:
        assert verified_path(key).is_file()


def test_a_tampered_weight_file_is_refused(tmp_path):
    copy = tmp_path / "w600k_mbf.onnx"
    shutil.copy(locate("arcface_mbf"), copy)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(ModelChecksumError, match="sha256"):
        verified_path("arcface_mbf", copy)


def test_licences_are_stated_and_separate_commercial_from_research():
    assert not MODELS["arcface_mbf"].commercial_use and "non-commercial" in MODELS["arcface_mbf"].licence
    assert MODELS["dlib_resnet"].commercial_use
    assert not MODELS["dlib_shape68"].commercial_use and "300-W" in MODELS["dlib_shape68"].licence


def test_similarity_transform_recovers_a_known_similarity():
    angle, scale, shift = np.radians(20), 1.7, np.array([12.0, -5.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = ARCFACE_TEMPLATE @ rot.T + shift
    matrix = similarity_transform(moved, ARCFACE_TEMPLATE)
    back = moved @ matrix[:, :2].T + matrix[:, 2]
    assert np.abs(back - ARCFACE_TEMPLATE).max() < 1e-3


def test_portrait_has_one_face_with_landmarks_inside_the_box(arcface_engine, portrait):
    faces = arcface_engine.analyze(portrait)
    assert len(faces) == 1
    det = faces[0].detection
    x1, y1, x2, y2 = det.box
    assert det.score > 0.65 and det.size > 60
    assert ((det.landmarks[:, 0] > x1) & (det.landmarks[:, 0] < x2)).all()
    assert ((det.landmarks[:, 1] > y1) & (det.landmarks[:, 1] < y2)).all()
    left_eye, right_eye = det.landmarks[0], det.landmarks[1]
    assert left_eye[0] < right_eye[0]
    template = faces[0].template
    assert template.vector.shape == (512,)
    assert abs(np.linalg.norm(template.vector) - 1) < 1e-5
    assert template.model_sha256 == MODELS["arcface_mbf"].sha256


def test_team_photo_faces_are_all_found_and_are_different_people(arcface_engine, team_photo):
    faces = arcface_engine.analyze(team_photo)
    assert len(faces) >= 12
    vectors = np.stack([f.template.vector for f in faces])
    sims = vectors @ vectors.T
    off_diagonal = sims[~np.eye(len(faces), dtype=bool)]
    # Different people: ArcFace impostor similarities sit near 0, far under any threshold.
    assert off_diagonal.max() < 0.4


def test_the_same_face_stays_the_same_under_flip_scale_and_rotation(arcface_engine, portrait):
    base = arcface_engine.single_face(portrait).template
    h, w = portrait.shape[:2]
    variants = {
        "mirror": portrait[:, ::-1].copy(),
        "half size": cv2.resize(portrait, (w // 2, h // 2), interpolation=cv2.INTER_AREA),
        "rotated 15": cv2.warpAffine(portrait, cv2.getRotationMatrix2D((w / 2, h / 2), 15, 1.0), (w, h)),
        "jpeg q30": cv2.imdecode(cv2.imencode(".jpg", portrait, [cv2.IMWRITE_JPEG_QUALITY, 30])[1], cv2.IMREAD_UNCHANGED),
    }
    for name, image in variants.items():
        score = arcface_engine.single_face(np.ascontiguousarray(image)).template.similarity(base)
        assert score > 0.6, f"{name}: similarity {score:.3f}"


def test_face_filling_the_whole_frame_is_found(arcface_engine, portrait):
    face = arcface_engine.single_face(portrait)
    x1, y1, x2, y2 = face.detection.box.astype(int)
    tight = np.ascontiguousarray(portrait[y1:y2, x1:x2])
    found = arcface_engine.analyze(tight)
    assert len(found) == 1
    assert found[0].template.similarity(face.template) > 0.6


def test_a_face_cut_by_the_left_frame_edge_is_found_with_the_edge_margin(portrait):
    """The portrait cut through the middle of its face by the left edge, with the whole portrait
    beside it (so the full-frame second look, which runs only when nothing is found, stays out).
    Without a margin SCRFD has no anchor point left of the edge and the cut face scores 0.54;
    with the 5% margin it scores 0.77."""
    from facegate.detection.scrfd import DEFAULT_SCORE_THRESHOLD, ScrfdDetector

    plain, margined = ScrfdDetector(edge_padding=0.0), ScrfdDetector(edge_padding=0.05)
    whole = plain.detect(portrait)[0].box
    cut_at = int(whole[0] + 0.5 * (whole[2] - whole[0]))
    cut = portrait[:, cut_at:]
    width = cut.shape[1]
    image = np.ascontiguousarray(np.hstack([cut, portrait]))

    without = plain.detect(image)
    assert len(without) == 1 and without[0].box[0] > width  # only the whole face

    found = margined.detect(image)
    assert len(found) == 2 and min(d.score for d in found) >= DEFAULT_SCORE_THRESHOLD
    half = min(found, key=lambda d: d.box[0])
    x1, y1, x2, y2 = half.box
    assert x1 == 0  # clipped to the image
    assert whole[2] - cut_at - 15 < x2 < whole[2] - cut_at + 15  # ends where the face ends
    assert abs(y1 - whole[1]) < 15 and abs(y2 - whole[3]) < 15
    assert half.extras["inside"] < 0.8
    left_eye, right_eye = half.landmarks[0], half.landmarks[1]
    assert left_eye[0] < 0 < right_eye[0] < x2  # the hidden eye stays where it is, outside the frame
    # The margin moves nothing else: the whole face keeps its box.
    assert np.abs(max(found, key=lambda d: d.box[0]).box - without[0].box).max() < 6


def test_blank_image_has_no_face_and_single_face_says_so(arcface_engine):
    blank = np.full((300, 300, 3), 128, np.uint8)
    assert arcface_engine.analyze(blank) == []
    with pytest.raises(NoFaceError):
        arcface_engine.single_face(blank)


def test_many_faces_are_refused_where_one_is_needed(arcface_engine, team_photo):
    with pytest.raises(ManyFacesError, match="faces found"):
        arcface_engine.single_face(team_photo)


def test_main_face_falls_back_to_a_centre_crop_and_says_so(arcface_engine):
    blank = np.full((250, 250, 3), 90, np.uint8)
    face = arcface_engine.main_face(blank)
    assert face.fallback == "center_crop"
    with pytest.raises(NoFaceError):
        arcface_engine.main_face(blank, fallback=False)


def test_dlib_backend_gives_normalised_128d_templates_of_its_own_model(dlib_engine, arcface_engine, portrait):
    face = dlib_engine.single_face(portrait)
    assert face.detection.detector == "dlib"
    assert face.template.vector.shape == (128,)
    assert abs(np.linalg.norm(face.template.vector) - 1) < 1e-5
    mirrored = dlib_engine.single_face(np.ascontiguousarray(portrait[:, ::-1])).template
    assert face.template.similarity(mirrored) > 0.9
    other = arcface_engine.single_face(portrait).template
    with pytest.raises(ModelMismatchError):
        face.template.similarity(other)


def test_arcface_with_the_dlib_detector_gets_landmarks_from_dlib(portrait):
    from facegate.engine import FaceEngine

    mixed = FaceEngine(model="arcface", detector="dlib")
    reference = FaceEngine(model="arcface", detector="scrfd").single_face(portrait)
    face = mixed.single_face(portrait)
    assert face.detection.landmarks.shape == (5, 2)
    assert face.template.similarity(reference.template) > 0.8


def test_quality_drops_and_names_the_reason_for_blur_and_darkness(arcface_engine, portrait):
    good = arcface_engine.single_face(portrait).quality
    blurred = arcface_engine.single_face(cv2.GaussianBlur(portrait, (0, 0), 4)).quality
    dark = arcface_engine.single_face((portrait * 0.15).astype(np.uint8)).quality
    assert good.acceptable, good.reasons
    assert blurred.score < good.score and any("blurred" in r for r in blurred.reasons)
    assert any("dark" in r for r in dark.reasons)


def test_pose_from_landmarks():
    frontal = ARCFACE_TEMPLATE.copy()
    yaw, roll = estimate_pose(frontal)
    assert abs(yaw) < 5 and abs(roll) < 2
    turned = frontal.copy()
    turned[2, 0] += 15  # nose towards one eye: head turned
    assert abs(estimate_pose(turned)[0]) > 30


def test_aligned_crop_is_112_and_eyes_land_on_the_template(arcface_engine, portrait):
    det = arcface_engine.detect(portrait)[0]
    crop = align_arcface(portrait, det.landmarks)
    assert crop.shape == (112, 112, 3)
    matrix = similarity_transform(det.landmarks, ARCFACE_TEMPLATE)
    mapped = det.landmarks @ matrix[:, :2].T + matrix[:, 2]
    assert np.abs(mapped[:2] - ARCFACE_TEMPLATE[:2]).max() < 4


def test_tiny_orl_face_is_found(arcface_engine):
    from facegate.imaging import load_image

    orl = datasets_dir("orl")
    found = sum(len(arcface_engine.detect(load_image(orl / f"s{i}" / "1.pgm"))) == 1 for i in range(1, 41))
    assert found >= 39
