"""Keyset pagination shared by every list: opaque cursors, pages, newest-first logs."""

from __future__ import annotations

import base64
from typing import Any, Sequence

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from facegate.errors import InvalidRequestError
from facegate.gallery.schemas import Page

MAX_PAGE = 500


def clamp_limit(limit: int) -> int:
    """A page holds 1 to 500 items, whatever the caller asked for."""
    return max(1, min(limit, MAX_PAGE))


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(str(last_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return int(base64.urlsafe_b64decode(padded.encode()).decode())
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequestError("invalid cursor: pass back the next_cursor of the previous page") from None


def page_of(rows: Sequence[Any], limit: int, items: list[Any]) -> Page:
    """A keyset page: ``rows`` were fetched with ``limit + 1`` to learn whether more follow."""
    more = len(rows) > limit
    return Page(items=items, next_cursor=encode_cursor(rows[limit - 1].id) if more else None)


def oldest_first(session: Session, query: Select[Any], id_column: InstrumentedAttribute[int], cursor: str | None,
                 limit: int) -> list[Any]:
    """Rows after the cursor in id order, ``limit + 1`` of them (see :func:`page_of`)."""
    query = query.where(id_column > decode_cursor(cursor)).order_by(id_column).limit(limit + 1)
    return list(session.scalars(query))


def newest_first(session: Session, query: Select[Any], id_column: InstrumentedAttribute[int], cursor: str | None,
                 limit: int) -> list[Any]:
    """Rows of a log (decisions, alerts), newest first, after the cursor; ``limit + 1`` of them
    so :func:`page_of` can tell whether more follow."""
    before = decode_cursor(cursor)
    if before:
        query = query.where(id_column < before)
    return list(session.scalars(query.order_by(id_column.desc()).limit(limit + 1)))
