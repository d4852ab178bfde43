"""Self-service accounts, face login and session tokens."""

from __future__ import annotations

from collections.abc import Sequence

from facegate.client.base import API, ClientBase, PhotoArg, form, photo_file, route
from facegate.client.liveness import RecordingArg, upload_parts
from facegate.workflows.accounts import LoginResult, RegistrationResult, TokenClaims

G = API + "/galleries/{gallery}"


class AccountsMixin(ClientBase):
    @route("POST", G + "/accounts")
    def register(self, gallery: str, username: str, password: str, photos: Sequence[PhotoArg], consent: bool = True,
                 display_name: str = "", consent_text: str | None = None) -> RegistrationResult:
        """Register an account: password 10..1024 characters, three or more photos, consent."""
        files = [("files", photo_file(p, i)) for i, p in enumerate(photos)]
        data = form(username=username, password=password, consent=consent, display_name=display_name,
                    consent_text=consent_text)
        return RegistrationResult(**self._call("POST", self._url(G + "/accounts", gallery=gallery), files=files, data=data))

    @route("POST", G + "/login/face")
    def login_face(self, gallery: str, photo: PhotoArg | None, recording: RecordingArg | None = None) -> LoginResult:
        """Face login; a refusal is a result (``authenticated`` false), not an exception."""
        url = self._url(G + "/login/face", gallery=gallery)
        files, data = upload_parts(photo, recording)
        return LoginResult(**self._call("POST", url, ok=(401,), files=files, data=data))

    @route("POST", G + "/login")
    def login(self, gallery: str, username: str, password: str, photo: PhotoArg | None,
              recording: RecordingArg | None = None) -> LoginResult:
        """Password + face login; a refusal is a result (``authenticated`` false)."""
        url = self._url(G + "/login", gallery=gallery)
        files, extra = upload_parts(photo, recording)
        data = form(username=username, password=password) | extra
        return LoginResult(**self._call("POST", url, ok=(401,), files=files, data=data))

    @route("GET", API + "/auth/session")
    def session_claims(self, token: str) -> TokenClaims:
        """Whose is this session token (401 when invalid or expired)."""
        return TokenClaims(**self._call("GET", API + "/auth/session", headers={"X-Session-Token": token}))
