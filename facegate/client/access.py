"""Team access: members, their rights, and the check at the door."""

from __future__ import annotations

from collections.abc import Sequence

from facegate.client.base import API, ClientBase, PhotoArg, form, route
from facegate.client.liveness import RecordingArg, upload_parts
from facegate.gallery.schemas import SubjectOut
from facegate.workflows.access import AccessResult

G = API + "/galleries/{gallery}"


class AccessMixin(ClientBase):
    @route("POST", G + "/members")
    def create_member(self, gallery: str, external_id: str, display_name: str = "",
                      rights: Sequence[str] = ()) -> SubjectOut:
        body = {"external_id": external_id, "display_name": display_name, "rights": list(rights)}
        return SubjectOut(**self._call("POST", self._url(G + "/members", gallery=gallery), json=body))

    @route("PUT", G + "/members/{external_id}/rights")
    def set_rights(self, gallery: str, external_id: str, rights: Sequence[str]) -> SubjectOut:
        url = self._url(G + "/members/{external_id}/rights", gallery=gallery, external_id=external_id)
        return SubjectOut(**self._call("PUT", url, json={"rights": list(rights)}))

    @route("POST", G + "/access/check")
    def access_check(self, gallery: str, photo: PhotoArg | None, right: str | None = None, where: str = "",
                     recording: RecordingArg | None = None) -> AccessResult:
        url = self._url(G + "/access/check", gallery=gallery)
        files, extra = upload_parts(photo, recording)
        return AccessResult(**self._call("POST", url, files=files, data=form(right=right, where=where) | extra))
