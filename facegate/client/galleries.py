"""Health, galleries, their decision log, subjects, faces and API keys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from facegate.client.base import API, ClientBase, route
from facegate.gallery.schemas import (
    ApiKeyCreated,
    ApiKeyOut,
    DecisionOut,
    FaceOut,
    GalleryOut,
    SubjectOut,
)

G = API + "/galleries/{gallery}"
S = G + "/subjects/{external_id}"


class GalleriesMixin(ClientBase):
    # -- health -------------------------------------------------------------------------------
    @route("GET", API + "/health")
    def health(self) -> dict[str, Any]:
        return self._call("GET", API + "/health")

    @route("GET", API + "/ready")
    def ready(self) -> dict[str, Any]:
        return self._call("GET", API + "/ready")

    # -- galleries ----------------------------------------------------------------------------
    @route("POST", API + "/galleries")
    def create_gallery(self, name: str, model: str = "arcface", detector: str = "scrfd",
                       settings: dict[str, Any] | None = None) -> GalleryOut:
        body = {"name": name, "model": model, "detector": detector, "settings": settings or {}}
        return GalleryOut(**self._call("POST", API + "/galleries", json=body))

    @route("GET", API + "/galleries")
    def galleries(self) -> list[GalleryOut]:
        return [GalleryOut(**g) for g in self._pages(API + "/galleries")]

    @route("GET", G)
    def gallery(self, name: str) -> GalleryOut:
        return GalleryOut(**self._call("GET", self._url(G, gallery=name)))

    @route("PATCH", G + "/settings")
    def update_gallery_settings(self, name: str, **changes: Any) -> GalleryOut:
        return GalleryOut(**self._call("PATCH", self._url(G + "/settings", gallery=name), json=changes))

    @route("DELETE", G)
    def delete_gallery(self, name: str) -> None:
        self._call("DELETE", self._url(G, gallery=name))

    @route("GET", G + "/decisions")
    def decisions(self, gallery: str, kind: str | None = None, max_items: int | None = None) -> list[DecisionOut]:
        pages = self._pages(self._url(G + "/decisions", gallery=gallery), {"kind": kind}, max_items=max_items)
        return [DecisionOut(**d) for d in pages]

    # -- subjects and faces -------------------------------------------------------------------
    @route("POST", G + "/subjects")
    def create_subject(self, gallery: str, external_id: str, display_name: str = "",
                       attributes: dict[str, Any] | None = None) -> SubjectOut:
        body = {"external_id": external_id, "display_name": display_name, "attributes": attributes or {}}
        return SubjectOut(**self._call("POST", self._url(G + "/subjects", gallery=gallery), json=body))

    @route("GET", G + "/subjects")
    def subjects(self, gallery: str, page_size: int = 100) -> list[SubjectOut]:
        return [SubjectOut(**s) for s in self._pages(self._url(G + "/subjects", gallery=gallery), limit=page_size)]

    @route("GET", S)
    def subject(self, gallery: str, external_id: str) -> SubjectOut:
        return SubjectOut(**self._call("GET", self._url(S, gallery=gallery, external_id=external_id)))

    @route("PATCH", S)
    def update_subject(self, gallery: str, external_id: str, display_name: str | None = None,
                       attributes: dict[str, Any] | None = None) -> SubjectOut:
        body = {k: v for k, v in {"display_name": display_name, "attributes": attributes}.items() if v is not None}
        return SubjectOut(**self._call("PATCH", self._url(S, gallery=gallery, external_id=external_id), json=body))

    @route("DELETE", S)
    def delete_subject(self, gallery: str, external_id: str) -> dict[str, Any]:
        """Returns ``{"deleted": id, "templates_erased": n}``."""
        return self._call("DELETE", self._url(S, gallery=gallery, external_id=external_id))

    @route("GET", S + "/faces")
    def faces(self, gallery: str, external_id: str) -> list[FaceOut]:
        return [FaceOut(**f) for f in self._pages(self._url(S + "/faces", gallery=gallery, external_id=external_id))]

    @route("DELETE", S + "/faces/{face_id}")
    def delete_face(self, gallery: str, external_id: str, face_id: int) -> None:
        self._call("DELETE", self._url(S + "/faces/{face_id}", gallery=gallery, external_id=external_id, face_id=face_id))

    # -- API keys -----------------------------------------------------------------------------
    @route("POST", API + "/keys")
    def create_key(self, name: str, scopes: Sequence[str], gallery: str | None = None) -> ApiKeyCreated:
        return ApiKeyCreated(**self._call("POST", API + "/keys", json={"name": name, "scopes": list(scopes), "gallery": gallery}))

    @route("GET", API + "/keys")
    def keys(self) -> list[ApiKeyOut]:
        return [ApiKeyOut(**k) for k in self._call("GET", API + "/keys")]

    @route("DELETE", API + "/keys/{key_id}")
    def revoke_key(self, key_id: int) -> None:
        self._call("DELETE", self._url(API + "/keys/{key_id}", key_id=key_id))
