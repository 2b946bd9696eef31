"""Exceptions: one class per API error code (docs/api.md, "Errors"), so a
notebook can ``except BudgetExhausted`` rather than compare strings.

Every API error carries the server's ``code``, ``status``, ``message`` and
``hint``. :class:`QueryRejected` also lists every reason the query was
refused for.
"""

from __future__ import annotations

from typing import Any, Mapping

__all__ = [
    "SluiceError",
    "ApiError",
    "BadRequest",
    "SchemaInvalid",
    "ManifestInvalid",
    "IngestRejected",
    "QueryRejected",
    "Unauthenticated",
    "Forbidden",
    "DatasetNotOpen",
    "NotFound",
    "Conflict",
    "PayloadTooLarge",
    "RateLimited",
    "BudgetExhausted",
    "InternalError",
    "UnexpectedResponse",
    "VerificationError",
    "JobFailed",
    "JobTimeout",
    "error_for",
]


class SluiceError(Exception):
    """Base class of every error this package raises."""


class VerificationError(SluiceError):
    """A release, checkpoint or audit log does not verify; the message
    says which check failed."""


class ApiError(SluiceError):
    """An error answered by the server: ``{"code", "message", "hint"?}``."""

    #: The stable error code (docs/api.md); set on each subclass.
    code: str = ""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        hint: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.hint = hint
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class BadRequest(ApiError):
    """400: malformed parameters or body, an unknown body field (named), a
    name that breaks the name rule."""

    code = "bad_request"


class SchemaInvalid(ApiError):
    """400: the dataset descriptor is invalid (all problems listed)."""

    code = "schema_invalid"


class ManifestInvalid(ApiError):
    """400: the manifest is invalid (the message lists every problem), or
    its ε is below the least a job may spend."""

    code = "manifest_invalid"


class IngestRejected(ApiError):
    """400: an upload failed a check; nothing was stored."""

    code = "ingest_rejected"


class QueryRejected(ApiError):
    """422: the query is outside what can be released with DP.

    ``reasons`` holds every reason, exactly as the estimate states them
    (:meth:`sluice.Client.submit` asks for them; a reason may itself
    contain ``;``, so the message is never split)."""

    code = "query_rejected"

    def __init__(self, message: str, *, reasons: list[str] | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.reasons: list[str] = list(reasons) if reasons else [message]

    def __str__(self) -> str:
        if len(self.reasons) > 1 or self.reasons != [self.message]:
            lines = "\n".join(f"  - {r}" for r in self.reasons)
            return f"{super().__str__()}\nreasons:\n{lines}"
        return super().__str__()


class Unauthenticated(ApiError):
    """401: missing or unknown token."""

    code = "unauthenticated"


class Forbidden(ApiError):
    """403: the role or grant does not allow this."""

    code = "forbidden"


class DatasetNotOpen(ApiError):
    """403: the dataset's open category forbids this."""

    code = "dataset_not_open"


class NotFound(ApiError):
    """404: absent, or not visible to the caller."""

    code = "not_found"


class Conflict(ApiError):
    """409: the name or version exists, a decision was already made, or the
    object is no longer in the state the request needs."""

    code = "conflict"


class PayloadTooLarge(ApiError):
    """413: body over the limit."""

    code = "payload_too_large"


class RateLimited(ApiError):
    """429: the token exceeded its request budget."""

    code = "rate_limited"


class BudgetExhausted(ApiError):
    """402: the job's ε exceeds what remains on a dataset (the user's grant
    or its cap) or of an agreement's budget; the message names which."""

    code = "budget_exhausted"


class InternalError(ApiError):
    """500: the operator log has the detail."""

    code = "internal"


class UnexpectedResponse(ApiError):
    """A response that is not what the API documents (no error body, or a
    body of another shape): a proxy in the way, or a server of another
    version."""

    code = "unexpected_response"


class JobFailed(SluiceError):
    """A submitted job ended without a release: ``job.state`` is
    ``rejected`` (by a reviewer or because it could not start), ``failed``
    or ``cancelled``; ``job.message`` says why."""

    def __init__(self, job: Any) -> None:
        self.job = job
        why = f": {job.message}" if getattr(job, "message", None) else ""
        super().__init__(f"job {job.id} ended {job.state}{why}")


class JobTimeout(SluiceError):
    """A job did not end within the time the caller was willing to wait;
    ``job`` is its last view (it goes on running on the server)."""

    def __init__(self, job: Any, waited: float) -> None:
        self.job = job
        super().__init__(
            f"job {job.id} is still {job.state} after {waited:.0f} s; "
            f"follow it with client.wait({job.id!r})"
        )


_BY_CODE: dict[str, type[ApiError]] = {
    cls.code: cls
    for cls in (
        BadRequest,
        SchemaInvalid,
        ManifestInvalid,
        IngestRejected,
        QueryRejected,
        Unauthenticated,
        Forbidden,
        DatasetNotOpen,
        NotFound,
        Conflict,
        PayloadTooLarge,
        RateLimited,
        BudgetExhausted,
        InternalError,
    )
}


def error_for(status: int, body: Any) -> ApiError:
    """The typed exception for an error response (``body`` as parsed JSON,
    or anything else when the server sent no error body)."""
    if isinstance(body, Mapping) and isinstance(body.get("code"), str) and isinstance(
        body.get("message"), str
    ):
        code = body["code"]
        hint = body.get("hint") if isinstance(body.get("hint"), str) else None
        cls = _BY_CODE.get(code)
        if cls is None:
            # A code newer than this client: still an API error, with its code.
            return ApiError(body["message"], status=status, hint=hint, code=code)
        return cls(body["message"], status=status, hint=hint)
    return UnexpectedResponse(f"server answered {status} without an error body", status=status)
