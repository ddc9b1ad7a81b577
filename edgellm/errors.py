"""The one exception type the CLI turns into a one-line error and a non-zero exit."""


class EdgeLLMError(Exception):
    """A user-facing error: bad input, a missing tool, a model that does not fit, ..."""


class CheckpointError(EdgeLLMError):
    """A checkpoint file is malformed, truncated or inconsistent with its config."""


class BoardError(EdgeLLMError):
    """An unknown board or an invalid board description."""
