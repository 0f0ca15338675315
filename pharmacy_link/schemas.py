"""Wire shapes of the pharmacy registry."""

from __future__ import annotations

from uuid import UUID

import msgspec


class PharmacyStaffMember(msgspec.Struct):
    account_id: UUID
    full_name: str
    has_pharmacist_degree: bool
