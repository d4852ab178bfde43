"""Shared plumbing of the service benchmarks: a backend, a real HTTP server, timings.

Not a benchmark itself; ``bench/service.py`` and ``bench/lfw_gallery.py`` import it (a script's
own folder is first on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from facegate.modelops.registry import RegistryCalibrations
from facegate.security import SYSTEM

REPO = Path(__file__).resolve().parents[1]
DEFAULT_LFW = REPO.parent / "shared" / "datasets" / "lfw"
DEFAULT_NPZ = REPO / "out" / "lfw_all_arcface.npz"


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        return {"n": 0, "p50": float("nan"), "p95": float("nan"), "mean": float("nan")}
    return {
        "n": int(a.size),
        "p50": float(np.percentile(a, 50)),
        "p95": float(np.percentile(a, 95)),
        "mean": float(a.mean()),
    }


def fmt_p(stats: dict | None) -> str:
    if not stats or not stats.get("n"):
        return "-"
    return f"{stats['p50']:.1f} / {stats['p95']:.1f}"


def load_warning() -> str:
    load1 = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    text = f"{cores} cores, load average {load1:.2f}"
    if load1 > cores * 0.75:
        text += "  (WARNING: the machine is busy; timings are inflated and noisy)"
    return text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def http_server(service) -> Iterator[str]:
    """A real uvicorn server for ``create_app(service)`` on 127.0.0.1, in a thread; yields its URL."""
    import httpx
    import uvicorn

    from facegate.api.app import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/api/v1/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the uvicorn server did not start")
        time.sleep(0.05)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@dataclass
class Backends:
    """Services on SQLite files or on databases of one pgserver PostgreSQL, under ``workdir``."""

    workdir: Path
    _pg: object | None = field(default=None, init=False)
    _services: list = field(default_factory=list, init=False)

    def postgres(self):
        if self._pg is None:
            import pgserver

            self._pg = pgserver.get_server(self.workdir / "pgdata", cleanup_mode="stop")
        return self._pg

    def service(self, backend: str, name: str, **settings):
        """A fresh GalleryService named ``name`` (a new SQLite file or a new PostgreSQL database)."""
        from facegate.config import Settings
        from facegate.gallery.service import GalleryService

        data_dir = self.workdir / f"{backend}_{name}"
        data_dir.mkdir(parents=True, exist_ok=True)
        if backend == "sqlite":
            url = ""
        elif backend == "postgresql":
            server = self.postgres()
            db = f"fg_{name}".lower()
            server.psql(f"DROP DATABASE IF EXISTS {db};")
            server.psql(f"CREATE DATABASE {db};")
            url = server.get_uri(db)
        else:
            raise ValueError(f"unknown backend {backend!r}: sqlite or postgresql")
        # The benchmarks time the usearch build inside the first search: build it there.
        settings.setdefault("ann_build_in_background", False)
        configured = Settings(data_dir=data_dir, database_url=url, **settings)
        service = GalleryService(configured, migrate=True, calibrations=RegistryCalibrations(configured))
        self._services.append(service)
        return service

    def close(self) -> None:
        for service in self._services:
            with contextlib.suppress(Exception):
                service.close()
        self._services.clear()
        if self._pg is not None:
            with contextlib.suppress(Exception):
                self._pg.cleanup()
            self._pg = None


def main_face(faces: list, height: int, width: int) -> int | None:
    """The portrait's subject among the faces of an identify response (same rule as the engine:
    large and near the centre)."""
    best, best_value = None, -np.inf
    for i, face in enumerate(faces):
        x0, y0, x1, y1 = face.face.box[:4]
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        value = (x1 - x0) * (y1 - y0) - 2.0 * ((cx - width / 2) ** 2 + (cy - height / 2) ** 2)
        if value > best_value:
            best, best_value = i, value
    return best


def bulk_import(service, gallery: str, rows: list, chunk: int = 20_000, rebuild_pg_index: bool = True) -> dict:
    """``service.import_templates`` in chunks; returns the seconds spent.

    On PostgreSQL the pgvector HNSW index is otherwise updated row by row during the insert
    (minutes for 100k templates on 2 cores); with ``rebuild_pg_index`` it is dropped first and
    recreated afterwards from its own definition (``pg_indexes.indexdef``, so the same index
    the migration makes, same parameters), as a bulk load would be done in production. Then
    ANALYZE, which autovacuum would run within a minute: before it the planner takes the
    fresh table for empty and searches it exactly instead of with the HNSW index.
    """
    timings: dict[str, float] = {}
    pg = service.ctx.db.dialect.name == "postgresql"
    indexdefs: list[tuple[str, str]] = []
    if pg and rebuild_pg_index:
        with service.ctx.db.begin() as connection:
            indexdefs = list(
                connection.exec_driver_sql(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'face_templates' "
                    "AND position('USING hnsw' in indexdef) > 0"
                ).all()
            )
            for name, _ in indexdefs:
                connection.exec_driver_sql(f'DROP INDEX "{name}"')
    started = time.perf_counter()
    for start in range(0, len(rows), chunk):
        service.import_templates(gallery, rows[start : start + chunk], principal=SYSTEM)
    timings["import_s"] = time.perf_counter() - started
    if pg:
        started = time.perf_counter()
        with service.ctx.db.begin() as connection:
            connection.exec_driver_sql("SET maintenance_work_mem = '1GB'")
            for _, definition in indexdefs:
                connection.exec_driver_sql(definition)
        timings["pg_index_build_s"] = time.perf_counter() - started
        with service.ctx.db.begin() as connection:
            connection.exec_driver_sql("ANALYZE face_templates")
    return timings
