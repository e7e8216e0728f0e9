"""One error type carrying the HTTP status; its message is what the client reads."""

from __future__ import annotations


class ModelServeError(Exception):
    """Base error: `status_code` picks the response status, `str(err)` is the `{"error": ...}` text."""

    status_code = 500

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        if status_code is not None:
            self.status_code = status_code

    @property
    def message(self) -> str:
        return str(self)


class BadRequest(ModelServeError):
    status_code = 400


class Unauthorized(ModelServeError):
    status_code = 401


class NotFound(ModelServeError):
    status_code = 404


class PayloadTooLarge(ModelServeError):
    status_code = 413


class RateLimited(ModelServeError):
    status_code = 429

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


class Overloaded(ModelServeError):
    status_code = 503


class PredictTimeout(ModelServeError):
    status_code = 504


class ModelFailed(ModelServeError):
    status_code = 500


class ModelLoadError(Exception):
    """The model cannot be served; the process exits 1 with this one-line reason."""


class WarmupFailed(ModelLoadError):
    """The model loaded but its warm-up prediction failed; the process exits 5 and never turns ready."""


class FetchError(Exception):
    """Download failed (exit 4)."""


class DigestMismatch(FetchError):
    """Downloaded bytes do not match the expected SHA-256 (exit 3)."""
