"""PRelu rewritten for onnxruntime's CPU provider (Relu, two channel scales, an Add) computes
what the shipped graph computes: on synthetic graphs against numpy, and on the real ArcFace and
landmark networks against their unmodified sessions, on real faces."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from facegate.config import get_settings
from facegate.models.graph_rewrite import rewrite_prelu
from facegate.models.registry import onnx_session, verified_path
from facegate.recognition import create_recognizer


def session(model: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def prelu_graph(slope: np.ndarray, slope_as_input: bool = False) -> bytes:
    """Conv (so the NCHWc transformer engages) then PRelu with ``slope``."""
    channels = 8
    rng = np.random.default_rng(3)
    weight = numpy_helper.from_array(rng.normal(size=(channels, 3, 3, 3)).astype(np.float32), "w")
    slope_init = numpy_helper.from_array(slope.astype(np.float32), "s")
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])]
    if slope_as_input:  # an old-style export lists its constants as inputs too
        inputs.append(helper.make_tensor_value_info("s", TensorProto.FLOAT, list(slope.shape)))
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("PRelu", ["c", "s"], ["y"])],
        "prelu",
        inputs,
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, 16, 16])],
        [weight, slope_init],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def ops(model: bytes) -> list[str]:
    return [n.op_type for n in onnx.load_from_string(model).graph.node]


@pytest.mark.parametrize("shape", [(8, 1, 1), (1, 8, 1, 1)])
@pytest.mark.parametrize("slope_as_input", [False, True])
def test_a_per_channel_prelu_becomes_relu_scales_and_add_with_the_same_output(shape, slope_as_input):
    # Slopes of every sign and size, including 0, 1 and above 1: the identity holds for all.
    slope = np.array([0.25, -0.5, 0.0, 1.0, 1.7, 0.01, -2.0, 0.9], dtype=np.float32).reshape(shape)
    original = prelu_graph(slope, slope_as_input)
    rewritten, count = rewrite_prelu(original)
    assert count == 1
    assert "PRelu" not in ops(rewritten) and ops(rewritten).count("BatchNormalization") == 2
    onnx.checker.check_model(onnx.load_from_string(rewritten))
    x = np.random.default_rng(0).normal(size=(1, 3, 16, 16)).astype(np.float32) * 3
    feed = {"x": x} if not slope_as_input else {"x": x, "s": slope}
    want = session(original).run(None, feed)[0]
    got = session(rewritten).run(None, {"x": x})[0]  # the slope is no longer an input to feed
    conv = session(original).run(None, feed)[0]
    assert np.abs(got - want).max() < 1e-5
    assert (conv < 0).any() and (conv > 0).any()  # both branches of PRelu were exercised


def test_a_slope_along_the_last_axis_or_fed_at_run_time_is_left_alone():
    # Shape (C,) broadcasts along the width, not the channels: not a channel scale.
    original = prelu_graph(np.full(16, 0.1, dtype=np.float32).reshape(16))
    assert rewrite_prelu(original) == (original, 0)


@pytest.mark.parametrize(("key", "count"), [("arcface_mbf", 34), ("landmark_2d106", 28)])
def test_the_shipped_networks_give_their_own_outputs_on_real_faces_after_the_rewrite(key, count, arcface_engine, team_photo):
    original = verified_path(key).read_bytes()
    rewritten, rewritten_count = rewrite_prelu(original)
    assert rewritten_count == count and "PRelu" not in ops(rewritten)
    detections = arcface_engine.detect(team_photo)
    assert len(detections) >= 12
    if key == "arcface_mbf":
        crops = [arcface_engine.recognizer.align(team_photo, det) for det in detections]
        batch = np.stack([(c[:, :, ::-1].astype(np.float32) - 127.5) / 127.5 for c in crops]).transpose(0, 3, 1, 2)
    else:
        size = 192
        batch = np.stack([
            cv2.resize(team_photo[int(d.box[1]):int(d.box[3]), int(d.box[0]):int(d.box[2])], (size, size)).astype(np.float32)
            for d in detections
        ]).transpose(0, 3, 1, 2)
    want_session, got_session = session(original), session(rewritten)
    name = want_session.get_inputs()[0].name
    for face in batch:
        want = want_session.run(None, {name: face[None]})[0]
        got = got_session.run(None, {name: face[None]})[0]
        assert np.abs(got - want).max() <= 1e-5 * max(1.0, float(np.abs(want).max()))
        if key == "arcface_mbf":
            cos = float(got.ravel() @ want.ravel() / np.linalg.norm(got) / np.linalg.norm(want))
            assert cos > 0.999999


@pytest.fixture
def fresh_settings():
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_the_setting_turns_the_rewrite_off_and_the_templates_do_not_move(fresh_settings, monkeypatch, caplog, arcface_engine, team_photo):
    crops = [arcface_engine.recognizer.align(team_photo, det) for det in arcface_engine.detect(team_photo)]
    with caplog.at_level(logging.INFO, logger="facegate.models.registry"):
        fast = create_recognizer("arcface", intra_threads=1)
    assert any("arcface_mbf: 34 PRelu nodes rewritten" in r.getMessage() for r in caplog.records)
    monkeypatch.setenv("FACEGATE_ORT_FAST_PRELU", "0")
    get_settings.cache_clear()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="facegate.models.registry"):
        shipped = create_recognizer("arcface", intra_threads=1)
        onnx_session("scrfd_500m", 1)  # no PRelu in SCRFD: nothing to say either way
    assert not any("rewritten" in r.getMessage() for r in caplog.records)
    a = np.stack([t.vector for t in fast.embed_aligned(crops)])
    b = np.stack([t.vector for t in shipped.embed_aligned(crops)])
    assert np.abs(a - b).max() < 1e-6
    assert np.allclose([t.raw_norm for t in fast.embed_aligned(crops)], [t.raw_norm for t in shipped.embed_aligned(crops)], rtol=1e-6)
