"""The workflow routes (/api/v1/galleries/{gallery}/...): exam check-in and attendance,
alerts and lockouts, self-service accounts and face login, team access. Each route parses
the request and calls one workflow method."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from facegate.api.deps import (
    INT64_MAX,
    PrincipalDep,
    RequestIdDep,
    RowId,
    SelfServiceDep,
    read_photo,
    upload_limit,
)
from facegate.api.liveness_routes import CHALLENGE_DOC, FRAMES_DOC, TIMESTAMPS_DOC, read_recording
from facegate.errors import AuthenticationError, InvalidRequestError
from facegate.gallery.schemas import Page, SubjectOut
from facegate.workflows import Workflows
from facegate.workflows.access import AccessResult, MemberIn
from facegate.workflows.accounts import LoginResult, RegistrationIn, RegistrationResult, TokenClaims
from facegate.workflows.alerts import AlertOut
from facegate.workflows.exam import (
    ChallengeOut,
    CheckinResult,
    ExamSessionIn,
    ExamSessionOut,
    RosterReport,
    parse_roster,
    upload_resolver,
)
from facegate.workflows.lockout import LockoutOut

router = APIRouter(prefix="/api/v1")
G = "/galleries/{gallery}"


def get_workflows(request: Request) -> Workflows:
    return request.app.state.workflows


WorkflowsDep = Annotated[Workflows, Depends(get_workflows)]


class AckIn(BaseModel):
    by: str = Field("admin", max_length=200, description="Who looked at it.")


class ReverifyRequestIn(BaseModel):
    students: list[str] | None = Field(None, description="Default: every student checked in.")
    window_s: float | None = Field(None, gt=0, le=7 * 86400, description="Time to answer; default: the session's.")


class RightsIn(BaseModel):
    rights: list[str]


# -- exam check-in ------------------------------------------------------------------------------
@router.post(G + "/roster", response_model=RosterReport, tags=["exam"])
def import_roster(
    request: Request,
    gallery: str,
    wf: WorkflowsDep,
    principal: PrincipalDep,
    roster: Annotated[UploadFile, File(description="CSV: student_id,name,photo")],
    photos: Annotated[list[UploadFile], File(description="The photos the CSV names (file or folder/ prefix).")],
) -> RosterReport:
    """Import an exam roster: a CSV (student_id,name,photo) and the photos it names (a file name or a
    folder/ prefix); students are created or updated and their photos enrolled; bad rows are listed, the
    rest imported. Each file is limited to FACEGATE_MAX_UPLOAD_BYTES."""
    limit = upload_limit(request)
    try:
        text = read_photo(roster, limit).data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequestError("the roster must be a UTF-8 CSV file") from None
    rows = parse_roster(text, upload_resolver([read_photo(p, limit) for p in photos]))
    return wf.exams.import_roster(gallery, rows, principal=principal)


@router.post(G + "/exam-sessions", response_model=ExamSessionOut, status_code=201, tags=["exam"])
def create_exam_session(gallery: str, body: ExamSessionIn, wf: WorkflowsDep, principal: PrincipalDep) -> ExamSessionOut:
    """Create an exam session: code, course, room, time window, expected students; online sessions get
    random webcam re-verifications."""
    return wf.exams.create_session(gallery, body, principal=principal)


@router.get(G + "/exam-sessions", response_model=list[ExamSessionOut], tags=["exam"])
def list_exam_sessions(gallery: str, wf: WorkflowsDep, principal: PrincipalDep) -> list[ExamSessionOut]:
    """The gallery's exam sessions."""
    return wf.exams.list_sessions(gallery, principal=principal)


@router.get(G + "/exam-sessions/{code}", response_model=ExamSessionOut, tags=["exam"])
def get_exam_session(gallery: str, code: str, wf: WorkflowsDep, principal: PrincipalDep) -> ExamSessionOut:
    """One exam session by its code."""
    return wf.exams.get_session(gallery, code, principal=principal)


