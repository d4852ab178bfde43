"""FaceGate: self-hosted face authentication and recognition."""

__version__ = "0.1.0"
