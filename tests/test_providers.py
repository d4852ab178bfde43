"""onnxruntime execution providers chosen by FACEGATE_ORT_PROVIDERS: auto takes CUDA when this
onnxruntime has it and CPU otherwise; a provider asked for by name that is not there is a
clear error at start-up, never a silent fall-back to CPU."""

from __future__ import annotations

import logging

import onnxruntime as ort
import pytest

from facegate.config import Settings, get_settings, load_settings
from facegate.engine import EnginePool, FaceEngine
from facegate.errors import ConfigurationError
from facegate.models.registry import onnx_session, resolve_providers, session_providers

HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()
cpu_only = pytest.mark.skipif(HAS_CUDA, reason="this onnxruntime has CUDA: auto would choose it")


@pytest.fixture
def fresh_settings():
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@cpu_only
def test_auto_runs_every_session_on_the_cpu_where_there_is_no_cuda(caplog):
    assert Settings().ort_providers == "auto"
    assert resolve_providers("auto") == ["CPUExecutionProvider"]
    with caplog.at_level(logging.INFO, logger="facegate.models.registry"):
        engine = EnginePool(Settings(ort_providers="auto")).get("arcface", "scrfd")
    assert engine.providers == {"detector": ["CPUExecutionProvider"], "recognizer": ["CPUExecutionProvider"]}
    assert engine.info()["providers"] == engine.providers
    opened = session_providers()
    assert opened["scrfd_500m"] == opened["arcface_mbf"] == ["CPUExecutionProvider"]
    # The log says which provider each session got.
    lines = [r.getMessage() for r in caplog.records]
    assert any("scrfd_500m on CPUExecutionProvider" in line for line in lines), lines
    assert any("arcface_mbf on CPUExecutionProvider" in line for line in lines), lines


def test_auto_puts_cuda_first_exactly_when_onnxruntime_lists_it():
    expected = ["CUDAExecutionProvider", "CPUExecutionProvider"] if HAS_CUDA else ["CPUExecutionProvider"]
    assert resolve_providers("auto") == expected


def test_cpu_by_name_runs_on_the_cpu(team_photo):
    engine = FaceEngine("arcface", "scrfd", settings=Settings(ort_providers="cpu", ort_intra_threads=1))
    assert engine.providers["detector"] == engine.providers["recognizer"] == ["CPUExecutionProvider"]
    assert len(engine.analyze(team_photo)) >= 12  # and it works


def test_dlib_models_say_they_run_on_dlib():
    assert FaceEngine("dlib", "dlib").providers == {"detector": ["dlib"], "recognizer": ["dlib"]}


@cpu_only
@pytest.mark.parametrize("value", ["cuda", "CUDAExecutionProvider,cpu", "tensorrt,cuda"])
def test_cuda_asked_for_by_name_without_it_is_a_clear_error(value):
    message = r"FACEGATE_ORT_PROVIDERS: .*CUDAExecutionProvider.* not available .*install onnxruntime-gpu"
    with pytest.raises(ConfigurationError, match=message):
        resolve_providers(value)
    with pytest.raises(ConfigurationError, match=message):  # the service's pool stops at start-up
        EnginePool(Settings(ort_providers=value))
    with pytest.raises(ConfigurationError, match=message):
        FaceEngine("arcface", "scrfd", settings=Settings(ort_providers=value))
    with pytest.raises(ConfigurationError, match=message):
        onnx_session("arcface_mbf", 1, providers=value)


@pytest.mark.parametrize(
    "value, reason",
    [
        ("gpu", "unknown provider 'gpu'"),
        ("", "without empty names"),
        ("cpu,,cuda", "without empty names"),
        ("auto,cpu", "auto chooses the providers itself"),
        ("cpu,CPUExecutionProvider", "CPUExecutionProvider is named twice"),
    ],
)
def test_a_malformed_value_is_refused_when_the_settings_load(value, reason):
    with pytest.raises(ConfigurationError, match=f"FACEGATE_ORT_PROVIDERS: .*{reason}"):
        load_settings(ort_providers=value)


def test_the_environment_variable_is_read_and_checked(monkeypatch, fresh_settings):
    monkeypatch.setenv("FACEGATE_ORT_PROVIDERS", "Cpu")
    assert get_settings().ort_providers == "Cpu"
    assert resolve_providers(get_settings().ort_providers) == ["CPUExecutionProvider"]
    get_settings.cache_clear()
    monkeypatch.setenv("FACEGATE_ORT_PROVIDERS", "cuda;cpu")
    with pytest.raises(ConfigurationError, match="FACEGATE_ORT_PROVIDERS: unknown provider 'cuda;cpu'"):
        get_settings()
