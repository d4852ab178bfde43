"""Biometric data sealed at rest: templates, probes, crops and the saved index never reach the
disk as plain bytes; they read back exactly with the key, and not at all without it."""

from __future__ import annotations

import base64
import os

import numpy as np
import pytest
from sqlalchemy import select

from facegate.security import SYSTEM
from tests.conftest import package_photo


def _service(tmp_path, **settings):
    from facegate.config import Settings
    from facegate.gallery.service import GalleryService

    db = tmp_path / "fg.db"
    return GalleryService(Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{db}", ann_min_templates=1,
                                   ann_build_in_background=False, **settings), migrate=True), db


def test_templates_probes_crops_and_index_are_sealed(tmp_path):
    from facegate.gallery.inputs import PhotoInput
    from facegate.gallery.schemas import GallerySettings
    from facegate.storage.models import Decision, FaceCrop, FaceTemplate

    key = base64.b64encode(os.urandom(32)).decode()
    service, db = _service(tmp_path, template_key=key)
    photo = PhotoInput("yao.jpg", package_photo("yaoming.jpg").read_bytes())
    try:
        service.create_gallery("g", settings=GallerySettings(store_crops=True), principal=SYSTEM)
        service.enroll("g", "yao", [photo], principal=SYSTEM)
        result = service.identify("g", PhotoInput("p.jpg", package_photo("players.jpg").read_bytes()), principal=SYSTEM)
        assert any(f.subject == "yao" for f in result.faces)  # search works on sealed templates (index built)
        service.ctx.search.wait_for_builds(60)
        with service.ctx.sessions() as s:
            template = s.scalars(select(FaceTemplate.vector)).first()
            crop = s.scalars(select(FaceCrop.jpeg)).first()
            probes = [p for p in s.scalars(select(Decision.probe)) if p is not None]
        assert template is not None and crop[:2] == b"\xff\xd8" and probes
        with service.ctx.db.connect() as c:
            c.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            raw = c.exec_driver_sql("SELECT vector FROM face_templates").scalar()
        assert raw.startswith(b"FGS1") and len(raw) == 4 + 12 + 512 * 4 + 16
    finally:
        service.close()
    on_disk = db.read_bytes()
    for vector in [template, *probes]:
        assert np.asarray(vector, "<f4").tobytes()[:64] not in on_disk
    assert crop[:64] not in on_disk
    index_files = list((tmp_path / "data" / "index").glob("*.scan"))
    assert index_files, "the gallery's index was not saved: nothing to check"
    for index_file in index_files:
        data = index_file.read_bytes()
        assert data.startswith(b"FGS1") and np.asarray(template, "<f4").tobytes()[:64] not in data

    # Another key cannot read them; no key at all says what is missing.
    from facegate.storage.sealing import SealError

    other, _ = _service(tmp_path, template_key=base64.b64encode(os.urandom(32)).decode())
    try:
        with pytest.raises(SealError, match="wrong FACEGATE_TEMPLATE_KEY"), other.ctx.sessions() as s:
            s.scalars(select(FaceTemplate.vector)).first()
    finally:
        other.close()
    plain, _ = _service(tmp_path, encrypt_templates=False)
    try:
        with pytest.raises(SealError, match="FACEGATE_ENCRYPT_TEMPLATES"), plain.ctx.sessions() as s:
            s.scalars(select(FaceTemplate.vector)).first()
    finally:
        plain.close()


def test_plain_templates_from_before_sealing_still_read(tmp_path):
    from facegate.gallery.inputs import PhotoInput
    from facegate.storage.models import FaceTemplate

    photo = PhotoInput("yao.jpg", package_photo("yaoming.jpg").read_bytes())
    plain, _ = _service(tmp_path, encrypt_templates=False)
    try:
        plain.create_gallery("g", principal=SYSTEM)
        plain.enroll("g", "yao", [photo], principal=SYSTEM)
        with plain.ctx.sessions() as s:
            before = s.scalars(select(FaceTemplate.vector)).first()
    finally:
        plain.close()
    sealed, _ = _service(tmp_path)  # the data folder's key, created now
    try:
        assert (tmp_path / "data" / "template_key").stat().st_mode & 0o777 == 0o600
        with sealed.ctx.sessions() as s:
            np.testing.assert_array_equal(s.scalars(select(FaceTemplate.vector)).first(), before)
        assert sealed.verify("g", "yao", photo, principal=SYSTEM).match
    finally:
        sealed.close()


def test_a_bad_key_setting_is_a_configuration_error(tmp_path):
    from facegate.errors import ConfigurationError

    with pytest.raises(ConfigurationError):
        _service(tmp_path, template_key="not base64!")
    with pytest.raises(ConfigurationError):
        _service(tmp_path, template_key=base64.b64encode(b"short").decode())
