"""Biometric data sealed at rest: templates, probe templates, face crops and the saved search
index are encrypted with AES-256-GCM before they reach the disk.

Why: a copied database file or backup must not hand over anyone's face. The key is
``FACEGATE_TEMPLATE_KEY`` (32 bytes, base64) or, when that is empty, a key created once in
the data folder (``template_key``, mode 0600), which an operator should keep elsewhere too:
without the key the templates are lost. Each value gets a fresh 96-bit nonce; the column it
belongs to is bound as associated data, so a sealed crop cannot be passed off as a template.

Scope: the SQLite mode seals templates and probes, and both backends seal face crops. On
PostgreSQL the template and probe columns stay pgvector values, because the database itself
searches them (issue 15 may move that search in-process); protect that database's storage
with the platform's disk encryption. Values written before sealing was on are read as they
are (they start without the ``FGS1`` mark) and sealed when written again.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from facegate.errors import ConfigurationError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from facegate.config import Settings

MAGIC = b"FGS1"
_NONCE = 12


class SealError(Exception):
    """Sealed data that cannot be opened: no key, the wrong key, or damaged bytes."""


class Sealer:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ConfigurationError("the template key must be 32 bytes (base64 of 32 random bytes)")
        self._aead = AESGCM(key)

    def seal(self, data: bytes, column: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return MAGIC + nonce + self._aead.encrypt(nonce, data, b"facegate:" + column)

    def open(self, blob: bytes, column: bytes) -> bytes:
        if not is_sealed(blob):
            return blob  # written before sealing was turned on
        nonce = blob[len(MAGIC):len(MAGIC) + _NONCE]
        try:
            return self._aead.decrypt(nonce, blob[len(MAGIC) + _NONCE:], b"facegate:" + column)
        except Exception:  # cryptography's InvalidTag: wrong key or damaged value
            raise SealError("a sealed value cannot be opened: wrong FACEGATE_TEMPLATE_KEY or damaged data") from None


def is_sealed(blob: bytes) -> bool:
    return bytes(blob[:len(MAGIC)]) == MAGIC


def load_key(settings: Settings) -> bytes | None:
    """The configured key, else the data folder's (created on first use); None when sealing is off."""
    if not settings.encrypt_templates:
        return None
    if settings.template_key:
        try:
            return base64.b64decode(settings.template_key, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigurationError("FACEGATE_TEMPLATE_KEY must be base64 (of 32 random bytes)") from None
    from facegate.storage.secret_files import read_or_create

    text = read_or_create(Path(settings.data_dir) / "template_key", lambda: base64.b64encode(os.urandom(32)).decode())
    return base64.b64decode(text)


def attach(engine: Engine, sealer: Sealer | None) -> None:
    """Values of this engine's sealed columns are sealed with ``sealer`` (the column types
    find it on the engine's dialect, so two services with two keys never mix them up)."""
    engine.dialect.facegate_sealer = sealer  # type: ignore[attr-defined]


def sealer_of(dialect: Any) -> Sealer | None:
    return getattr(dialect, "facegate_sealer", None)
