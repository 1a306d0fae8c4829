"""Typed API errors.

Exception tree::

    ApiError              any non-success answer from the API server
     ├── NotFound         404
     ├── Conflict         409 (stale resourceVersion, or AlreadyExists)
     ├── Gone             410 (watch/list resourceVersion too old: relist)
     ├── Forbidden        403
     └── Invalid          422 (admission or schema rejected the request)
"""

from __future__ import annotations

import msgspec


class Status(msgspec.Struct, kw_only=True):
    """The ``meta.k8s.io/v1`` Status object the API server returns on errors."""

    code: int = 0
    reason: str = ""
    message: str = ""


_status_decoder = msgspec.json.Decoder(Status)


class ApiError(Exception):
    """The API server answered with an error status."""

    def __init__(self, code: int, reason: str = "", message: str = "") -> None:
        super().__init__(f"{code} {reason}: {message}" if reason or message else str(code))
        #: HTTP status code
        self.code = code
        #: Kubernetes ``Status.reason`` such as ``AlreadyExists``
        self.reason = reason
        #: Kubernetes ``Status.message``
        self.message = message

    @property
    def retryable(self) -> bool:
        """True for answers worth retrying unchanged: 429 and 5xx."""
        return self.code == 429 or self.code >= 500


class NotFound(ApiError):
    """The object (or its namespace) does not exist."""


class Conflict(ApiError):
    """Optimistic-concurrency conflict or AlreadyExists: re-read and try again."""


class Gone(ApiError):
    """The resourceVersion is too old (compacted): list again."""


class Forbidden(ApiError):
    """RBAC denied the request."""


class Invalid(ApiError):
    """The request was rejected by validation or admission."""


_BY_CODE: dict[int, type[ApiError]] = {404: NotFound, 409: Conflict, 410: Gone, 403: Forbidden, 422: Invalid}


def error_from_response(code: int, body: bytes) -> ApiError:
    """Build the typed error for an HTTP status code and response body."""
    try:
        status = _status_decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        status = Status(code=code)
    return _BY_CODE.get(code, ApiError)(code, status.reason, status.message)


def error_from_status(status: Status) -> ApiError:
    """Build the typed error for a Status carried inside a watch stream."""
    return _BY_CODE.get(status.code, ApiError)(status.code, status.reason, status.message)
