"""Typed domain errors. Handlers map these to HTTP once; services never see botocore."""


class DeflectError(Exception):
    """Base of every error the domain raises on purpose."""

    code = "error"
    public_message = "request failed"

    def __init__(self, detail: str = "", **context: object) -> None:
        super().__init__(detail or self.public_message)
        self.detail = detail or self.public_message
        self.context = context


class InvalidTenant(DeflectError):
    code = "invalid_tenant"
    public_message = "tenant id is not valid"


class TenantNotFound(DeflectError):
    code = "not_found"
    public_message = "not found"


class NotFound(DeflectError):
    code = "not_found"
    public_message = "not found"


class SignatureInvalid(DeflectError):
    code = "unauthorized"
    public_message = "signature invalid"


class Unauthorized(DeflectError):
    code = "unauthorized"
    public_message = "unauthorized"


class Forbidden(DeflectError):
    code = "forbidden"
    public_message = "forbidden"


class Conflict(DeflectError):
    """Optimistic-lock failure, duplicate create, or a decided task."""

    code = "conflict"
    public_message = "conflict"


class Gone(DeflectError):
    code = "gone"
    public_message = "gone"


class PayloadTooLarge(DeflectError):
    code = "payload_too_large"
    public_message = "payload too large"


class MalformedPayload(DeflectError):
    code = "malformed_payload"
    public_message = "malformed payload"


class Throttled(DeflectError):
    """The backend (or our own rate limit) said slow down; safe to retry later."""

    code = "throttled"
    public_message = "too many requests"

    def __init__(self, detail: str = "", retry_after_s: float = 1.0, **context: object) -> None:
        super().__init__(detail, **context)
        self.retry_after_s = retry_after_s


class TransientFailure(DeflectError):
    """A dependency failed in a way that a retry may fix."""

    code = "unavailable"
    public_message = "temporarily unavailable"


class EvidenceTampered(DeflectError):
    code = "evidence_tampered"
    public_message = "evidence does not match its recorded hash"
