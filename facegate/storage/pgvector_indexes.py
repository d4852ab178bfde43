"""pgvector's HNSW indexes, built only where something reads them.

Until migration 0007 every PostgreSQL database carried an HNSW graph per model (m=32,
ef_construction=200), yet since the in-process index became the default
(``FACEGATE_SEARCH_INDEX=memory``) only ``search_index="pgvector"`` reads it, while every
template write kept paying for it: importing 20,000 synthetic templates row by row took 45 s
without the graphs and had not finished after nine minutes with them (the backend at full CPU
inside the INSERT). 0007 drops the graphs; a service
on ``search_index="pgvector"`` builds them when it starts (or at its first search), once, under
an advisory lock so that several workers starting together do not race.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import text
from sqlalchemy.engine import Connection

logger = logging.getLogger(__name__)

# One partial index per model dimension, as revisions 0001 and 0003 made them.
PGVECTOR_INDEXES = {"arcface": 512, "dlib": 128}
GRAPH_DEGREE = 32
BUILD_CANDIDATES = 200
_LOCK_KEY = 0x46470007  # pg_advisory_xact_lock key: "FG", revision 7


def index_name(model: str) -> str:
    return f"ix_face_templates_hnsw_{model}"


def existing_pgvector_indexes(connection: Connection) -> set[str]:
    names = connection.execute(text("SELECT indexname FROM pg_indexes WHERE tablename = 'face_templates'")).scalars()
    return {n for n in names if n in {index_name(m) for m in PGVECTOR_INDEXES}}


def ensure_pgvector_indexes(connection: Connection) -> list[str]:
    """Create the HNSW indexes that are missing (in ``connection``'s transaction); returns the
    ones built. On a large table this takes minutes: it is logged."""
    connection.execute(text(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})"))
    missing = [m for m in PGVECTOR_INDEXES if index_name(m) not in existing_pgvector_indexes(connection)]
    for model in missing:
        started = time.monotonic()
        logger.info("building pgvector's HNSW index for %s templates (search_index=pgvector)", model)
        connection.execute(
            text(
                f"CREATE INDEX IF NOT EXISTS {index_name(model)} ON face_templates "
                f"USING hnsw ((vector::vector({PGVECTOR_INDEXES[model]})) vector_cosine_ops) "
                f"WITH (m = {GRAPH_DEGREE}, ef_construction = {BUILD_CANDIDATES}) WHERE model_id = '{model}'"
            )
        )
        logger.info("pgvector index for %s built in %.1f s", model, time.monotonic() - started)
    return [index_name(m) for m in missing]
