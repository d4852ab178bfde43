"""Enroll, verify, identify, detect, the photo quality check and the model switch: the routes
that take photos."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from facegate.client.base import API, ClientBase, PhotoArg, form, photo_file, route
from facegate.gallery.schemas import DetectedFace, EnrollReport, IdentifyResult, VerifyResult

G = API + "/galleries/{gallery}"
S = G + "/subjects/{external_id}"


class RecognitionMixin(ClientBase):
    @route("POST", S + "/enroll")
    def enroll(
        self,
        gallery: str,
        external_id: str,
        photos: Sequence[PhotoArg],
        display_name: str | None = None,
        attributes: dict[str, Any] | None = None,
        face_index: int | None = None,
        create: bool = True,
    ) -> EnrollReport:
        files = [("files", photo_file(p, i)) for i, p in enumerate(photos)]
        data = form(create=create, display_name=display_name, face_index=face_index,
                    attributes=json.dumps(attributes) if attributes is not None else None)
        url = self._url(S + "/enroll", gallery=gallery, external_id=external_id)
        return EnrollReport(**self._call("POST", url, files=files, data=data))

    @route("POST", S + "/verify")
    def verify(self, gallery: str, external_id: str, photo: PhotoArg, far: float | None = None) -> VerifyResult:
        url = self._url(S + "/verify", gallery=gallery, external_id=external_id)
        return VerifyResult(**self._call("POST", url, files={"file": photo_file(photo)}, data=form(far=far)))

    @route("POST", G + "/identify")
    def identify(self, gallery: str, photo: PhotoArg, top_k: int = 5, fpir: float | None = None) -> IdentifyResult:
        url = self._url(G + "/identify", gallery=gallery)
        return IdentifyResult(**self._call("POST", url, files={"file": photo_file(photo)}, data=form(top_k=top_k, fpir=fpir)))

    @route("POST", API + "/detect")
    def detect(self, photo: PhotoArg, detector: str = "scrfd") -> list[DetectedFace]:
        found = self._call("POST", API + "/detect", files={"file": photo_file(photo)}, data={"detector": detector})
        return [DetectedFace(**f) for f in found]

    @route("POST", G + "/quality")
    def quality(self, gallery: str, photo: PhotoArg) -> list[DetectedFace]:
        """Every face of the photo with the quality checks the gallery's enrollment applies."""
        found = self._call("POST", self._url(G + "/quality", gallery=gallery), files={"photo": photo_file(photo)})
        return [DetectedFace(**f) for f in found]

    @route("POST", G + "/switch-model")
    def switch_model(self, gallery: str, model: str, photos: Mapping[str, Sequence[PhotoArg]],
                     detector: str | None = None, allow_partial: bool = False) -> dict[str, Any]:
        """Re-enroll every subject under another model: ``photos`` maps each external id to its photos."""
        files = []
        for subject, items in photos.items():
            for i, p in enumerate(items):
                name, data = photo_file(p, i)
                files.append(("files", (f"{subject}/{name}", data)))
        url = self._url(G + "/switch-model", gallery=gallery)
        return self._call("POST", url, files=files, data=form(model=model, detector=detector, allow_partial=allow_partial))
