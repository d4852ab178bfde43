"""Background jobs that several server processes all run act once: job leases (one holder, expiry,
the interval kept across holders, a race of threads), and the row claims of the missed
re-verification sweep and of webhook delivery, each run by two services on one database (two
engines, as two worker processes would have), on SQLite and on PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading
import time
import traceback
from collections import Counter

import pytest
from sqlalchemy import select, text

from facegate.config import Settings
from facegate.errors import ConflictError
from facegate.gallery.service import GalleryService
from facegate.security import SYSTEM
from facegate.storage.leases import JobLeases
from facegate.storage.models import Alert, AttendanceEvent, ReverifyChallenge, utcnow
from facegate.workflows import Workflows
from facegate.workflows.exam_schemas import ExamSessionIn
from tests.api_fixtures import backend, fresh_database_url, pg_server  # noqa: F401 - fixtures are used by name
from tests.test_workflows import Receiver


@pytest.fixture
def two_services(backend, request, tmp_path):
    """Two services on one fresh database, each with its own engine and connection pool."""
    url = fresh_database_url(backend, tmp_path, request, prefix="facegate_claims")
    settings = Settings(data_dir=tmp_path / "data", database_url=url, outbound_allowed_hosts="127.0.0.1",
                        ort_intra_threads=1, ort_inter_threads=1)
    first = GalleryService(settings, migrate=True)
    second = GalleryService(settings)
    for service in (first, second):
        # A new SQLite file is switched to WAL by the first connection of each engine
        # (facegate/storage/db.py); that switch must not be part of the race under test.
        with service.ctx.db.connect() as connection:
            connection.execute(text("SELECT 1"))
    yield first, second
    first.close()
    second.close()


def race(*jobs, rounds: int = 1) -> list:
    """Run the jobs at once in threads (a barrier before each round); their results in order."""
    barrier = threading.Barrier(len(jobs))
    results: list = [[] for _ in jobs]
    errors: list[str] = []

    def run(i: int) -> None:
        try:
            for _ in range(rounds):
                barrier.wait()
                results[i].append(jobs[i]())
        except BaseException:  # noqa: BLE001 - reported by the test below, with where it came from
            errors.append(traceback.format_exc())
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, "\n".join(errors)
    return results


# -- leases -------------------------------------------------------------------------------------
def test_a_lease_has_one_holder_until_released_or_expired(two_services):
    a, b = (JobLeases(s.ctx.sessions, holder=h) for s, h in zip(two_services, ("worker-a", "worker-b")))
    now = utcnow()
    assert a.claim("job", ttl_s=30, now=now)
    assert not b.claim("job", ttl_s=30, now=now + dt.timedelta(seconds=1))
    assert not a.claim("job", ttl_s=30, now=now + dt.timedelta(seconds=1))  # held, even by the holder itself
    # The holder died: once the lease expires another takes it, and the old holder cannot renew.
    later = now + dt.timedelta(seconds=31)
    assert b.claim("job", ttl_s=30, now=later)
    assert not a.renew("job", ttl_s=30, now=later)
    a.release("job")  # not a's any more: nothing happens
    assert not a.claim("job", ttl_s=30, now=later + dt.timedelta(seconds=1))
    b.release("job")
    assert a.claim("job", ttl_s=30, now=later + dt.timedelta(seconds=1))


def test_the_interval_holds_across_holders(two_services):
    a, b = (JobLeases(s.ctx.sessions) for s in two_services)
    now = utcnow()
    assert a.claim("hourly", ttl_s=60, every_s=3600, now=now)
    a.release("hourly")
    assert not b.claim("hourly", ttl_s=60, every_s=3600, now=now + dt.timedelta(minutes=59))
    assert b.due_in("hourly", 3600, now=now + dt.timedelta(minutes=59)) == pytest.approx(60.0)
    assert b.claim("hourly", ttl_s=60, every_s=3600, now=now + dt.timedelta(minutes=60))


def test_of_many_threads_claiming_at_once_exactly_one_wins(two_services):
    holders = [JobLeases(two_services[i % 2].ctx.sessions) for i in range(8)]
    for round_ in range(6):  # a new name each round: the INSERT race, then the UPDATE race on an expired lease
        name = f"race-{round_ // 2}"
        now = utcnow() + dt.timedelta(seconds=120 * (round_ % 2))
        won = race(*[lambda h=h: h.claim(name, ttl_s=60, now=now) for h in holders])
        assert sum(r[0] for r in won) == 1, (round_, won)


def test_a_held_lease_is_renewed_while_its_job_runs(two_services):
    a, b = (JobLeases(s.ctx.sessions) for s in two_services)
    attempts = []
    with a.holding("long", ttl_s=0.6) as held:
        assert held
        deadline = time.monotonic() + 1.8  # three lifetimes of the lease
        while time.monotonic() < deadline:
            attempts.append(b.claim("long", ttl_s=0.6))
            time.sleep(0.1)
    assert len(attempts) >= 10 and not any(attempts)
    assert b.claim("long", ttl_s=0.6)  # released at the end of the block


def test_a_periodic_job_runs_once_per_interval_across_two_workers(two_services):
    """Two loops ticking every 50 ms for 3.3 s, a job every 0.6 s: about five runs in all, not ten."""
    runs: list[tuple[str, float]] = []
    ticks = []
    for name, service in zip(("a", "b"), two_services):
        leases = JobLeases(service.ctx.sessions, holder=name)
        ticks.append(leases.periodic("every-0.6s", 0.6, lambda n=name: runs.append((n, time.time()))))

    def loop(tick) -> None:
        end = time.monotonic() + 3.3
        while time.monotonic() < end:
            tick()
            time.sleep(0.05)

    race(*[lambda t=t: loop(t) for t in ticks])
    starts = [t for _, t in runs]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    print("runs:", [(n, round(t - starts[0], 2)) for n, t in runs])
    assert 4 <= len(runs) <= 5, runs
    assert min(gaps) >= 0.55, gaps


# -- the missed re-verification sweep -----------------------------------------------------------
def make_overdue_challenges(service: GalleryService, students: int) -> list[str]:
    """An online exam whose ``students`` re-verification challenges closed a minute ago."""
    service.create_gallery("exam", principal=SYSTEM)
    wf = Workflows(service)
    now = utcnow()
    wf.exams.create_session("exam", ExamSessionIn(code="E1", course="C", online=True, starts_at=now - dt.timedelta(hours=1),
                                                   ends_at=now + dt.timedelta(hours=1)), principal=SYSTEM)
    ids = [f"S{i:03d}" for i in range(students)]
    wf.exams.request_reverification("exam", "E1", ids, window_s=30, now=now - dt.timedelta(seconds=90), principal=SYSTEM)
    return ids


def test_two_workers_sweeping_at_once_record_each_missed_challenge_once(two_services):
    students = make_overdue_challenges(two_services[0], 30)
    workers = [Workflows(s) for s in two_services]
    recorded = race(*[w.exams.sweep_missed for w in workers], rounds=3)
    print("recorded per worker and round:", recorded)
    assert sum(map(sum, recorded)) == len(students)
    with two_services[0].ctx.sessions() as session:
        events = list(session.scalars(select(AttendanceEvent).where(AttendanceEvent.status == "missed")))
        alerts = list(session.scalars(select(Alert).where(Alert.kind == "reverify_missed")))
        challenges = list(session.scalars(select(ReverifyChallenge)))
    assert sorted(e.student_id for e in events) == students
    assert sorted(str(a.subject_external_id) for a in alerts) == students
    by_id = {e.id: e for e in events}
    for c in challenges:
        assert c.status == "missed" and by_id[c.attendance_id].details["challenge_id"] == c.id


def test_an_answer_settled_meanwhile_by_the_sweep_is_refused_not_recorded_twice(two_services):
    """The student's answer passed its pre-check while the challenge was open; another worker's
    sweep marked it missed before the answer was recorded: the answer gets 409."""
    first, second = two_services
    make_overdue_challenges(first, 1)
    answering = Workflows(first).exams
    with first.ctx.sessions() as session:
        challenge = session.scalars(select(ReverifyChallenge)).one()
    inside_window = challenge.deadline - dt.timedelta(seconds=1)
    pre = answering._precheck("exam", "E1", "S000", "reverify", inside_window, SYSTEM)
    assert Workflows(second).exams.sweep_missed() == 1
    with pytest.raises(ConflictError, match="settled meanwhile"):
        answering._record(pre, "S000", "reverify", "remote", None, inside_window)
    with first.ctx.sessions() as session:
        statuses = sorted(session.scalars(select(AttendanceEvent.status)))
    assert statuses == ["missed"]


# -- webhook delivery ---------------------------------------------------------------------------
def test_two_workers_delivering_at_once_post_each_alert_once(two_services):
    receiver = Receiver()
    try:
        first = two_services[0]
        first.create_gallery("hooked", principal=SYSTEM)
        first.update_gallery_settings("hooked", {"alert_webhook_url": receiver.url, "alert_webhook_secret": "s"},
                                      principal=SYSTEM)
        wf = Workflows(first)
        with first.ctx.sessions.begin() as session:
            from facegate.gallery.context import find_gallery

            g = find_gallery(session, "hooked", SYSTEM)
            ids = [wf.alerts.raise_alert(session, g, "test", f"alert {i}").id for i in range(25)]
        workers = [Workflows(s) for s in two_services]
        sent = race(*[lambda w=w: len(w.alerts.deliver_due()) for w in workers], rounds=3)
        print("delivered per worker and round:", sent)
        deliveries = Counter(int(r["headers"]["X-FaceGate-Delivery"]) for r in receiver.requests)
        assert sorted(deliveries) == sorted(ids) and set(deliveries.values()) == {1}
        with first.ctx.sessions() as session:
            assert set(session.scalars(select(Alert.delivery_status))) == {"delivered"}
    finally:
        receiver.close()
