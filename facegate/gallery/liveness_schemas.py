"""Typed results of liveness: the challenge a client answers and the server's verdict."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

Action = Literal["blink", "turn_left", "turn_right", "look_up", "smile"]

INSTRUCTIONS: dict[str, str] = {
    "blink": "Blink once",
    "turn_left": "Turn your head to your left",
    "turn_right": "Turn your head to your right",
    "look_up": "Look up",
    "smile": "Smile",
}

# Shown before the actions: the detectors take the first frames (~0.5 s) as the neutral
# baseline, so an action already under way when the recording starts is not seen.
PREPARE = "Look straight at the camera for a second, then"


class ChallengeAction(BaseModel):
    action: Action
    instruction: str


class ChallengeIssued(BaseModel):
    """What the kiosk or login page shows and sends back: the nonce, once."""

    nonce: str = Field(description="Send it back as the `challenge` form field; single use.")
    actions: list[ChallengeAction]
    issued_at: dt.datetime
    expires_at: dt.datetime
    max_seconds: float = Field(description="All actions must happen within this many seconds of the first frame.")
    subject: str | None = None
    prepare: str = Field(PREPARE, description="Show first: the recording must start with about 1 s of looking "
                                              "straight at the camera, before the first action.")


class ActionOutcome(BaseModel):
    action: str
    happened: bool
    start: float | None = None
    end: float | None = None
    peak: float = 0.0
    reason: str = ""


class IdentityScore(BaseModel):
    frame: int
    t: float
    subject_score: float | None = Field(None, description="Best score against the claimed subject's templates.")
    min_pair_score: float = Field(description="Lowest similarity of this frame's face to the other frames' faces.")


class LivenessResult(BaseModel):
    passed: bool
    reason: str = ""
    mode: Literal["passive", "active"]
    challenge: list[str] = Field(default_factory=list, description="The actions asked, in order (active mode).")
    actions: list[ActionOutcome] = Field(default_factory=list)
    passive: dict[str, Any] = Field(default_factory=dict)
    frames: int = 0
    frames_embedded: list[int] = Field(default_factory=list)
    identity: list[IdentityScore] = Field(default_factory=list)
    identity_threshold: float | None = None
    decision_id: int | None = None

    def summary(self) -> dict[str, Any]:
        """What a verify/identify decision carries of it (the full result is its own decision)."""
        return {"liveness": {"passed": self.passed, "mode": self.mode, "reason": self.reason,
                             "decision_id": self.decision_id, "challenge": self.challenge,
                             "actions": [a.model_dump() for a in self.actions], "passive": self.passive}}
