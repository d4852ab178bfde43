"""Bulk template writes and whole-gallery reads on PostgreSQL through binary COPY.

Row by row, each template crossed the wire as 512 numbers formatted in Python (about 0.5 ms a
template) and came back as text to parse: importing 100k templates took 368 s and reading a
gallery of 100k back for its index about 30 s. Binary COPY sends pgvector's own binary form
(a float32 array) in one stream each way. The rows go through the same table, constraints and
triggers (the gallery version bump is a statement trigger, which COPY fires once).

The pgvector adapters are registered on the COPY's cursor only: the ORM's connection keeps
returning vectors as its column type expects.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

TEMPLATE_COLUMNS = (
    "gallery_id", "subject_id", "model_id", "model_sha256", "vector", "quality", "source_sha256", "box", "created_at",
)


def _driver_cursor(session: Session) -> Any:
    """A psycopg cursor on the session's own connection (same transaction), able to move
    ``vector`` values in binary as numpy arrays."""
    from pgvector.psycopg.vector import register_vector_info
    from psycopg.types import TypeInfo

    connection = session.connection().connection.driver_connection
    if connection is None:
        raise RuntimeError("the session's database connection is closed")
    cursor = connection.cursor()
    register_vector_info(cursor, TypeInfo.fetch(connection, "vector"))
    return cursor


def _column_types(cursor: Any, table: str, columns: Sequence[str]) -> list[str]:
    """The columns' exact types as PostgreSQL names them: binary COPY needs each value in its
    column's own binary format (an int4 column refuses an int8)."""
    cursor.execute(
        "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
        (table,),
    )
    types = dict(cursor.fetchall())
    return [types[c] for c in columns]


def copy_templates(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert template rows (dicts with :data:`TEMPLATE_COLUMNS`, ``vector`` a float32 array,
    ``box`` a JSON-able list) in the session's transaction."""
    import psycopg
    from psycopg.types.json import Json

    if not rows:
        return
    now = dt.datetime.now(dt.timezone.utc)
    with _driver_cursor(session) as cursor:
        types = _column_types(cursor, "face_templates", TEMPLATE_COLUMNS)
        statement = f"COPY face_templates ({', '.join(TEMPLATE_COLUMNS)}) FROM STDIN WITH (FORMAT BINARY)"
        try:
            with cursor.copy(statement) as copy:
                copy.set_types(types)
                for row in rows:
                    copy.write_row((
                        row["gallery_id"], row["subject_id"], row["model_id"], row["model_sha256"],
                        np.asarray(row["vector"], dtype=np.float32), float(row["quality"]), row["source_sha256"],
                        Json(row["box"]), row.get("created_at") or now,
                    ))
        except psycopg.errors.IntegrityError as exc:  # what the ORM's inserts would raise
            raise IntegrityError(statement, None, exc) from exc


def read_templates(session: Session, gallery_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, subject ids, vectors) of every template of a gallery, by id, in one binary stream."""
    with _driver_cursor(session) as cursor:
        types = _column_types(cursor, "face_templates", ("id", "subject_id", "vector"))
        ids: list[int] = []
        subjects: list[int] = []
        vectors: list[np.ndarray] = []
        query = (
            "COPY (SELECT id, subject_id, vector FROM face_templates WHERE gallery_id = "
            f"{int(gallery_id)} ORDER BY id) TO STDOUT WITH (FORMAT BINARY)"
        )
        with cursor.copy(query) as copy:
            copy.set_types(types)
            for template_id, subject_id, vector in copy.rows():
                ids.append(template_id)
                subjects.append(subject_id)
                vectors.append(vector.to_numpy())
    if not ids:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
    return np.array(ids, np.int64), np.array(subjects, np.int64), np.stack(vectors).astype(np.float32, copy=False)
