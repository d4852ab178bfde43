"""Typed errors: every failure a caller can act on has its own class and a plain message.

The REST API maps these to problem+json, the CLI prints them without a traceback.
"""

from __future__ import annotations


class FaceGateError(Exception):
    """Base of every error FaceGate raises on purpose."""

    code: str = "facegate_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ImageError(FaceGateError):
    """The input could not be turned into an image."""

    code = "invalid_image"


class EmptyImageError(ImageError):
    code = "empty_image"


class CorruptImageError(ImageError):
    """Truncated or damaged data of a known image format."""

    code = "corrupt_image"


class NotAnImageError(ImageError):
    """The bytes are not any image format FaceGate reads."""

    code = "not_an_image"


class ImageTooLargeError(ImageError):
    """The file is over the byte limit, or its pixel count is over the pixel limit
    (a decompression bomb is refused before it is decoded)."""

    code = "image_too_large"


class ModelError(FaceGateError):
    code = "model_error"


class ModelNotFoundError(ModelError):
    code = "model_not_found"


class ModelChecksumError(ModelError):
    """A weight file does not have the sha256 FaceGate was built against."""

    code = "model_checksum_mismatch"


class ModelMismatchError(ModelError):
    """Two templates (or a template and a gallery) come from different models."""

    code = "model_mismatch"


class FaceError(FaceGateError):
    code = "face_error"


class NoFaceError(FaceError):
    code = "no_face"


class ManyFacesError(FaceError):
    code = "many_faces"


class NotFoundError(FaceGateError):
    """A gallery, subject, face or key that does not exist (or is not yours to see)."""

    code = "not_found"


class ConflictError(FaceGateError):
    """The request clashes with what is stored (an id already taken, a model mismatch)."""

    code = "conflict"


class InvalidRequestError(FaceGateError):
    code = "invalid_request"


class AuthenticationError(FaceGateError):
    code = "unauthenticated"


class PermissionDeniedError(FaceGateError):
    code = "forbidden"


class LockedOutError(FaceGateError):
    """Too many failed verifications of one identity: refused until an admin clears it."""

    code = "locked_out"


class SessionClosedError(FaceGateError):
    """A check-in outside the exam session's window."""

    code = "session_closed"


class ConfigurationError(FaceGateError):
    """A setting (``FACEGATE_*`` environment variable or ``.env`` entry) is invalid: refused at
    start-up, naming each bad variable, rather than failing later on a request."""

    code = "configuration_error"


class VideoError(FaceGateError):
    """A video that cannot be read: missing, empty, not a video, truncated, unsupported."""

    code = "invalid_video"


class StreamUnavailableError(VideoError):
    """A camera or stream URL that does not answer (or stopped answering and did not come back)."""

    code = "stream_unavailable"


class VideoTooLargeError(VideoError):
    """An uploaded clip over the size limit (FACEGATE_MAX_VIDEO_BYTES)."""

    code = "video_too_large"
