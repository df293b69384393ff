"""Errors raised by mlcore. Each message says what went wrong and what to do about it."""


class MlcoreError(Exception):
    """Base class for every error mlcore raises on purpose."""


class ModelUnavailableError(MlcoreError):
    """A model (CLIP, GPT-2, tokenizer) could not be found locally or downloaded."""


class CheckpointError(MlcoreError):
    """A checkpoint is missing, corrupt, or does not match the architecture it claims."""


class EmbeddingSizeError(MlcoreError):
    """Embeddings of the wrong width were given to a model."""


class ImageDecodeError(MlcoreError):
    """An image could not be decoded."""


class DataError(MlcoreError):
    """A dataset file is missing, malformed or inconsistent."""


class MetricInputError(MlcoreError, ValueError):
    """Predictions and references (or embeddings) that cannot be scored together."""
