"""Fixtures for the REST API tests: a real uvicorn server on localhost in front of a
GalleryService on SQLite or on PostgreSQL + pgvector (a real server started by pgserver).

Import the fixtures into a test module (``from tests.api_fixtures import ...``); the
``backend`` fixture is module scoped and parametrised, so a module that uses it runs once
per database.
"""

from __future__ import annotations

import io
import shutil
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from facegate.modelops.registry import RegistryCalibrations
from facegate.security import SYSTEM

BACKENDS = ["sqlite", "postgresql"]
UPLOAD_LIMIT = 2 * 1024 * 1024  # small on purpose: the 413 test sends 3 MB


# -- databases ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL (with pgvector) for the session, stopped and deleted at the end.

    Its data folder is a plain ``mkdtemp`` under /tmp, not pytest's tmp_path: run as root,
    pgserver runs PostgreSQL as its own user and opens the folder's parents to it, and any
    other pytest session starting meanwhile closes /tmp/pytest-of-root again (mode 0700),
    which makes initdb or the server fail at random.
    """
    pgserver = pytest.importorskip("pgserver")
    pgdata = Path(tempfile.mkdtemp(prefix="facegate-pg-"))
    try:
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
        try:
            yield server
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(pgdata, ignore_errors=True)


def create_pg_database(server, prefix: str = "facegate") -> str:
    """CREATE DATABASE a fresh, empty one on the pgserver; returns its URL."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server.get_uri(), autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return server.get_uri(name)


def fresh_database_url(backend: str, tmp_dir: Path, request: pytest.FixtureRequest, prefix: str = "facegate") -> str:
    """A new empty database of the backend: a new SQLite file, or a new PostgreSQL database."""
    if backend == "sqlite":
        return f"sqlite:///{(tmp_dir / f'{prefix}_{uuid.uuid4().hex[:8]}.db').resolve()}"
    return create_pg_database(request.getfixturevalue("pg_server"), prefix)


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request) -> str:
    return request.param


# -- the live server ------------------------------------------------------------------------
@dataclass
class LiveAPI:
    """A running server, the service behind it, and the admin key's secret."""

    backend: str
    base_url: str
    database_url: str
    service: object
    admin_secret: str
    _clients: list = field(default_factory=list)

    def client(self, api_key: str | None = "admin", timeout: float = 120.0):
        from facegate.client import FaceGateClient

        secret = self.admin_secret if api_key == "admin" else api_key
        fg = FaceGateClient(self.base_url, api_key=secret, timeout=timeout)
        self._clients.append(fg)
        return fg

    def raw(self, api_key: str | None = "admin") -> httpx.Client:
        """A plain httpx client on /api/v1, for what the typed client hides (headers, status)."""
        secret = self.admin_secret if api_key == "admin" else api_key
        client = httpx.Client(
            base_url=self.base_url + "/api/v1", headers={"X-API-Key": secret} if secret else {}, timeout=120.0
        )
        self._clients.append(client)
        return client

    def close_clients(self) -> None:
        for c in self._clients:
            c.close()


class ServerThread:
    """uvicorn.Server.run() in a daemon thread, on a socket bound before it starts."""

    def __init__(self, app, lifespan: str = "off") -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan=lifespan)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, name=f"uvicorn-{self.port}", daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.thread.is_alive():
                raise RuntimeError("uvicorn exited during start-up")
            if self.server.started:
                try:
                    if httpx.get(self.base_url + "/api/v1/health", timeout=2.0).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"uvicorn did not answer on {self.base_url} within {timeout} s")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


@pytest.fixture(scope="module")
def live_api(backend, request, tmp_path_factory):
    """The server for one backend, with a fresh database and an admin key."""
    from facegate.api import create_app
    from facegate.config import Settings
    from facegate.gallery.service import GalleryService

    tmp = tmp_path_factory.mktemp(f"api_{backend}")
    url = fresh_database_url(backend, tmp, request, prefix="facegate_api")
    settings = Settings(data_dir=tmp / "data", database_url=url, max_upload_bytes=UPLOAD_LIMIT)
    service = GalleryService(settings, migrate=True, calibrations=RegistryCalibrations(settings))  # as the server
    admin = service.create_api_key("admin", ["admin"], principal=SYSTEM)
    runner = ServerThread(create_app(service))
    runner.start()
    api = LiveAPI(backend=backend, base_url=runner.base_url, database_url=url, service=service, admin_secret=admin.secret)
    try:
        yield api
    finally:
        api.close_clients()
        runner.stop()
        service.close()


@pytest.fixture(scope="module")
def fg(live_api):
    """The typed client with the admin key."""
    return live_api.client()


# -- photos ---------------------------------------------------------------------------------
def blank_png(width: int = 320, height: int = 240) -> bytes:
    """A valid PNG with no face in it (a flat grey card)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (128, 128, 128)).save(buffer, format="PNG")
    return buffer.getvalue()


def corrupt_jpeg(good: bytes) -> bytes:
    """A JPEG cut short after its header: a known format, damaged data."""
    return good[: max(len(good) // 8, 200)]