@router.post(G + "/exam-sessions/{code}/checkin", response_model=CheckinResult, tags=["exam"])
def checkin(
    request: Request,
    gallery: str,
    code: str,
    wf: WorkflowsDep,
    principal: PrincipalDep,
    rid: RequestIdDep,
    student_id: Annotated[str, Form(min_length=1, max_length=200)],
    file: Annotated[UploadFile | None, File(description="A live photo of the student (liveness off).")] = None,
    kiosk: Annotated[str, Form(max_length=200)] = "",
    frames: Annotated[list[UploadFile] | None, File(description=FRAMES_DOC)] = None,
    timestamps: Annotated[str | None, Form(description=TIMESTAMPS_DOC)] = None,
    challenge: Annotated[str | None, Form(max_length=64, description=CHALLENGE_DOC)] = None,
) -> CheckinResult:
    """Check a student in at a kiosk: their id and a live photo, verified 1:1; repeated failures lock the
    student and raise an alert. With the gallery's liveness on: a recording (``frames`` + ``timestamps``, and
    ``challenge`` when active) instead of the photo; a failed liveness is status ``liveness_failed``."""
    return wf.exams.checkin(gallery, code, student_id, (read_photo(file, upload_limit(request)) if file is not None else None), kiosk=kiosk,
                            request_id=rid, principal=principal, recording=read_recording(frames, timestamps, challenge, upload_limit(request)))


@router.post(G + "/exam-sessions/{code}/reverify", response_model=CheckinResult, tags=["exam"])
def reverify(
    request: Request,
    gallery: str,
    code: str,
    wf: WorkflowsDep,
    principal: PrincipalDep,
    rid: RequestIdDep,
    student_id: Annotated[str, Form(min_length=1, max_length=200)],
    file: Annotated[UploadFile, File(description="A webcam photo of the student.")],
) -> CheckinResult:
    """Answer a re-verification challenge of an online exam with a webcam photo."""
    return wf.exams.reverify(gallery, code, student_id, read_photo(file, upload_limit(request)), request_id=rid,
                             principal=principal)


@router.post(G + "/exam-sessions/{code}/reverify-requests", response_model=list[ChallengeOut], status_code=201, tags=["exam"])
def request_reverification(
    gallery: str, code: str, body: ReverifyRequestIn, wf: WorkflowsDep, principal: PrincipalDep
) -> list[ChallengeOut]:
    """Ask students of an online session to re-verify within a time window (default: every student checked
    in)."""
    return wf.exams.request_reverification(gallery, code, body.students, body.window_s, principal=principal)


@router.get(G + "/exam-sessions/{code}/students/{student_id}/challenges", response_model=list[ChallengeOut], tags=["exam"])
def pending_challenges(gallery: str, code: str, student_id: str, wf: WorkflowsDep, principal: PrincipalDep) -> list[ChallengeOut]:
    """The open re-verification challenges of one student (what the exam client polls)."""
    return wf.exams.pending_challenges(gallery, code, student_id, principal=principal)


