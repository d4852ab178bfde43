"""Monitoring: the drift report, the automatic response and undoing it."""

from __future__ import annotations

from typing import Any

from facegate.client.base import API, ClientBase, route
from facegate.monitoring.drift import DriftReport, DriftWindows
from facegate.monitoring.response import OpsActionOut, ResponsePolicy, ResponseReport

G = API + "/galleries/{gallery}"


class MonitoringMixin(ClientBase):
    @route("GET", G + "/monitoring/drift")
    def drift(
        self,
        gallery: str,
        windows: DriftWindows | None = None,
        psi_limit: float | None = None,
        p_value: float | None = None,
        min_samples: int | None = None,
    ) -> DriftReport:
        params: dict[str, Any] = windows.model_dump() if windows is not None else {}
        params.update(psi_limit=psi_limit, p_value=p_value, min_samples=min_samples)
        query = {k: v for k, v in params.items() if v is not None}
        return DriftReport(**self._call("GET", self._url(G + "/monitoring/drift", gallery=gallery), params=query))

    @route("POST", G + "/monitoring/respond")
    def respond(self, gallery: str, windows: DriftWindows | None = None, policy: ResponsePolicy | None = None,
                apply: bool = False) -> ResponseReport:
        """Plan the response to drift (or with ``apply`` carry it out and record it)."""
        body = {"windows": (windows or DriftWindows()).model_dump(mode="json"),
                "policy": (policy or ResponsePolicy()).model_dump(mode="json"), "apply": apply}
        return ResponseReport(**self._call("POST", self._url(G + "/monitoring/respond", gallery=gallery), json=body))

    @route("GET", G + "/monitoring/actions")
    def monitoring_actions(self, gallery: str) -> list[OpsActionOut]:
        return [OpsActionOut(**a) for a in self._call("GET", self._url(G + "/monitoring/actions", gallery=gallery))]

    @route("POST", API + "/monitoring/actions/{action_id}/revert")
    def revert_action(self, action_id: int) -> dict[str, Any]:
        return self._call("POST", self._url(API + "/monitoring/actions/{action_id}/revert", action_id=action_id))
