"""Operators of the web admin: sign in and out (the client keeps the session cookie and echoes
the CSRF cookie), and their accounts (admin)."""

from __future__ import annotations

from typing import Any

from facegate.client.base import API, ClientBase, route
from facegate.gallery.operators import OperatorOut, OperatorSessionOut

OP = API + "/operators/{username}"


class OperatorsMixin(ClientBase):
    @route("POST", API + "/auth/operator/login")
    def operator_login(self, username: str, password: str) -> OperatorSessionOut:
        """Sign in as an operator; the ``fg_session`` cookie is kept for the next calls."""
        body = {"username": username, "password": password}
        return OperatorSessionOut(**self._call("POST", API + "/auth/operator/login", json=body))

    @route("POST", API + "/auth/operator/logout")
    def operator_logout(self) -> None:
        self._call("POST", API + "/auth/operator/logout")
        self.http.cookies.clear()

    @route("GET", API + "/auth/operator/me")
    def operator_me(self) -> OperatorSessionOut:
        return OperatorSessionOut(**self._call("GET", API + "/auth/operator/me"))

    @route("POST", API + "/operators")
    def create_operator(self, username: str, password: str, role: str, gallery: str | None = None,
                        **fields: Any) -> OperatorOut:
        """Create an operator (admin): role admin, proctor or lead, optionally bound to a gallery."""
        body = {"username": username, "password": password, "role": role, "gallery": gallery, **fields}
        return OperatorOut(**self._call("POST", API + "/operators", json=body))

    @route("GET", API + "/operators")
    def operators(self) -> list[OperatorOut]:
        return [OperatorOut(**o) for o in self._call("GET", API + "/operators")]

    @route("DELETE", OP)
    def delete_operator(self, username: str) -> None:
        self._call("DELETE", self._url(OP, username=username))

    @route("PUT", OP + "/password")
    def set_operator_password(self, username: str, password: str) -> None:
        self._call("PUT", self._url(OP + "/password", username=username), json={"password": password})

    # -- the admin page's read-only routes (their models live in the API: plain dicts here) ------
    @route("GET", API + "/models")
    def models(self) -> list[dict[str, Any]]:
        """Every model file: role, licence, checksum status, the galleries using it (admin)."""
        return self._call("GET", API + "/models")

    @route("GET", API + "/galleries/{gallery}/calibration")
    def calibration(self, gallery: str) -> dict[str, Any]:
        """The calibration the gallery decides with: threshold table, verify threshold, ROC if measured."""
        return self._call("GET", self._url(API + "/galleries/{gallery}/calibration", gallery=gallery))
