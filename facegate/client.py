"""A small typed Python client for the FaceGate REST API.

    from facegate.client import FaceGateClient
    with FaceGateClient("http://127.0.0.1:8000", api_key="fg_...") as fg:
        fg.enroll("exam", "s1234", ["a.jpg", "b.jpg"], display_name="Ada")
        result = fg.verify("exam", "s1234", "live.jpg")
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import quote

import httpx

from facegate.gallery.schemas import (
    ApiKeyCreated,
    ApiKeyOut,
    DecisionOut,
    DetectedFace,
    EnrollReport,
    FaceOut,
    GalleryOut,
    IdentifyResult,
    SubjectOut,
    VerifyResult,
)

PhotoArg = str | Path | bytes | tuple[str, bytes]


class FaceGateAPIError(Exception):
    """A problem+json error from the server, with its fields."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        self.code = problem.get("code", "")
        self.detail = problem.get("detail", "")
        self.request_id = problem.get("request_id", "")
        super().__init__(f"{status} {self.code}: {self.detail}")


def _seg(value: str) -> str:
    """A subject id as one URL path segment: "#", "?", "%" and spaces must not end or split the path."""
    return quote(str(value), safe="")


def _photo(photo: PhotoArg, index: int = 0) -> tuple[str, bytes]:
    if isinstance(photo, tuple):
        return photo
    if isinstance(photo, bytes):
        return (f"photo{index}", photo)
    path = Path(photo)
    return (path.name, path.read_bytes())


class FaceGateClient:
    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 120.0) -> None:
        headers = {"X-API-Key": api_key} if api_key else {}
        self.http = httpx.Client(base_url=base_url.rstrip("/") + "/api/v1", headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "FaceGateClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -------------------------------------------------------------------------
    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text}
            raise FaceGateAPIError(response.status_code, problem)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def _pages(self, path: str, params: dict | None = None, limit: int = 100) -> Iterator[dict]:
        cursor = None
        while True:
            query = dict(params or {}, limit=limit)
            if cursor:
                query["cursor"] = cursor
            page = self._call("GET", path, params=query)
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    # -- health ---------------------------------------------------------------------------
    def health(self) -> dict:
        return self._call("GET", "/health")

    def ready(self) -> dict:
        return self._call("GET", "/ready")

    # -- galleries ------------------------------------------------------------------------
    def create_gallery(self, name: str, model: str = "arcface", detector: str = "scrfd", settings: dict | None = None) -> GalleryOut:
        body = {"name": name, "model": model, "detector": detector, "settings": settings or {}}
        return GalleryOut(**self._call("POST", "/galleries", json=body))

    def galleries(self) -> list[GalleryOut]:
        return [GalleryOut(**g) for g in self._pages("/galleries")]

    def gallery(self, name: str) -> GalleryOut:
        return GalleryOut(**self._call("GET", f"/galleries/{name}"))

    def update_gallery_settings(self, name: str, **changes: Any) -> GalleryOut:
        return GalleryOut(**self._call("PATCH", f"/galleries/{name}/settings", json=changes))

    def delete_gallery(self, name: str) -> None:
        self._call("DELETE", f"/galleries/{name}")

    def decisions(self, gallery: str, kind: str | None = None) -> list[DecisionOut]:
        params = {"kind": kind} if kind else {}
        return [DecisionOut(**d) for d in self._pages(f"/galleries/{gallery}/decisions", params)]

    # -- subjects -------------------------------------------------------------------------
    def create_subject(self, gallery: str, external_id: str, display_name: str = "", attributes: dict | None = None) -> SubjectOut:
        body = {"external_id": external_id, "display_name": display_name, "attributes": attributes or {}}
        return SubjectOut(**self._call("POST", f"/galleries/{gallery}/subjects", json=body))

    def subjects(self, gallery: str, page_size: int = 100) -> list[SubjectOut]:
        return [SubjectOut(**s) for s in self._pages(f"/galleries/{gallery}/subjects", limit=page_size)]

    def subject(self, gallery: str, external_id: str) -> SubjectOut:
        return SubjectOut(**self._call("GET", f"/galleries/{gallery}/subjects/{_seg(external_id)}"))

    def update_subject(self, gallery: str, external_id: str, display_name: str | None = None, attributes: dict | None = None) -> SubjectOut:
        body = {k: v for k, v in {"display_name": display_name, "attributes": attributes}.items() if v is not None}
        return SubjectOut(**self._call("PATCH", f"/galleries/{gallery}/subjects/{_seg(external_id)}", json=body))

    def delete_subject(self, gallery: str, external_id: str) -> dict:
        return self._call("DELETE", f"/galleries/{gallery}/subjects/{_seg(external_id)}")

    def faces(self, gallery: str, external_id: str) -> list[FaceOut]:
        return [FaceOut(**f) for f in self._pages(f"/galleries/{gallery}/subjects/{_seg(external_id)}/faces")]

    def delete_face(self, gallery: str, external_id: str, face_id: int) -> None:
        self._call("DELETE", f"/galleries/{gallery}/subjects/{_seg(external_id)}/faces/{face_id}")

    # -- recognition ----------------------------------------------------------------------
    def enroll(
        self,
        gallery: str,
        external_id: str,
        photos: Sequence[PhotoArg],
        display_name: str | None = None,
        attributes: dict | None = None,
        face_index: int | None = None,
        create: bool = True,
    ) -> EnrollReport:
        files = [("files", _photo(p, i)) for i, p in enumerate(photos)]
        data: dict[str, str] = {"create": "true" if create else "false"}
        if display_name is not None:
            data["display_name"] = display_name
        if attributes is not None:
            data["attributes"] = json.dumps(attributes)
        if face_index is not None:
            data["face_index"] = str(face_index)
        return EnrollReport(**self._call("POST", f"/galleries/{gallery}/subjects/{_seg(external_id)}/enroll", files=files, data=data))

    def verify(self, gallery: str, external_id: str, photo: PhotoArg, far: float | None = None) -> VerifyResult:
        data = {"far": str(far)} if far else {}
        return VerifyResult(
            **self._call("POST", f"/galleries/{gallery}/subjects/{_seg(external_id)}/verify", files={"file": _photo(photo)}, data=data)
        )

    def identify(self, gallery: str, photo: PhotoArg, top_k: int = 5, fpir: float | None = None) -> IdentifyResult:
        data = {"top_k": str(top_k)}
        if fpir:
            data["fpir"] = str(fpir)
        return IdentifyResult(**self._call("POST", f"/galleries/{gallery}/identify", files={"file": _photo(photo)}, data=data))

    def detect(self, photo: PhotoArg, detector: str = "scrfd") -> list[DetectedFace]:
        return [DetectedFace(**f) for f in self._call("POST", "/detect", files={"file": _photo(photo)}, data={"detector": detector})]

    # -- keys -----------------------------------------------------------------------------
    def create_key(self, name: str, scopes: Sequence[str], gallery: str | None = None) -> ApiKeyCreated:
        return ApiKeyCreated(**self._call("POST", "/keys", json={"name": name, "scopes": list(scopes), "gallery": gallery}))

    def keys(self) -> list[ApiKeyOut]:
        return [ApiKeyOut(**k) for k in self._call("GET", "/keys")]

    def revoke_key(self, key_id: int) -> None:
        self._call("DELETE", f"/keys/{key_id}")
