"""TOTP second factor (RFC 6238 via pyotp): enrolment URI, verification with ±1 step and no replay."""

from __future__ import annotations

import hmac
import time

import pyotp

STEP_S = 30
ISSUER = "Lienthong"


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, account_name: str) -> str:
    return pyotp.TOTP(secret, interval=STEP_S).provisioning_uri(name=account_name, issuer_name=ISSUER)


def matching_step(secret: str, code: str, last_used_step: int, now: float | None = None) -> int | None:
    """The time step ``code`` belongs to (current ±1, for phone clock skew), or None.

    A step at or before ``last_used_step`` is refused, so a code seen over a shoulder cannot be replayed.
    """
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, interval=STEP_S)
    current = int((time.time() if now is None else now) // STEP_S)
    found = None
    for step in (current - 1, current, current + 1):
        # compare every candidate (no early exit) so timing does not reveal which step matched
        if hmac.compare_digest(totp.generate_otp(step), code) and step > last_used_step:
            found = step
    return found
