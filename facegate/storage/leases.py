"""Job leases: a periodic job that every server process schedules runs on one of them at a
time, and at most once per interval across them all.

A lease is a row of ``job_leases``. Claiming it is one conditional write whose row count
decides: an INSERT when the job never ran (ON CONFLICT DO NOTHING), else an UPDATE ... WHERE
the lease is free (released, or expired because its holder died) and the interval since the
last run has passed. Both backends serialise writes to the row (PostgreSQL re-checks the WHERE
once a concurrent writer commits; SQLite has one writer at a time), so of two claimants exactly
one gets a row count of 1. The holder renews the lease while its job runs, and releases it
after; ``last_run_at`` (set when claimed) keeps the interval across processes and restarts.

Times are the claimants' clocks (UTC): processes on several machines need synchronised clocks.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from facegate.storage.models import JobLease, as_utc, utcnow

log = logging.getLogger(__name__)


def process_holder() -> str:
    """Who holds a lease: host, process and a random tag (two holders in one process differ)."""
    return f"{socket.gethostname()[:120]}:{os.getpid()}:{secrets.token_hex(4)}"


def _rowcount(result: Any) -> int:
    # An UPDATE answers a CursorResult (it has the rowcount); Session.execute is
    # typed to return the plain Result whatever the statement.
    return int(cast("CursorResult[Any]", result).rowcount)


class JobLeases:
    """Claim, renew and release named leases as one holder (one per background worker)."""

    def __init__(self, sessions: sessionmaker[Session], holder: str | None = None) -> None:
        self.sessions = sessions
        self.holder = holder or process_holder()

    def claim(self, name: str, ttl_s: float, every_s: float = 0.0, now: dt.datetime | None = None) -> bool:
        """Take the lease ``name`` for ``ttl_s`` seconds if it is free and, with ``every_s``,
        if its job last ran at least that long ago. True when this holder now has it."""
        now = now or utcnow()
        values = {"holder": self.holder, "expires_at": now + dt.timedelta(seconds=ttl_s), "last_run_at": now}
        with self.sessions.begin() as session:
            dialect = session.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            # RETURNING says whether the row was made (an INSERT's row count is -1 on psycopg here).
            created = session.execute(
                insert(JobLease).values(name=name, **values).on_conflict_do_nothing(index_elements=["name"])
                .returning(JobLease.name)
            ).first()
            if created is not None:
                return True
            conditions = [JobLease.name == name, or_(JobLease.expires_at.is_(None), JobLease.expires_at < now)]
            if every_s > 0:
                due = now - dt.timedelta(seconds=every_s)
                conditions.append(or_(JobLease.last_run_at.is_(None), JobLease.last_run_at <= due))
            taken = session.execute(
                update(JobLease).where(*conditions).values(**values).execution_options(synchronize_session=False)
            )
            return _rowcount(taken) == 1

    def renew(self, name: str, ttl_s: float, now: dt.datetime | None = None) -> bool:
        """Extend a lease this holder has; False when it no longer has it (expired and taken)."""
        expires = (now or utcnow()) + dt.timedelta(seconds=ttl_s)
        with self.sessions.begin() as session:
            result = session.execute(
                update(JobLease).where(JobLease.name == name, JobLease.holder == self.holder)
                .values(expires_at=expires).execution_options(synchronize_session=False)
            )
            return _rowcount(result) == 1

    def release(self, name: str) -> None:
        """Free a lease this holder has (its ``last_run_at`` stays: the interval still counts)."""
        with self.sessions.begin() as session:
            session.execute(
                update(JobLease).where(JobLease.name == name, JobLease.holder == self.holder)
                .values(expires_at=None).execution_options(synchronize_session=False)
            )

    @contextmanager
    def holding(self, name: str, ttl_s: float, every_s: float = 0.0) -> Iterator[bool]:
        """``with leases.holding(...) as held:`` run the job only when ``held``; the lease is
        renewed every third of ``ttl_s`` while the block runs and released after it."""
        if not self.claim(name, ttl_s, every_s):
            yield False
            return
        stop = threading.Event()

        def heartbeat() -> None:
            while not stop.wait(ttl_s / 3):
                try:
                    if not self.renew(name, ttl_s):
                        log.warning("lease %s was lost by %s while its job ran", name, self.holder)
                        return
                except Exception:  # a database hiccup: try again at the next beat
                    log.exception("renewing lease %s failed", name)

        beat = threading.Thread(target=heartbeat, name=f"lease-{name}", daemon=True)
        beat.start()
        try:
            yield True
        finally:
            stop.set()
            beat.join()
            self.release(name)

    def due_in(self, name: str, every_s: float, now: dt.datetime | None = None) -> float:
        """Seconds until the job ``name`` may run again by its interval (0 when it may now)."""
        now = now or utcnow()
        with self.sessions() as session:
            last = session.scalar(select(JobLease.last_run_at).where(JobLease.name == name))
        if last is None:
            return 0.0
        return max(0.0, (as_utc(last) + dt.timedelta(seconds=every_s) - now).total_seconds())

    def periodic(self, name: str, interval_s: float, job: Callable[[], object], ttl_s: float = 60.0) -> Callable[[], None]:
        """A tick for a background loop that runs ``job`` at most once per ``interval_s`` across
        every process sharing the database. The first try is one interval after start (as a
        one-process timer would); after a try another process won, the next is when the
        interval since that process's run ends, or a tenth of the interval later while it
        still holds the lease, so the job is at most that late when its runner dies."""
        retry_s = min(interval_s, max(0.5, interval_s / 10))
        state = {"next": time.monotonic() + interval_s}

        def tick() -> None:
            if time.monotonic() < state["next"]:
                return
            state["next"] = time.monotonic() + retry_s  # also when the database fails below
            with self.holding(name, ttl_s, every_s=interval_s) as held:
                if held:
                    state["next"] = time.monotonic() + interval_s
                    job()
                    return
            state["next"] = time.monotonic() + min(retry_s, max(0.5, self.due_in(name, interval_s)))

        tick.__name__ = name
        return tick
