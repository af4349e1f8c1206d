"""Inference errors, protocol-neutral: each knows its HTTP status, SageMaker error type and gRPC code.

Errors travel from model replicas to the router and gateway as values (not exceptions), so Ray's
exception wrapping never turns a client mistake into a 5xx.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

MAX_MESSAGE = 1024  # characters: whatever a message quotes, it stays far under gRPC's 8 KB status limit


def quote(value, limit: int = 80) -> str:
    """A client-supplied value for an error message: repr'd, at most `limit` characters of it."""
    text = value if isinstance(value, str) else str(value)
    return repr(text if len(text) <= limit else f"{text[:limit]}...")


@dataclass(frozen=True)
class InferenceError:
    """A failed request: what went wrong, said so a user can fix it (the message is cut at MAX_MESSAGE)."""

    status: int
    error_type: str  # SageMaker's x-amzn-ErrorType
    grpc_code: str  # grpc.StatusCode name
    message: str

    def __post_init__(self):
        if len(self.message) > MAX_MESSAGE:
            object.__setattr__(self, "message", self.message[:MAX_MESSAGE - 3] + "...")

    def __str__(self) -> str:
        return self.message


class FerryError(Exception):
    """Raised inside one process; converted to an InferenceError at the boundary."""

    def __init__(self, error: InferenceError):
        super().__init__(error.message)
        self.error = error


def bad_request(message: str) -> InferenceError:
    return InferenceError(400, "ValidationError", "INVALID_ARGUMENT", message)


def not_found(message: str) -> InferenceError:
    return InferenceError(404, "ValidationError", "NOT_FOUND", message)


def unsupported_media(message: str) -> InferenceError:
    return InferenceError(415, "ValidationError", "INVALID_ARGUMENT", message)


def not_acceptable(message: str) -> InferenceError:
    return InferenceError(406, "ValidationError", "INVALID_ARGUMENT", message)


def too_large(message: str) -> InferenceError:
    return InferenceError(413, "ValidationError", "RESOURCE_EXHAUSTED", message)


def unauthorized(message: str) -> InferenceError:
    return InferenceError(401, "UnauthorizedOperation", "UNAUTHENTICATED", message)


def model_error(message: str) -> InferenceError:
    return InferenceError(424, "ModelError", "INTERNAL", message)


def unavailable(message: str) -> InferenceError:
    return InferenceError(503, "ServiceUnavailable", "UNAVAILABLE", message)


def throttled(message: str) -> InferenceError:
    return InferenceError(429, "ThrottlingException", "RESOURCE_EXHAUSTED", message)


def model_not_ready(message: str) -> InferenceError:
    """SageMaker's ModelNotReadyException: a serverless replica still starting; the caller retries."""
    return InferenceError(429, "ModelNotReadyException", "UNAVAILABLE", message)


def internal_error(logger: logging.Logger, what: str) -> InferenceError:
    """Inside an `except`: log the traceback under a new incident id; the 500 says only that id."""
    incident = uuid.uuid4().hex[:12]
    logger.exception("internal error %s in %s", incident, what)
    return InferenceError(500, "InternalFailure", "INTERNAL", f"internal error {incident}")
