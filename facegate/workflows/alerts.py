"""Alerts: stored, listed, acknowledged, and delivered to the gallery's webhook.

Delivery is at-least-once with an idempotency key: each alert is POSTed as JSON with
``X-FaceGate-Delivery: <alert id>`` and ``X-FaceGate-Signature: t=<unix time>,v1=<hex>``,
where ``v1`` is HMAC-SHA256 of ``"<t>.<body>"`` under the gallery's shared secret (the
Stripe scheme: the timestamp in the signed text stops replays). A failed POST is retried
with exponential backoff; after ``MAX_ATTEMPTS`` the alert is marked ``failed`` and stays
listed. Attempts are claimed by a conditional UPDATE, so two server processes never send
the same attempt twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import httpx
from pydantic import BaseModel
from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from facegate.errors import InvalidRequestError
from facegate.gallery.context import find_gallery
from facegate.gallery.paging import newest_first, page_of
from facegate.gallery.schemas import Page
from facegate.gallery.service import GalleryService
from facegate.security import Principal
from facegate.security.outbound import check_outbound_url
from facegate.storage.models import Alert, Gallery, utcnow

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
BACKOFF_FIRST_S = 1.0
BACKOFF_MAX_S = 300.0
CLAIM_LEASE_S = 30.0
SEVERITIES = ("info", "warning", "critical")


class AlertOut(BaseModel):
    id: int
    kind: str
    severity: str
    subject: str | None
    session_id: int | None
    decision_id: int | None
    message: str
    details: dict[str, Any]
    created_at: dt.datetime
    acknowledged_at: dt.datetime | None
    acknowledged_by: str | None
    delivery_status: str
    delivery_attempts: int
    delivered_at: dt.datetime | None
    last_error: str


def alert_out(a: Alert) -> AlertOut:
    return AlertOut(
        id=a.id,
        kind=a.kind,
        severity=a.severity,
        subject=a.subject_external_id,
        session_id=a.session_id,
        decision_id=a.decision_id,
        message=a.message,
        details=a.details or {},
        created_at=a.created_at,
        acknowledged_at=a.acknowledged_at,
        acknowledged_by=a.acknowledged_by,
        delivery_status=a.delivery_status,
        delivery_attempts=a.delivery_attempts,
        delivered_at=a.delivered_at,
        last_error=a.last_error,
    )


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-FaceGate-Signature`` value for a body sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: str, header: str, body: bytes, tolerance_s: float = 300.0, now: float | None = None) -> bool:
    """What a receiver runs: the signature matches and is recent (constant-time compare)."""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((now or time.time()) - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), header)


def backoff_s(attempts: int) -> float:
    """Seconds before the next try after ``attempts`` failed ones: 1, 2, 4, ... capped."""
    return min(BACKOFF_FIRST_S * 2 ** max(attempts - 1, 0), BACKOFF_MAX_S)


@dataclass
class DeliveryResult:
    alert_id: int
    ok: bool
    status: str
    error: str = ""


class AlertCenter:
    """Raise, list, acknowledge and deliver alerts of every workflow."""

    def __init__(self, gallery_service: GalleryService, http: httpx.Client | None = None) -> None:
        self.gs = gallery_service
        self.http = http or httpx.Client(timeout=5.0)

    # -- raising ----------------------------------------------------------------------------
    def raise_alert(
        self,
        session: Session,
        gallery: Gallery,
        kind: str,
        message: str,
        severity: str = "warning",
        subject: str | None = None,
        session_id: int | None = None,
        decision_id: int | None = None,
        details: dict | None = None,
    ) -> Alert:
        """Add an alert inside the caller's transaction, queued for the webhook if one is set."""
        assert severity in SEVERITIES, severity
        webhook = bool(self.gs.gallery_settings(gallery).alert_webhook_url)
        alert = Alert(
            gallery_id=gallery.id,
            kind=kind,
            severity=severity,
            subject_external_id=subject,
            session_id=session_id,
            decision_id=decision_id,
            message=message,
            details=details or {},
            delivery_status="pending" if webhook else "none",
            delivery_attempts=0,
            next_attempt_at=utcnow() if webhook else None,
            last_error="",
        )
        session.add(alert)
        session.flush()
        return alert

    # -- reading ----------------------------------------------------------------------------
    def list_alerts(
        self,
        gallery: str,
        cursor: str | None = None,
        limit: int = 50,
        kind: str | None = None,
        unacknowledged: bool = False,
        subject: str | None = None,
        session_id: int | None = None,
        *, principal: Principal,
    ) -> Page:
        limit = max(1, min(limit, 500))
        with self.gs.ctx.sessions() as session:
            g = find_gallery(session, gallery, principal)
            principal.require("proctor", g)
            query = select(Alert).where(Alert.gallery_id == g.id)
            if kind:
                query = query.where(Alert.kind == kind)
            if unacknowledged:
                query = query.where(Alert.acknowledged_at.is_(None))
            if subject:
                query = query.where(Alert.subject_external_id == subject)
            if session_id is not None:
                query = query.where(Alert.session_id == session_id)
            rows = newest_first(session, query, Alert.id, cursor, limit)
            return page_of(rows, limit, [alert_out(a) for a in rows[:limit]])

    def acknowledge(self, gallery: str, alert_id: int, by: str, *, principal: Principal) -> AlertOut:
        with self.gs.ctx.sessions.begin() as session:
            g = find_gallery(session, gallery, principal)
            principal.require("proctor", g)
            alert = session.get(Alert, alert_id)
            if alert is None or alert.gallery_id != g.id:
                from facegate.errors import NotFoundError

                raise NotFoundError(f"alert {alert_id} not found in gallery {gallery!r}")
            if alert.acknowledged_at is None:
                alert.acknowledged_at = utcnow()
                alert.acknowledged_by = by or "admin"
            return alert_out(alert)

    # -- delivery ---------------------------------------------------------------------------
    def _claim_due(self, now: dt.datetime, limit: int = 20) -> list[int]:
        """Ids of pending alerts whose next attempt is due, each claimed for ``CLAIM_LEASE_S``.

        Every server process runs this. The claim is an UPDATE conditional on the attempt time
        this process read: a second process's UPDATE of the same alert waits for the first to
        commit (PostgreSQL's row lock, SQLite's one writer), then matches no row because the
        time moved. The rows are claimed in one total order (due time, then id) so two
        processes claiming the same batch wait on each other instead of deadlocking."""
        claimed: list[int] = []
        with self.gs.ctx.sessions.begin() as session:
            due = session.execute(
                select(Alert.id, Alert.next_attempt_at)
                .where(Alert.delivery_status == "pending", Alert.next_attempt_at <= now)
                .order_by(Alert.next_attempt_at, Alert.id)
                .limit(limit)
            ).all()
            for alert_id, seen in due:
                # An UPDATE answers a CursorResult (it has the rowcount); Session.execute is
                # typed to return the plain Result whatever the statement.
                result = cast("CursorResult[Any]", session.execute(
                    update(Alert)
                    .where(Alert.id == alert_id, Alert.next_attempt_at == seen, Alert.delivery_status == "pending")
                    .values(next_attempt_at=now + dt.timedelta(seconds=CLAIM_LEASE_S))
                ))
                if result.rowcount == 1:
                    claimed.append(alert_id)
        return claimed

    @staticmethod
    def payload(alert: Alert, gallery: Gallery) -> dict[str, Any]:
        out = alert_out(alert).model_dump(
            mode="json", exclude={"delivery_status", "delivery_attempts", "delivered_at", "last_error"}
        )
        return {"type": "facegate.alert", "gallery": gallery.name, "alert": out}

    def _deliver_one(self, alert_id: int) -> DeliveryResult:
        with self.gs.ctx.sessions() as session:
            alert = session.get(Alert, alert_id)
            gallery = session.get(Gallery, alert.gallery_id) if alert else None
            if alert is None or gallery is None:
                return DeliveryResult(alert_id, False, "gone")
            policy = self.gs.gallery_settings(gallery)
            body = json.dumps(self.payload(alert, gallery), separators=(",", ":"), sort_keys=True).encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "FaceGate-Webhook/1",
            "X-FaceGate-Delivery": str(alert_id),
            "X-FaceGate-Event": "alert",
        }
        if policy.alert_webhook_secret:
            headers["X-FaceGate-Signature"] = sign(policy.alert_webhook_secret, timestamp, body)
        error = ""
        try:
            # Checked again at send time: the host may resolve elsewhere now than when it was set.
            check_outbound_url(policy.alert_webhook_url, self.gs.settings.outbound_allowed_hosts.split(","))
            response = self.http.post(policy.alert_webhook_url, content=body, headers=headers, follow_redirects=False)
            ok = 200 <= response.status_code < 300
            if not ok:
                error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            ok, error = False, f"{type(exc).__name__}: {exc}"
        except InvalidRequestError as exc:
            ok, error = False, f"refused: {exc.message}"
        with self.gs.ctx.sessions.begin() as session:
            alert = session.get(Alert, alert_id)
            if alert is None:
                return DeliveryResult(alert_id, ok, "gone", error)
            alert.delivery_attempts += 1
            if ok:
                alert.delivery_status, alert.delivered_at, alert.next_attempt_at = "delivered", utcnow(), None
                alert.last_error = ""
            elif alert.delivery_attempts >= MAX_ATTEMPTS:
                alert.delivery_status, alert.next_attempt_at, alert.last_error = "failed", None, error
            else:
                alert.next_attempt_at = utcnow() + dt.timedelta(seconds=backoff_s(alert.delivery_attempts))
                alert.last_error = error
            status = alert.delivery_status
        if not ok:
            log.warning("alert %s delivery failed (%s), status %s", alert_id, error, status)
        return DeliveryResult(alert_id, ok, status, error)

    def deliver_due(self, now: dt.datetime | None = None) -> list[DeliveryResult]:
        """One delivery pass: POST every alert whose attempt is due."""
        return [self._deliver_one(i) for i in self._claim_due(now or utcnow())]


class BackgroundWorker:
    """A daemon thread running periodic jobs (webhook delivery, missed re-verifications)
    beside the API server, one per server process; stopped with the app."""

    def __init__(self, jobs: list[Callable[[], object]], interval_s: float = 0.5) -> None:
        self.jobs = jobs
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="facegate-worker", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            for job in self.jobs:
                try:
                    job()
                except Exception:  # a failing job must not stop the others or the loop
                    log.exception("background job %s failed", getattr(job, "__name__", job))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
