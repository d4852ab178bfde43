"""Alerts and lockouts."""

from __future__ import annotations

from facegate.client.base import API, ClientBase, route
from facegate.workflows.alerts import AlertOut
from facegate.workflows.lockout import LockoutOut

G = API + "/galleries/{gallery}"


class AlertsMixin(ClientBase):
    @route("GET", G + "/alerts")
    def alerts(self, gallery: str, kind: str | None = None, unacknowledged: bool = False, subject: str | None = None,
               session_id: int | None = None, max_items: int | None = None) -> list[AlertOut]:
        """The gallery's alerts, newest first (every page, or the first ``max_items``)."""
        params = {"kind": kind, "unacknowledged": unacknowledged or None, "subject": subject, "session_id": session_id}
        return [AlertOut(**a) for a in self._pages(self._url(G + "/alerts", gallery=gallery), params, max_items=max_items)]

    @route("POST", G + "/alerts/{alert_id}/ack")
    def ack_alert(self, gallery: str, alert_id: int, by: str = "admin") -> AlertOut:
        url = self._url(G + "/alerts/{alert_id}/ack", gallery=gallery, alert_id=alert_id)
        return AlertOut(**self._call("POST", url, json={"by": by}))

    @route("GET", G + "/lockouts")
    def lockouts(self, gallery: str, all: bool = False) -> list[LockoutOut]:
        url = self._url(G + "/lockouts", gallery=gallery)
        return [LockoutOut(**x) for x in self._call("GET", url, params={"all": "true"} if all else {})]

    @route("DELETE", G + "/lockouts/{identity}")
    def clear_lockout(self, gallery: str, identity: str, by: str = "admin") -> LockoutOut:
        url = self._url(G + "/lockouts/{identity}", gallery=gallery, identity=identity)
        return LockoutOut(**self._call("DELETE", url, params={"by": by}))
