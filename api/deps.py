"""Names under which handlers receive the app's shared objects (provided in api/app.py)."""

from __future__ import annotations

import asyncpg
from litestar.di import NamedDependency

from api.settings import Settings as _Settings
from notifications.sms import SmsGateway

Pool = NamedDependency[asyncpg.Pool]
AppSettings = NamedDependency[_Settings]
Sms = NamedDependency[SmsGateway]
