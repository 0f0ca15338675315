"""Access tokens from our own issuer for each staff role, so catalogue tests need no argon2 sign-in per test (the
sign-in journey itself is covered in tests/api)."""

from __future__ import annotations

import uuid

import pytest

from api.auth.principal import Principal, Role, issue_access_token
from api.settings import Settings


def headers_for(settings: Settings, role: Role) -> dict[str, str]:
    principal = Principal(account_id=uuid.uuid4(), role=role,
                          patient_id=uuid.uuid4() if role == "patient" else None)
    return {"Authorization": f"Bearer {issue_access_token(principal, settings)}"}


@pytest.fixture
def doctor(settings: Settings) -> dict[str, str]:
    return headers_for(settings, "doctor")


@pytest.fixture
def admin(settings: Settings) -> dict[str, str]:
    return headers_for(settings, "admin")
