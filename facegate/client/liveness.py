"""Liveness: ask for a challenge; answer it with a recording on check-in, login or access."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from facegate.client.base import API, ClientBase, PhotoArg, form, photo_file, route
from facegate.gallery.liveness_schemas import ChallengeIssued, LivenessResult

G = API + "/galleries/{gallery}"


@dataclass
class RecordingArg:
    """A recording to send instead of a photo: JPEG frames, their times in seconds from the
    first, and the challenge nonce (active liveness)."""

    frames: Sequence[PhotoArg]
    timestamps: Sequence[float]
    challenge: str | None = None


def upload_parts(photo: PhotoArg | None, recording: RecordingArg | None) -> tuple[list[tuple[str, Any]], dict[str, str]]:
    """The multipart files and fields of a photo and/or a recording."""
    files: list[tuple[str, Any]] = [("file", photo_file(photo))] if photo is not None else []
    data: dict[str, str] = {}
    if recording is not None:
        files += [("frames", photo_file(f, i)) for i, f in enumerate(recording.frames)]
        data["timestamps"] = ",".join(f"{t:.4f}" for t in recording.timestamps)
        if recording.challenge:
            data["challenge"] = recording.challenge
    return files, data


class LivenessMixin(ClientBase):
    @route("POST", G + "/liveness/challenges")
    def liveness_challenge(self, gallery: str, subject: str | None = None) -> ChallengeIssued:
        """A random single-use challenge: perform ``actions`` in order, send the recording with its nonce."""
        url = self._url(G + "/liveness/challenges", gallery=gallery)
        return ChallengeIssued(**self._call("POST", url, json={"subject": subject}))

    @route("POST", G + "/liveness/check")
    def liveness_check(self, gallery: str, recording: RecordingArg, subject: str | None = None,
                       mode: str | None = None) -> LivenessResult:
        """Judge a recording alone: the verdict (logged as a ``liveness`` decision)."""
        files, data = upload_parts(None, recording)
        url = self._url(G + "/liveness/check", gallery=gallery)
        return LivenessResult(**self._call("POST", url, files=files, data=data | form(subject=subject, mode=mode)))
