"""Video: frame sources, tracking, identity per track, events, annotated output, and enrollment
from a short clip. Built on the gallery's frame-level entry points (no photo re-encoding)."""
