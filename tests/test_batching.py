"""Several faces embedded in one run of the recognition network give the templates of one face
per run: a group photo can cost one inference, which is what a GPU needs. On the CPU one face
per run is the default (batches measured slower there: FACEGATE_EMBED_BATCH_SIZE)."""

from __future__ import annotations

import numpy as np
import pytest

from facegate.config import Settings, load_settings
from facegate.engine import FaceEngine
from facegate.errors import ConfigurationError
from facegate.recognition import create_recognizer
from tests.test_detection_same_faces import RecordingSession


def one_by_one(recognizer, crops):
    return np.stack([recognizer.embed_aligned([crop])[0].vector for crop in crops])


def recorded(recognizer) -> RecordingSession:
    recorder = RecordingSession(recognizer.session)
    recognizer.session = recorder
    return recorder


@pytest.fixture(scope="module")
def group_crops(arcface_engine, team_photo):
    crops = [arcface_engine.recognizer.align(team_photo, det) for det in arcface_engine.detect(team_photo)]
    assert len(crops) >= 12  # players.jpg: 16 faces
    return crops


@pytest.mark.parametrize("name", ["arcface", "arcface-flip"])
def test_a_group_photo_is_embedded_in_one_run_with_the_one_by_one_templates(name, group_crops):
    recognizer = create_recognizer(name, intra_threads=1, max_batch=64)
    single = one_by_one(recognizer, group_crops)
    recorder = recorded(recognizer)
    templates = recognizer.embed_aligned(group_crops)
    faces = len(group_crops) * (2 if name == "arcface-flip" else 1)  # the mirrored crops join the batch
    assert recorder.shapes == [(faces, 3, 112, 112)]
    batched = np.stack([t.vector for t in templates])
    assert np.abs(batched - single).max() < 1e-4
    assert np.allclose([t.raw_norm for t in templates], [recognizer.embed_aligned([c])[0].raw_norm for c in group_crops])
    # Each template is its own face's: different people stay apart.
    assert (batched @ single.T).argmax(axis=1).tolist() == list(range(len(group_crops)))


def test_more_faces_than_the_batch_size_setting_go_in_several_runs_in_order(group_crops):
    whole = one_by_one(create_recognizer("arcface", intra_threads=1), group_crops)
    recognizer = FaceEngine("arcface", "scrfd", settings=Settings(embed_batch_size=5, ort_intra_threads=1)).recognizer
    recorder = recorded(recognizer)
    chunked = np.stack([t.vector for t in recognizer.embed_aligned(group_crops)])
    assert [shape[0] for shape in recorder.shapes] == [5, 5, 5, len(group_crops) - 15]
    assert np.abs(chunked - whole).max() < 1e-4


def test_the_engine_embeds_every_face_of_a_photo_in_one_run_when_batches_are_on(team_photo):
    engine = FaceEngine("arcface", "scrfd", settings=Settings(embed_batch_size=32))
    recorder = recorded(engine.recognizer)
    faces = engine.analyze(team_photo)
    assert len(recorder.shapes) == 1 and recorder.shapes[0][0] == len(faces) >= 12
    single = one_by_one(engine.recognizer, [f.aligned for f in faces])
    assert np.abs(np.stack([f.template.vector for f in faces]) - single).max() < 1e-4


def test_on_the_cpu_the_automatic_batch_is_one_face_per_run(team_photo):
    engine = FaceEngine("arcface", "scrfd", settings=Settings(ort_providers="cpu"))
    assert Settings().embed_batch_size == 0 and engine.recognizer.max_batch == 1
    recorder = recorded(engine.recognizer)
    faces = engine.analyze(team_photo)
    assert recorder.shapes == [(1, 3, 112, 112)] * len(faces)


def test_a_negative_batch_size_is_refused():
    with pytest.raises(ConfigurationError, match="FACEGATE_EMBED_BATCH_SIZE: Input should be greater than or equal to 0"):
        load_settings(embed_batch_size=-1)


def test_dlib_embeds_a_list_of_chips_with_the_one_by_one_descriptors(dlib_engine, team_photo):
    detections = dlib_engine.detect(team_photo)
    assert len(detections) >= 5
    chips = [dlib_engine.recognizer.align(team_photo, det) for det in detections]
    batched = np.stack([t.vector for t in dlib_engine.recognizer.embed_aligned(chips)])
    assert np.abs(batched - one_by_one(dlib_engine.recognizer, chips)).max() < 1e-4
