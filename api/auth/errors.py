"""Sign-in problems. Messages tell the user what to do next without revealing which part was wrong."""

from __future__ import annotations

from api.errors import DomainError, FieldError, ServiceUnavailable


class InvalidPhone(DomainError):
    status, slug, title = 422, "invalid-phone", "Invalid phone number"

    def __init__(self, message: str) -> None:
        super().__init__(message, errors=[FieldError("body.phone", message)])


class OtpInvalid(DomainError):
    status, slug, title = 401, "otp-invalid", "Wrong code"


class OtpExpired(DomainError):
    status, slug, title = 401, "otp-expired", "Code expired"


class OtpThrottled(DomainError):
    status, slug, title = 429, "otp-throttled", "Too many codes requested"

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)}, extra={"retry_after": retry_after_s})


class SmsUnavailable(ServiceUnavailable):
    slug, title = "sms-unavailable", "SMS could not be sent"


class InvalidCredentials(DomainError):
    status, slug, title = 401, "invalid-credentials", "Sign-in failed"


class SecondFactorRequired(DomainError):
    status, slug, title = 401, "totp-required", "Authenticator code required"


class AccountLocked(DomainError):
    status, slug, title = 429, "account-locked", "Account temporarily locked"

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(
            "Too many failed sign-ins. Try again later or ask an administrator to unlock the account.",
            headers={"Retry-After": str(retry_after_s)}, extra={"retry_after": retry_after_s},
        )


class RefreshTokenInvalid(DomainError):
    status, slug, title = 401, "refresh-token-invalid", "Session expired"


class RefreshTokenReused(DomainError):
    status, slug, title = 401, "refresh-token-reused", "Session revoked"


class TotpNotPending(DomainError):
    status, slug, title = 409, "totp-not-pending", "No enrolment in progress"
