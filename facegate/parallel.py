"""Per-photo engine work for jobs over many photos (bulk enrollment, dataset evaluation), run
in this process or on a local Ray cluster.

Reading, decoding, detecting, aligning, scoring quality and embedding a photo needs nothing
but the photo and a :class:`~facegate.engine.FaceEngine`, so it spreads over processes; what
a job does with the faces (store them, score pairs) stays with the caller. On Ray, Ray Data
streams the photos through a pool of actors that each build one engine once (its ONNX
sessions are the costly part) and run one onnxruntime thread on the CPU Ray gives them;
results come back as they are ready, so the caller stores them while the rest are analysed.

Both engines run :class:`PhotoWorker`, so a photo gives the same faces whichever runs it.
Ray actors read photos by path: every actor of a local cluster sees the caller's files.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from facegate.config import Settings
from facegate.engine import Face, FaceEngine
from facegate.errors import FaceGateError, InvalidRequestError
from facegate.imaging import ImageLimits, decode_image, image_sha256, read_image_bytes
from facegate.quality import QualityLimits

ENGINES = ("local", "ray")
Mode = Literal["analyze", "main_face"]  # every face (enrollment), or the portrait's one (evaluation)
RAY_BATCH = 4  # photos per actor call: small, so results stream back and a kill loses little


@dataclass(frozen=True)
class Compute:
    """Where the per-photo work runs: ``local`` (this process, the caller's engine) or ``ray``
    (a local Ray cluster of ``workers`` CPUs, one actor with one onnxruntime thread on each;
    0: every CPU of this machine)."""

    engine: str = "local"
    workers: int = 0

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise InvalidRequestError(f"unknown engine {self.engine!r}; choose one of {', '.join(ENGINES)}")
        if self.workers < 0:
            raise InvalidRequestError(f"workers must be 0 (every CPU) or more, got {self.workers}")

    @property
    def actors(self) -> int:
        return self.workers or os.cpu_count() or 1


@dataclass(frozen=True)
class EngineSpec:
    """What it takes to build the same engine in another process: the model, the detector,
    the settings (thresholds, image limits) and any override the engine was built with."""

    model: str
    detector: str
    settings: Settings
    score_threshold: float | None = None
    quality_limits: QualityLimits | None = None

    @classmethod
    def of(cls, engine: FaceEngine) -> EngineSpec:
        return cls(engine.model_name, engine.detector_name, engine.settings, engine.detector.score_threshold,
                   engine.quality_limits)

    def build(self, threads: int | None = None) -> FaceEngine:
        """The engine; ``threads`` replaces the settings' onnxruntime threads (Ray actors: 1)."""
        settings = self.settings
        if threads is not None:
            settings = settings.model_copy(update={"ort_intra_threads": threads, "ort_inter_threads": 1})
        return FaceEngine(self.model, self.detector, settings, self.score_threshold, self.quality_limits)


@dataclass
class PhotoTask:
    key: int  # the caller's index of the photo
    path: str
    name: str  # what messages call it


@dataclass
class PhotoResult:
    """One photo analysed: its faces (every face, or the main face with how it was found), its
    size and the sha256 of its bytes; or why it could not be read (``error_code``)."""

    key: int
    name: str
    faces: list[Face] = field(default_factory=list)
    height: int = 0
    width: int = 0
    source_sha256: str = ""
    error_code: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error_code


class PhotoWorker:
    """One engine and the per-photo work: the body of the local loop and each Ray actor."""

    def __init__(self, spec: EngineSpec, mode: Mode, threads: int | None = None, engine: FaceEngine | None = None):
        self.engine = engine if engine is not None else spec.build(threads)
        self.limits = ImageLimits.from_settings(spec.settings)
        self.mode = mode

    def run(self, task: PhotoTask) -> PhotoResult:
        try:
            data = read_image_bytes(task.path, self.limits)
            image = decode_image(data, self.limits, name=task.name)
            height, width = image.shape[:2]
            if self.mode == "analyze":
                faces = self.engine.analyze(image)
            else:
                faces = [self.engine.main_face(image)]
        except FaceGateError as exc:
            return PhotoResult(task.key, task.name, error_code=exc.code, error=exc.message)
        return PhotoResult(task.key, task.name, faces, height, width, image_sha256(data))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Ray Data's entry: a batch of tasks in, their results out (pickled, one per row)."""
        results = [
            pickle.dumps(self.run(PhotoTask(int(k), str(p), str(n))), protocol=5)
            for k, p, n in zip(batch["key"], batch["path"], batch["name"])
        ]
        out = np.empty(len(results), dtype=object)
        out[:] = results
        return {"key": np.asarray(batch["key"]), "result": out}


def map_photos(
    tasks: Sequence[PhotoTask], spec: EngineSpec, mode: Mode, compute: Compute, engine: FaceEngine | None = None
) -> Iterator[PhotoResult]:
    """Every task's result as soon as it is ready: in order locally (on ``engine`` when given,
    else one built from ``spec``), in completion order on Ray."""
    if not tasks:
        return
    if compute.engine == "local":
        worker = PhotoWorker(spec, mode, engine=engine)
        for task in tasks:
            yield worker.run(task)
        return
    yield from _on_ray(tasks, spec, mode, compute.actors)


@contextmanager
def ray_cluster(num_cpus: int) -> Iterator[int]:
    """A local Ray cluster of ``num_cpus`` CPUs for the block, shut down after it; when this
    process has one already (a test's, a notebook's), that one, left running. Yields its CPUs."""
    import ray

    if ray.is_initialized():
        yield max(1, int(ray.cluster_resources().get("CPU", 1)))
        return
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR)
    try:
        yield num_cpus
    finally:
        ray.shutdown()


def _quiet_ray_data() -> Any:
    """Ray Data with no progress bars or execution chatter: the caller draws its own bar."""
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    return ray.data


def _on_ray(tasks: Sequence[PhotoTask], spec: EngineSpec, mode: Mode, actors: int) -> Iterator[PhotoResult]:
    with ray_cluster(actors) as cpus:
        data = _quiet_ray_data()
        size = max(1, min(actors, cpus, len(tasks)))
        rows = data.from_items([{"key": t.key, "path": t.path, "name": t.name} for t in tasks])
        analysed = rows.map_batches(
            PhotoWorker,
            fn_constructor_args=(spec, mode, 1),  # one onnxruntime thread per actor, one CPU each
            compute=data.ActorPoolStrategy(size=size),
            batch_size=RAY_BATCH,
            batch_format="numpy",
            num_cpus=1,
        )
        for row in analysed.iter_rows():
            yield pickle.loads(row["result"])
