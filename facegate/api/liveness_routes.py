"""Liveness routes: the challenge a kiosk or login page asks for, and the recording form
fields (``frames``, ``timestamps``, ``challenge``) the check-in, login and access routes take."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from pydantic import BaseModel, Field

from facegate.api.deps import PrincipalDep, RequestIdDep, SelfServiceDep, read_photo, upload_limit
from facegate.errors import InvalidRequestError
from facegate.gallery.liveness import MAX_FRAMES, Recording, check_recording, issue_challenge
from facegate.gallery.liveness_schemas import ChallengeIssued, LivenessResult

router = APIRouter(prefix="/api/v1")

FRAMES_DOC = "Liveness on: the recording's frames (JPEG), in order, 6-40 over 1-4 s."
TIMESTAMPS_DOC = "Liveness on: the frames' times in seconds, comma-separated (e.g. 0,0.1,0.2)."
CHALLENGE_DOC = "Liveness active: the nonce of the challenge the recording answers."


class ChallengeIn(BaseModel):
    subject: str | None = Field(None, max_length=200, description="Bind the challenge to this subject (optional).")


@router.post("/galleries/{gallery}/liveness/challenges", response_model=ChallengeIssued, status_code=201,
             tags=["liveness"])
def create_challenge(request: Request, gallery: str, principal: SelfServiceDep,
                     body: ChallengeIn | None = None) -> ChallengeIssued:
    """A random, single-use liveness challenge: 1-3 actions to perform in order within ``max_seconds``
    of the first frame, answered before ``expires_at`` by sending the recording with ``challenge``=nonce."""
    ctx = request.app.state.service.ctx
    return issue_challenge(ctx, gallery, principal, subject=body.subject if body else None)


def read_recording(frames: list[UploadFile] | None, timestamps: str | None, challenge: str | None,
                   limit: int) -> Recording | None:
    """The recording of a form, or None when it sent none (the single-photo form)."""
    if not frames:
        if timestamps or challenge:
            raise InvalidRequestError("a liveness answer needs its frames (several `frames` files)")
        return None
    if len(frames) > MAX_FRAMES:
        raise InvalidRequestError(f"send at most {MAX_FRAMES} frames")
    try:
        times = [float(t) for t in (timestamps or "").split(",") if t.strip()]
    except ValueError:
        raise InvalidRequestError("timestamps must be comma-separated numbers of seconds") from None
    photos = [read_photo(f, limit) for f in frames]
    return Recording(frames=list(photos), timestamps=times, challenge=challenge or None)




@router.post("/galleries/{gallery}/liveness/check", response_model=LivenessResult, tags=["liveness"])
def check_liveness(
    request: Request, gallery: str, principal: PrincipalDep, rid: RequestIdDep,
    frames: Annotated[list[UploadFile], File(description=FRAMES_DOC)],
    timestamps: Annotated[str, Form(description=TIMESTAMPS_DOC)],
    challenge: Annotated[str | None, Form(max_length=64, description=CHALLENGE_DOC)] = None,
    subject: Annotated[str | None, Form(max_length=200, description="The claimed subject, if any.")] = None,
    mode: Annotated[Literal["passive", "active"] | None, Form(description="Default: the gallery's.")] = None,
) -> LivenessResult:
    """Judge a recording alone (no check-in, login or access): the liveness verdict, logged as a decision."""
    rec = read_recording(frames, timestamps, challenge, upload_limit(request))
    assert rec is not None
    ctx = request.app.state.service.ctx
    return check_recording(ctx, gallery, rec, subject, principal, request_id=rid, mode=mode).result
