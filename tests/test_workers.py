"""Several server processes on one database, as ``facegate serve`` runs them: real processes
started from the command line, on SQLite and on PostgreSQL, with real LFW photos.

A subject enrolled (or erased) through one server is found (or gone) at the very next search on
the other; a missed re-verification swept by both is recorded, alerted and delivered once; the
automatic drift response runs once per interval across both; a video job taken by one is
followed on the other; ``--workers 2`` starts two processes that both answer and stop cleanly.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import httpx
import pytest
from sqlalchemy import create_engine, select

from facegate.client import FaceGateAPIError, FaceGateClient
from facegate.storage.db import normalise_url
from facegate.storage.models import JobLease, as_utc
from tests.api_fixtures import backend, fresh_database_url, pg_server  # noqa: F401 - fixtures are used by name
from tests.test_workflows import STUDENTS, Receiver, lfw_bytes, lfw_path

BACKGROUND_INTERVAL_S = 2.0  # the automatic response's interval in these servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``python -m facegate.cli serve`` in a subprocess, its output in a file."""

    def __init__(self, env: dict[str, str], cwd: Path, name: str, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"{name}.log"
        args = [sys.executable, "-m", "facegate.cli", "serve", "--port", str(self.port), "--threads", "4"]
        if workers > 1:
            args += ["--workers", str(workers)]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(args, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        self.wait_ready()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited ({self.process.returncode}):\n{self.output()}")
            try:
                if httpx.get(self.url + "/api/v1/health", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the server did not answer within {timeout} s:\n{self.output()}")

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM, as a service manager stops it; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


def server_env(database_url: str, data_dir: Path) -> dict[str, str]:
    """This environment without any FACEGATE_ variable, plus the servers' settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEGATE_")}
    env.update({
        "FACEGATE_DATABASE_URL": database_url,
        "FACEGATE_DATA_DIR": str(data_dir),
        "FACEGATE_ORT_INTRA_THREADS": "1",
        "FACEGATE_ORT_INTER_THREADS": "1",
        "FACEGATE_OUTBOUND_ALLOWED_HOSTS": "127.0.0.1",  # the webhook receiver of these tests
        "FACEGATE_AUTO_RESPOND_INTERVAL_S": str(BACKGROUND_INTERVAL_S),
    })
    return env


@pytest.fixture(scope="module")
def servers(backend, request, tmp_path_factory):
    """Two servers started one after the other (the second finds the schema, keys and admin
    made by the first) on one database and data folder; their clients with the admin key."""
    from facegate.config import Settings
    from facegate.gallery.service import GalleryService
    from facegate.security import SYSTEM

    lfw_path(*STUDENTS["S001"][:2])  # skip, saying why, without the shared data
    tmp = tmp_path_factory.mktemp(f"workers_{backend}")
    url = fresh_database_url(backend, tmp, request, prefix="facegate_workers")
    service = GalleryService(Settings(data_dir=tmp / "data", database_url=url), migrate=True)
    admin = service.create_api_key("admin", ["admin"], principal=SYSTEM).secret
    service.close()
    env = server_env(url, tmp / "data")
    started: list[Server] = []
    try:
        for name in ("one", "two"):
            started.append(Server(env, tmp, name))
        clients = [FaceGateClient(s.url, api_key=admin) for s in started]
        yield {"servers": started, "clients": clients, "url": url, "tmp": tmp}
        for c in clients:
            c.close()
    finally:
        for s in started:
            s.stop()


def identified(result) -> str | None:
    face = result.main_face()
    return face.subject if face is not None and face.decision == "match" else None


def test_a_subject_enrolled_through_one_server_is_identified_through_the_other_at_once(servers):
    one, two = servers["clients"]
    one.create_gallery("crowd")
    for sid in ("S001", "S002", "S003"):
        name, enrolled, _ = STUDENTS[sid]
        assert one.enroll("crowd", sid, [lfw_bytes(name, enrolled)]).accepted == 1
    # The second server has searched this gallery (its caches are warm) before the next write.
    assert identified(two.identify("crowd", lfw_bytes("Roger_Federer", 7))) == "S001"
    name, enrolled, probe = STUDENTS["S004"]
    assert identified(two.identify("crowd", lfw_bytes(name, probe))) is None
    assert one.enroll("crowd", "S004", [lfw_bytes(name, enrolled)]).accepted == 1
    assert identified(two.identify("crowd", lfw_bytes(name, probe))) == "S004"  # the very next request
    # An erasure through the second is gone at the first's next search.
    assert identified(one.identify("crowd", lfw_bytes("Naoto_Kan", 3))) == "S002"
    two.delete_subject("crowd", "S002")
    assert identified(one.identify("crowd", lfw_bytes("Naoto_Kan", 3))) is None


def test_a_missed_reverification_swept_by_both_servers_is_recorded_and_delivered_once(servers):
    one, two = servers["clients"]
    receiver = Receiver()
    try:
        one.create_gallery("exam", settings={"alert_webhook_url": receiver.url, "alert_webhook_secret": "shared"})
        now = dt.datetime.now(dt.timezone.utc)
        one.create_exam_session("exam", {"code": "ONLINE", "course": "C", "online": True,
                                         "starts_at": (now - dt.timedelta(hours=1)).isoformat(),
                                         "ends_at": (now + dt.timedelta(hours=1)).isoformat()})
        students = [f"S{i:03d}" for i in range(20)]
        two.request_reverification("exam", "ONLINE", students, window_s=1)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len({r["headers"]["X-FaceGate-Delivery"] for r in receiver.requests}) < 20:
            time.sleep(0.3)
        time.sleep(3 * BACKGROUND_INTERVAL_S)  # both servers kept sweeping and delivering meanwhile
        alerts = one.alerts("exam", kind="reverify_missed")
        rows = {r["student_id"]: r for r in two.attendance_rows("exam", "ONLINE")}
        deliveries = Counter(int(r["headers"]["X-FaceGate-Delivery"]) for r in receiver.requests)
    finally:
        receiver.close()
    assert sorted(a.subject or "" for a in alerts) == students
    assert all(rows[s]["reverify_missed"] == 1 for s in students), rows
    assert sorted(deliveries) == sorted(a.id for a in alerts) and set(deliveries.values()) == {1}, deliveries
    assert {a.delivery_status for a in one.alerts("exam")} == {"delivered"}


def test_the_drift_response_runs_once_per_interval_across_both_servers(servers):
    """Each run claims the ``auto_respond`` lease and stamps ``last_run_at``; sampled every
    0.1 s for five intervals, the runs are an interval apart, not two per interval."""
    engine = create_engine(normalise_url(servers["url"]))
    runs: list[dt.datetime] = []
    try:
        end = time.monotonic() + 5 * BACKGROUND_INTERVAL_S
        while time.monotonic() < end:
            with engine.connect() as connection:
                last = connection.scalar(select(JobLease.last_run_at).where(JobLease.name == "auto_respond"))
            if last is not None and (not runs or as_utc(last) != runs[-1]):
                runs.append(as_utc(last))
            time.sleep(0.1)
    finally:
        engine.dispose()
    gaps = [(b - a).total_seconds() for a, b in zip(runs, runs[1:])]
    print("automatic response runs, seconds apart:", [round(g, 2) for g in gaps])
    assert len(runs) >= 3, runs
    assert min(gaps) >= BACKGROUND_INTERVAL_S, gaps


def test_a_video_job_taken_by_one_server_is_followed_on_the_other(servers):
    one, two = servers["clients"]
    name, enrolled, probe = STUDENTS["S005"]
    one.create_gallery("door")
    assert one.enroll("door", "S005", [lfw_bytes(name, enrolled)]).accepted == 1
    frame = cv2.imread(str(lfw_path(name, probe)))
    clip = servers["tmp"] / "arafat.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (frame.shape[1], frame.shape[0]))
    for _ in range(10):
        writer.write(frame)
    writer.release()
    job = one.submit_video_job("door", clip.read_bytes())
    done = two.wait_video_job(job["id"], timeout=120)
    assert done["state"] == "done", done
    assert done["frames"] == 10 and done["report"]["identified"] == {"S005": 1}
    with pytest.raises(FaceGateAPIError) as missing:
        two.video_job("0123456789abcdef")
    assert missing.value.status == 404


# -- facegate serve --workers 2 -----------------------------------------------------------------
def test_serve_with_two_workers_answers_from_both_and_stops_cleanly(tmp_path):
    psutil = pytest.importorskip("psutil")
    env = server_env(f"sqlite:///{tmp_path / 'workers.db'}", tmp_path / "data")
    server = Server(env, tmp_path, "workers", workers=2)
    workers: list = []
    try:
        parent = psutil.Process(server.process.pid)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(workers) < 2:  # each worker loads its app before serving
            workers = [p for p in parent.children() if "spawn_main" in " ".join(p.cmdline())]
            time.sleep(0.2)
        assert len(workers) == 2, parent.children()
        answered: set[int] = set()
        clients = []
        for _ in range(200):  # new connections, each accepted by whichever worker is first
            client = httpx.Client(base_url=server.url, timeout=10)
            clients.append(client)
            assert client.get("/api/v1/health").status_code == 200
            answered |= {w.pid for w in workers if any(c.status == psutil.CONN_ESTABLISHED and c.laddr.port == server.port
                                                       for c in w.net_connections("tcp"))}
            if len(answered) == 2:
                break
            time.sleep(0.02)
        for client in clients:
            client.close()
        assert answered == {w.pid for w in workers}
        text = server.output()
        assert "First start: an admin API key was created" in text and text.count("First start: an admin") == 1
        assert "PostgreSQL (FACEGATE_DATABASE_URL) is the backend for several workers" in " ".join(text.split())
        assert (tmp_path / "data" / "secret_key").exists()  # made once by the parent, not raced by the workers
    finally:
        status = server.stop()
    assert status == 0, server.output()
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
    assert server.output().count("Application shutdown complete") == 2
