"""Model files: where they live, what they are, their licence, and their checksum."""

from facegate.models.registry import MODELS, ModelFile, locate, onnx_session, verified_path

__all__ = ["MODELS", "ModelFile", "locate", "onnx_session", "verified_path"]
