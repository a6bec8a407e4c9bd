"""HTTP errors of the collector, and how :mod:`anonymetry.errors` map onto HTTP statuses.

Every error body is JSON ``{"error": <code>, "detail": <what, naming the field>}`` and never
holds a value taken from the request.

=====================  ======  ========================
error                  status  ``error`` code
=====================  ======  ========================
SchemaViolation        400     ``invalid``
InvalidParameter       400     ``invalid``
PolicyError            400     ``invalid``
ConsentDenied          403     ``consent_denied``
BudgetExhausted        429     ``budget_exhausted``
ReleaseBlocked         409     ``release_blocked``
KeyUnavailable         410     ``key_unavailable``
TamperDetected         500     ``tamper_detected``
Overloaded             503     ``overloaded`` (``Retry-After``)
InternalError / other  500     ``internal``
=====================  ======  ========================

and, raised by the service itself: 400 ``malformed``, 401 ``unauthorized``, 403 ``forbidden``,
404 ``not_found``, 405 ``method_not_allowed``, 413 ``too_large``, 415 ``unsupported_media_type``.
"""

from __future__ import annotations

import math

import msgspec

from anonymetry.errors import (
    AnonymetryError,
    BudgetExhausted,
    ConsentDenied,
    InvalidParameter,
    KeyUnavailable,
    Overloaded,
    PolicyError,
    ReleaseBlocked,
    SchemaViolation,
    TamperDetected,
)

__all__ = ["HTTPError", "error_body", "from_anonymetry"]

MAX_RETRY_AFTER = 2


class HTTPError(Exception):
    """An HTTP answer that is an error; raised inside handlers, rendered by the app."""

    def __init__(self, status: int, error: str, detail: str,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = headers or []
        super().__init__(f"{status} {error}: {detail}")


def error_body(error: str, detail: str) -> bytes:
    return msgspec.json.encode({"error": error, "detail": detail})


_MAP: tuple[tuple[type[AnonymetryError], int, str], ...] = (
    (SchemaViolation, 400, "invalid"),
    (InvalidParameter, 400, "invalid"),
    (PolicyError, 400, "invalid"),
    (ConsentDenied, 403, "consent_denied"),
    (BudgetExhausted, 429, "budget_exhausted"),
    (ReleaseBlocked, 409, "release_blocked"),
    (KeyUnavailable, 410, "key_unavailable"),
    (TamperDetected, 500, "tamper_detected"),
)


def from_anonymetry(exc: AnonymetryError) -> HTTPError:
    """The HTTP error for one of our exceptions (messages hold no identifiers by contract)."""
    if isinstance(exc, Overloaded):
        retry = max(1, min(MAX_RETRY_AFTER, math.ceil(exc.retry_after)))
        return HTTPError(503, "overloaded", str(exc), [(b"retry-after", str(retry).encode())])
    for kind, status, code in _MAP:
        if isinstance(exc, kind):
            return HTTPError(status, code, str(exc))
    return HTTPError(500, "internal", "internal error; it was logged without request data")
