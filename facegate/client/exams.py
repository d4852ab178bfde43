"""The exam workflow: roster import, sessions, check-in, re-verification and attendance."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from facegate.client.base import API, ClientBase, PhotoArg, form, photo_file, route
from facegate.client.liveness import RecordingArg, upload_parts
from facegate.workflows.exam_schemas import ChallengeOut, CheckinResult, ExamSessionIn, ExamSessionOut
from facegate.workflows.roster import RosterReport

G = API + "/galleries/{gallery}"
E = G + "/exam-sessions/{code}"


def roster_uploads(csv_path: Path) -> list[tuple[str, bytes]]:
    """The photos a roster CSV names, as uploads named by their cell: a file is sent under the
    cell's own name, a folder's images under ``cell/name`` (how the server resolves them)."""
    from facegate.evaluation.datasets import IMAGE_SUFFIXES

    uploads: dict[str, bytes] = {}
    for row in csv.DictReader(io.StringIO(csv_path.read_text(encoding="utf-8").lstrip("\ufeff"))):
        cell = (row.get("photo") or "").strip()
        path = csv_path.parent / cell
        if not cell or cell in uploads:
            continue
        if path.is_dir():
            for f in sorted(path.iterdir()):
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES | {""}:
                    uploads[f"{cell.rstrip('/')}/{f.name}"] = f.read_bytes()
        elif path.is_file():
            uploads[cell] = path.read_bytes()
    return list(uploads.items())  # a missing photo is reported by the server, row by row


class ExamsMixin(ClientBase):
    @route("POST", G + "/roster")
    def import_roster(self, gallery: str, roster: PhotoArg, photos: Sequence[PhotoArg] | None = None) -> RosterReport:
        """Import a roster CSV (student_id,name,photo). With a CSV path and no ``photos``, the
        photos it names are read relative to its folder."""
        if photos is None:
            if not isinstance(roster, (str, Path)):
                raise ValueError("send the photos the roster names, or give the CSV as a path")
            photos = roster_uploads(Path(roster))
        files = [("roster", photo_file(roster))] + [("photos", photo_file(p, i)) for i, p in enumerate(photos)]
        return RosterReport(**self._call("POST", self._url(G + "/roster", gallery=gallery), files=files))

    @route("POST", G + "/exam-sessions")
    def create_exam_session(self, gallery: str, session: ExamSessionIn | dict[str, Any]) -> ExamSessionOut:
        data = session if isinstance(session, ExamSessionIn) else ExamSessionIn(**session)
        body = data.model_dump(mode="json")
        return ExamSessionOut(**self._call("POST", self._url(G + "/exam-sessions", gallery=gallery), json=body))

    @route("GET", G + "/exam-sessions")
    def exam_sessions(self, gallery: str) -> list[ExamSessionOut]:
        return [ExamSessionOut(**s) for s in self._call("GET", self._url(G + "/exam-sessions", gallery=gallery))]

    @route("GET", E)
    def exam_session(self, gallery: str, code: str) -> ExamSessionOut:
        return ExamSessionOut(**self._call("GET", self._url(E, gallery=gallery, code=code)))

    @route("POST", E + "/checkin")
    def checkin(self, gallery: str, code: str, student_id: str, photo: PhotoArg | None, kiosk: str = "",
                recording: RecordingArg | None = None) -> CheckinResult:
        """Check in with a photo, or (gallery liveness on) a recording answering a challenge."""
        url = self._url(E + "/checkin", gallery=gallery, code=code)
        files, extra = upload_parts(photo, recording)
        data = form(student_id=student_id, kiosk=kiosk) | extra
        return CheckinResult(**self._call("POST", url, files=files, data=data))

    @route("POST", E + "/reverify")
    def reverify(self, gallery: str, code: str, student_id: str, photo: PhotoArg) -> CheckinResult:
        url = self._url(E + "/reverify", gallery=gallery, code=code)
        return CheckinResult(**self._call("POST", url, files={"file": photo_file(photo)}, data=form(student_id=student_id)))

    @route("POST", E + "/reverify-requests")
    def request_reverification(self, gallery: str, code: str, students: Sequence[str] | None = None,
                               window_s: float | None = None) -> list[ChallengeOut]:
        body = {"students": list(students) if students is not None else None, "window_s": window_s}
        url = self._url(E + "/reverify-requests", gallery=gallery, code=code)
        return [ChallengeOut(**c) for c in self._call("POST", url, json=body)]

    @route("GET", E + "/students/{student_id}/challenges")
    def challenges(self, gallery: str, code: str, student_id: str) -> list[ChallengeOut]:
        url = self._url(E + "/students/{student_id}/challenges", gallery=gallery, code=code, student_id=student_id)
        return [ChallengeOut(**c) for c in self._call("GET", url)]

    @route("GET", E + "/attendance")
    def attendance_csv(self, gallery: str, code: str) -> str:
        """The attendance as the CSV text the server writes (one row per expected student)."""
        url = self._url(E + "/attendance", gallery=gallery, code=code)
        return self._response("GET", url, params={"format": "csv"}).text

    def attendance_rows(self, gallery: str, code: str) -> list[dict[str, Any]]:
        """The same attendance as JSON rows (the route's ``format=json``)."""
        return self._call("GET", self._url(E + "/attendance", gallery=gallery, code=code), params={"format": "json"})
