"""Video events: a track named, an unknown face in view too long, a track conflict, a track ended.

Each event is a plain dict (JSON-ready) handed to every sink: a JSON-lines file (flushed per
line, so a stopped run keeps what it saw) or a list in memory (a run's report, API jobs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

Event = dict[str, Any]


class EventSink(Protocol):
    def emit(self, event: Event) -> None: ...


class JsonLinesSink:
    """Events appended to a file, one JSON object per line."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file = self.path.open("a", encoding="utf-8")

    def emit(self, event: Event) -> None:
        self._file.write(json.dumps(event, default=float) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class ListSink:
    """Events kept in memory (a job's result)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

