"""The registry's errors and the ONE table that turns them into OCI error responses.

Storage operations raise these (or regtool's own errors); `error_response` renders any of
them as the spec's `{"errors": [{"code", "message", "detail"}]}` with the status from
`ERROR_TABLE`, the first matching class winning, so subclasses come before bases.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from regtool.errors import (
    DigestInvalid,
    ManifestInvalid,
    NameInvalid,
    NotFound,
    RegtoolError,
    StorageError,
    StorageFull,
    TransientError,
    Unreachable,
    UsageError,
)


class ApiError(RegtoolError):
    """A registry API failure with optional `detail` (any JSON value) and response
    `headers` (the handler that knows them adds them, e.g. an upload's `Range`)."""

    def __init__(self, message: str = "", detail: Any = None):
        super().__init__(message)
        self.detail = detail
        self.headers: dict[str, str] = {}


class BlobUnknown(ApiError, NotFound):
    pass


class BlobUploadUnknown(ApiError, NotFound):
    pass


class BlobUploadInvalid(ApiError):
    pass


class ManifestUnknown(ApiError, NotFound):
    pass


class ManifestBlobUnknown(ApiError):
    pass


class NameUnknown(ApiError, NotFound):
    pass


class TagInvalid(ApiError):
    pass


class DigestMismatch(ApiError, DigestInvalid):
    pass


class RangeInvalid(ApiError):
    """A chunk that does not continue the upload (a gap or an overlap); `size` is what the
    upload holds, for the `Range` header of the 416."""

    def __init__(self, message: str, size: int):
        super().__init__(message, {"size": size})
        self.size = size


class UploadBusy(RangeInvalid):
    """Another request is appending to (or completing) the upload: refused at once, as
    an out-of-order chunk is, not queued."""


class ManifestTooLarge(ApiError):
    pass


class SizeInvalid(ApiError):
    pass


class PaginationInvalid(ApiError):
    pass


class Unsupported(ApiError):
    """A method the endpoint does not have, or a write this registry does not take
    (read-only, deletes disabled): 405 with `Allow` naming the methods it takes."""

    def __init__(self, message: str, allow: list[str]):
        super().__init__(message)
        self.headers["Allow"] = ", ".join(allow)


class Unauthorized(ApiError):
    """No credentials, wrong ones, or a token without the scope: 401 with the challenge
    (`WWW-Authenticate`) that tells the client how to log in."""

    def __init__(self, message: str, challenge: str):
        super().__init__(message)
        self.headers["WWW-Authenticate"] = challenge


class Denied(ApiError):
    """A logged-in user without the access the request needs."""


class RouteUnknown(ApiError, NotFound):
    pass


class ShuttingDown(ApiError):
    """The server stopped before the request was done."""


class Unavailable(ApiError):
    """A health check fails (`health.py`): every request is refused meanwhile."""


#: regtool error class -> (OCI / distribution error code, HTTP status, default message).
ERROR_TABLE: list[tuple[type[BaseException], str, int, str]] = [
    (BlobUnknown, "BLOB_UNKNOWN", 404, "blob unknown to registry"),
    (BlobUploadUnknown, "BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry"),
    (BlobUploadInvalid, "BLOB_UPLOAD_INVALID", 400, "blob upload invalid"),
    (ManifestUnknown, "MANIFEST_UNKNOWN", 404, "manifest unknown"),
    (ManifestBlobUnknown, "MANIFEST_BLOB_UNKNOWN", 400, "blob unknown to registry"),
    (NameUnknown, "NAME_UNKNOWN", 404, "repository name not known to registry"),
    (TagInvalid, "TAG_INVALID", 400, "manifest tag did not match URI"),
    (RangeInvalid, "RANGE_INVALID", 416, "invalid content range"),
    (ManifestTooLarge, "SIZE_INVALID", 413, "manifest too large"),
    (SizeInvalid, "SIZE_INVALID", 400, "provided length did not match content length"),
    (PaginationInvalid, "PAGINATION_NUMBER_INVALID", 400, "invalid number of results"),
    (Unsupported, "UNSUPPORTED", 405, "the operation is unsupported"),
    (Unauthorized, "UNAUTHORIZED", 401, "authentication required"),
    (Denied, "DENIED", 403, "requested access to the resource is denied"),
    (RouteUnknown, "NOT_FOUND", 404, "no such endpoint"),
    (ShuttingDown, "UNAVAILABLE", 503, "the server is stopping"),
    (Unavailable, "UNAVAILABLE", 503, "service unavailable"),
    (DigestInvalid, "DIGEST_INVALID", 400, "provided digest did not match uploaded content"),
    (NameInvalid, "NAME_INVALID", 400, "invalid repository name"),
    (ManifestInvalid, "MANIFEST_INVALID", 400, "manifest invalid"),
    (NotFound, "NAME_UNKNOWN", 404, "repository name not known to registry"),
    (UsageError, "UNSUPPORTED", 400, "bad request"),
    (StorageFull, "UNKNOWN", 507, "storage is full: no space left on device"),
    (TransientError, "UNAVAILABLE", 503, "storage temporarily unavailable"),
    (Unreachable, "UNAVAILABLE", 503, "storage unreachable"),
    (StorageError, "UNKNOWN", 500, "storage error"),
    (RegtoolError, "UNKNOWN", 500, "unknown error"),
]


def classify(error: BaseException) -> tuple[str, int, str]:
    """(code, status, default message) for an error; unexpected errors are UNKNOWN/500."""
    for cls, code, status, message in ERROR_TABLE:
        if isinstance(error, cls):
            return code, status, message
    return "UNKNOWN", 500, "unknown error"


def error_response(error: BaseException) -> JSONResponse:
    """The OCI error body (`application/json`) for `error`, with its status and the
    headers an `ApiError` carries."""
    code, status, default = classify(error)
    # Storage messages name internal paths: say only the kind of failure to clients.
    internal = isinstance(error, StorageError) or not isinstance(error, RegtoolError)
    message = default if internal else (str(error) or default)
    detail = getattr(error, "detail", None)
    body = {"errors": [{"code": code, "message": message, "detail": detail}]}
    headers = error.headers if isinstance(error, ApiError) else {}
    return JSONResponse(body, status_code=status, headers=headers)