def attachment(filename: str) -> str:
    """A Content-Disposition header for a download named from user data: an ASCII fallback
    with quotes, backslashes and control characters replaced, and the exact name RFC 5987
    percent-encoded, so no name can end the header or inject another parameter."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@router.get(G + "/exam-sessions/{code}/attendance", tags=["exam"], response_model=None)
def attendance(
    gallery: str, code: str, wf: WorkflowsDep, principal: PrincipalDep,
    format: Annotated[str, Query(pattern="^(csv|json)$")] = "csv",
) -> Response | list[dict[str, Any]]:
    """The session's attendance, one row per expected student: CSV (text/csv, the default) or JSON
    (format=json)."""
    if format == "json":
        return wf.exams.attendance_rows(gallery, code, principal=principal)
    return Response(
        wf.exams.attendance_csv(gallery, code, principal=principal), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": attachment(f"attendance-{code}.csv")},
    )


# -- alerts and lockouts --------------------------------------------------------------------------
@router.get(G + "/alerts", response_model=Page, tags=["alerts"])
def list_alerts(
    gallery: str,
    wf: WorkflowsDep,
    principal: PrincipalDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    kind: str | None = None,
    unacknowledged: bool = False,
    subject: str | None = None,
    session_id: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
) -> Page:
    """The gallery's alerts (impostor attempts, lockouts, unknown faces, ...), newest first, a page at a
    time; filter by kind, subject, session or unacknowledged."""
    return wf.alerts.list_alerts(gallery, cursor, limit, kind, unacknowledged, subject, session_id, principal=principal)


@router.post(G + "/alerts/{alert_id}/ack", response_model=AlertOut, tags=["alerts"])
def acknowledge_alert(gallery: str, alert_id: RowId, body: AckIn, wf: WorkflowsDep, principal: PrincipalDep) -> AlertOut:
    """Mark an alert as looked at, and by whom."""
    return wf.alerts.acknowledge(gallery, alert_id, body.by, principal=principal)


@router.get(G + "/lockouts", response_model=list[LockoutOut], tags=["alerts"])
def list_lockouts(gallery: str, wf: WorkflowsDep, principal: PrincipalDep, all: bool = False) -> list[LockoutOut]:
    """Identities locked after repeated failures (all=true: cleared ones too)."""
    return wf.lockout.list_lockouts(gallery, active_only=not all, principal=principal)


@router.delete(G + "/lockouts/{identity}", response_model=LockoutOut, tags=["alerts"])
def clear_lockout(gallery: str, identity: str, wf: WorkflowsDep, principal: PrincipalDep, by: str = "admin") -> LockoutOut:
    """Unlock an identity."""
    return wf.lockout.clear(gallery, identity, by=by, principal=principal)


# -- self-service accounts and face login ----------------------------------------------------------
@router.post(G + "/accounts", response_model=RegistrationResult, status_code=201, tags=["accounts"])
def register(
    request: Request,
    gallery: str,
    wf: WorkflowsDep,
    principal: SelfServiceDep,
    username: Annotated[str, Form()],
    password: Annotated[str, Form()],
    consent: Annotated[bool, Form(description="Must be true: consent to face processing.")],
    files: Annotated[list[UploadFile], File(description="Three or more photos.")],
    display_name: Annotated[str, Form()] = "",
    consent_text: Annotated[str | None, Form()] = None,
) -> RegistrationResult:
    """Self-service registration: username (3..100 characters), password (10..1024 characters), consent and
    at least three photos, all of which must pass enrollment checks."""
    data = RegistrationIn(
        username=username, password=password, display_name=display_name, consent=consent,
        **({"consent_text": consent_text} if consent_text else {}),
    )
    photos = [read_photo(f, upload_limit(request)) for f in files]
    return wf.accounts.register(gallery, data, photos, principal=principal)


def _login_response(result: LoginResult) -> JSONResponse:
    return JSONResponse(result.model_dump(mode="json"), status_code=200 if result.authenticated else 401)


@router.post(G + "/login/face", response_model=LoginResult, tags=["accounts"],
             responses={401: {"model": LoginResult, "description": "Not recognised."}})
def login_face(
    request: Request, gallery: str, wf: WorkflowsDep, principal: SelfServiceDep, rid: RequestIdDep,
    file: Annotated[UploadFile | None, File(description="A photo (liveness off).")] = None,
    frames: Annotated[list[UploadFile] | None, File(description=FRAMES_DOC)] = None,
    timestamps: Annotated[str | None, Form(description=TIMESTAMPS_DOC)] = None,
    challenge: Annotated[str | None, Form(max_length=64, description=CHALLENGE_DOC)] = None,
) -> JSONResponse:
    """Face login (1:N within the gallery's accounts): a session token on success, 401 otherwise; repeated
    failures lock out. With the gallery's liveness on, a recording instead of the photo."""
    return _login_response(wf.accounts.login_face(gallery, (read_photo(file, upload_limit(request)) if file is not None else None), request_id=rid,
                                                  principal=principal, recording=read_recording(frames, timestamps, challenge, upload_limit(request))))


@router.post(G + "/login", response_model=LoginResult, tags=["accounts"],
             responses={401: {"model": LoginResult, "description": "Wrong password or face."}})
def login_password_face(
    request: Request, gallery: str, wf: WorkflowsDep, principal: SelfServiceDep, rid: RequestIdDep,
    username: Annotated[str, Form()], password: Annotated[str, Form()],
    file: Annotated[UploadFile | None, File(description="A photo (liveness off).")] = None,
    frames: Annotated[list[UploadFile] | None, File(description=FRAMES_DOC)] = None,
    timestamps: Annotated[str | None, Form(description=TIMESTAMPS_DOC)] = None,
    challenge: Annotated[str | None, Form(max_length=64, description=CHALLENGE_DOC)] = None,
) -> JSONResponse:
    """Two-factor login: password, then the face verified 1:1 against that account; a session token on
    success, 401 otherwise."""
    # Failures lock the username for this source only (its key, else its address): guessing
    # someone's password from one place cannot lock them out of every other.
    source = f"key {principal.key_id}" if principal.key_id is not None else \
        f"address {request.client.host if request.client else 'unknown'}"
    return _login_response(wf.accounts.login_password_face(
        gallery, username, password, (read_photo(file, upload_limit(request)) if file is not None else None), request_id=rid, principal=principal,
        source=source, recording=read_recording(frames, timestamps, challenge, upload_limit(request)),
    ))


@router.get("/auth/session", response_model=TokenClaims, tags=["accounts"])
def session_claims(wf: WorkflowsDep, x_session_token: Annotated[str | None, Header()] = None) -> TokenClaims:
    """What an application behind FaceGate asks: is this session token valid, and whose?"""
    if not x_session_token:
        raise AuthenticationError("send the session token in the X-Session-Token header")
    return wf.accounts.check_token(x_session_token)


# -- team access -------------------------------------------------------------------------------------
@router.post(G + "/members", response_model=SubjectOut, status_code=201, tags=["access"])
def create_member(gallery: str, body: MemberIn, wf: WorkflowsDep, principal: PrincipalDep) -> SubjectOut:
    """Create a team member with access rights (e.g. lab:enter); enroll photos afterwards."""
    return wf.access.create_member(gallery, body, principal=principal)


@router.put(G + "/members/{external_id}/rights", response_model=SubjectOut, tags=["access"])
def set_rights(gallery: str, external_id: str, body: RightsIn, wf: WorkflowsDep, principal: PrincipalDep) -> SubjectOut:
    """Replace a member's access rights."""
    return wf.access.set_rights(gallery, external_id, body.rights, principal=principal)


@router.post(G + "/access/check", response_model=AccessResult, tags=["access"])
def access_check(
    request: Request, gallery: str, wf: WorkflowsDep, principal: PrincipalDep, rid: RequestIdDep,
    file: Annotated[UploadFile | None, File(description="A photo (liveness off).")] = None,
    right: Annotated[str | None, Form(description="The right asked for, e.g. lab:enter; none: any right.")] = None,
    where: Annotated[str, Form(max_length=200)] = "",
    frames: Annotated[list[UploadFile] | None, File(description=FRAMES_DOC)] = None,
    timestamps: Annotated[str | None, Form(description=TIMESTAMPS_DOC)] = None,
    challenge: Annotated[str | None, Form(max_length=64, description=CHALLENGE_DOC)] = None,
) -> AccessResult:
    """At the door: identify the photo and grant or deny ``right`` (none: any right); every check is logged,
    unknown faces and denials can raise alerts."""
    return wf.access.check(gallery, (read_photo(file, upload_limit(request)) if file is not None else None), right=right, request_id=rid, where=where,
                           principal=principal, recording=read_recording(frames, timestamps, challenge, upload_limit(request)))
