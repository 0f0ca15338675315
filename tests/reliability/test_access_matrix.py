"""Who may call what: every HTTP route of the real app × every kind of caller, against one demo database.

``RULES`` holds one explicit rule per route (method + path template). A route without a rule fails
``test_every_route_has_a_rule``, naming it, so a new endpoint cannot land without saying who may call it.

Kinds of rule:
* ``public()``: anyone, signed in or not.
* ``roles(...)``: the guard's roles. Anonymous callers get 401, other roles 403, the listed roles get through
  (any status but 401/403: a 422 for an empty body still proves the guard let the request in).
* ``owner(roles, owners)``: the guard's roles, then an object-level rule in the service: of the callers with those
  roles only ``owners`` reach the object (not 401/403/404); the others are denied with ``denied`` (404 where ids must
  not be probeable, 403 for "another pharmacy").

Litestar's automatic OPTIONS answers are not listed: CORS preflights are answered before any route
(api/security.py, tests/reliability/test_access_headers.py).

The objects (consultations, prescriptions, a dispense, a payment...) are made once through the API or the test
factories on top of the demo data (api/demo.py). For each route the callers who should be denied go first, so an
allowed caller's change (a cancellation, a void) cannot hide a denial.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from litestar import Litestar
from litestar.routes import HTTPRoute, WebSocketRoute

from api.app import create_app
from api.auth.principal import Principal, issue_access_token
from api.demo import PHARMACY_ID
from api.settings import Settings
from tests.consultations.factories import make_consultation
from tests.eprescription.prescribing import draft, line, patient_headers, signing_code, staff_headers
from tests.helpers import Client, make_patients
from tests.reliability.access_support import app_running, client_from

pytestmark = pytest.mark.usefixtures("demo")

ACTORS: tuple[str, ...] = ("anonymous", "patient", "other_patient", "guardian", "doctor", "other_doctor",
                           "pharmacist", "other_pharmacist", "admin")
ROLE_OF = {"patient": "patient", "other_patient": "patient", "guardian": "patient", "doctor": "doctor",
           "other_doctor": "doctor", "pharmacist": "pharmacist", "other_pharmacist": "pharmacist", "admin": "admin"}
ALL_ROLES = frozenset({"patient", "doctor", "pharmacist", "admin"})
HUNG, MAI = "+84987654321", "+84912345678"
OTHER_PHARMACY_ID = UUID("6c1f7e2a-0000-4000-8000-000000000002")  # a demo pharmacy without ds.hoa

Body = Callable[["World"], Any] | Any


@dataclass(frozen=True)
class Rule:
    roles: frozenset[str] | None  # None: public
    owners: frozenset[str] | None = None  # object-level: only these actors reach the object
    denied: tuple[int, ...] = (404,)  # how an in-role non-owner is refused
    params: Mapping[str, str] = field(default_factory=dict)  # path parameter -> World attribute or literal
    query: Mapping[str, str] = field(default_factory=dict)
    body: Body = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def expected(self, actor: str) -> str:
        """"allow", "deny-auth" (401), "deny-role" (403) or "deny-owner"."""
        if self.roles is None:
            return "allow"
        if actor == "anonymous":
            return "deny-auth"
        if ROLE_OF[actor] not in self.roles:
            return "deny-role"
        if self.owners is not None and actor not in self.owners:
            return "deny-owner"
        return "allow"


def public(**kw: Any) -> Rule:
    return Rule(roles=None, **kw)


def roles(*names: str, **kw: Any) -> Rule:
    return Rule(roles=frozenset(names), **kw)


def owner(roles_: tuple[str, ...], owners: tuple[str, ...], **kw: Any) -> Rule:
    return Rule(roles=frozenset(roles_), owners=frozenset(owners), **kw)


STAFF = ("doctor", "pharmacist", "admin")
SIGNED_IN = ("patient", "doctor", "pharmacist", "admin")
RX_READERS = ("admin", "doctor", "patient")
PHARMACY_STAFF = ("pharmacist", "admin")

# The WebSocket route is not an HTTP request/response: a join token in the first frame decides who joins (the booked
# patient/guardian or the treating doctor). Proven by tests/rtc/test_signaling.py
# (test_refused_joins_close_with_the_right_code_and_are_audited, test_a_socket_that_does_not_join_first_is_closed_4400)
# and tests/rtc/test_join_token.py (who may get a token).
WEBSOCKET_RULES = {"/ws/consultations/{consultation_id:uuid}": "join token (first frame) of a participant"}

# Order matters only for changes: reads first, then writes, then what ends an object (cancel, void, discard, revoke).
RULES: dict[tuple[str, str], Rule] = {
    # ------------------------------------------------------------------ public pages and documents
    ("GET", "/health/live"): public(),
    ("GET", "/health/ready"): public(),
    ("GET", "/"): public(),
    ("GET", "/docs"): public(),
    ("GET", "/docs/assets/{file_path:path}"): public(params={"file_path": "=swagger-ui.css"}),
    ("HEAD", "/docs/assets/{file_path:path}"): public(params={"file_path": "=swagger-ui.css"}),
    ("GET", "/console"): public(),
    ("GET", "/console/{file_path:path}"): public(params={"file_path": "=index.html"}),
    ("HEAD", "/console/{file_path:path}"): public(params={"file_path": "=index.html"}),
    ("GET", "/schema"): public(),
    ("GET", "/schema/openapi.json"): public(),
    ("GET", "/schema/swagger"): public(),
    ("GET", "/schema/oauth2-redirect.html"): public(),
    ("GET", "/schema/{path:str}"): public(params={"path": "=nothing-here"}),
    ("GET", "/dev/inbox"): public(),  # demo mode with a local sandbox only (tests/notifications/test_dev_inbox.py)
    ("GET", "/consent-documents"): public(),
    ("GET", "/doctors"): public(),
    ("GET", "/doctors/{doctor_id:uuid}"): public(params={"doctor_id": "doctor_id"}),
    ("GET", "/doctors/{doctor_id:uuid}/slots"): public(params={"doctor_id": "doctor_id"}),
    ("GET", "/pharmacies/{pharmacy_id:uuid}"): public(params={"pharmacy_id": "pharmacy_id"}),
    ("GET", "/prescriptions/signing-keys"): public(),
    ("GET", "/payments/vnpay/ipn"): public(),  # VNPay's checksum decides, not a token
    ("GET", "/payments/vnpay/return"): public(),
    # ------------------------------------------------------------------ sign-in (bodies left empty: 400/422)
    ("POST", "/auth/login"): public(body={}),
    ("POST", "/auth/refresh"): public(body={}),
    ("POST", "/auth/otp/request"): public(body={}),
    ("POST", "/auth/otp/verify"): public(body={}),
    ("POST", "/pharmacies/token"): public(body={}),
    ("POST", "/auth/logout"): roles(*SIGNED_IN, body={}),
    ("POST", "/auth/totp/enrol"): roles(*STAFF),
    ("POST", "/auth/totp/confirm"): roles(*STAFF, body={}),
    # ------------------------------------------------------------------ accounts and patients
    ("GET", "/me"): roles(*SIGNED_IN),
    ("GET", "/me/access-log"): roles("patient"),
    ("GET", "/me/dependents"): roles("patient"),
    ("POST", "/me/dependents"): roles("patient", body={}),
    ("GET", "/me/consents"): roles("patient"),
    ("GET", "/me/data-export"): roles("patient"),
    ("GET", "/patients/{patient_id:uuid}/data-export"): owner(("patient",), ("guardian",),
                                                             params={"patient_id": "child_id"}),
    ("POST", "/me/erasure"): roles("patient", body={}),  # without the confirmation words: 422, nothing erased
    ("PATCH", "/me/profile"): roles("patient", body={}),
    ("POST", "/me/consents"): owner(("patient",), ("guardian",), body=lambda w: {
        "kind": "telemedicine_terms", "version": "2026-01", "granted": True, "patient_id": w.child_id}),
    ("GET", "/patients/{patient_id:uuid}"): owner(("patient",), ("guardian",), params={"patient_id": "child_id"}),
    ("PATCH", "/patients/{patient_id:uuid}"): owner(("patient",), ("guardian",), params={"patient_id": "child_id"},
                                                    body={"full_name": "Trần Gia Bảo"}),
    ("POST", "/admin/accounts"): roles("admin", body={}),
    # ------------------------------------------------------------------ doctors and schedules
    ("GET", "/doctors/me/queue"): roles("doctor"),
    ("GET", "/doctors/me/schedule"): roles("doctor"),
    ("PUT", "/doctors/me/schedule/weekly"): roles("doctor", body={}),
    ("POST", "/doctors/me/schedule/exceptions"): roles("doctor", body={}),
    ("PATCH", "/doctors/me/profile"): roles("doctor", body={}),
    ("DELETE", "/doctors/me/schedule/exceptions/{exception_id:uuid}"): owner(
        ("doctor",), ("doctor",), params={"exception_id": "exception_id"}),
    ("GET", "/icd10"): roles(*SIGNED_IN, query={"q": "J00"}),
    # ------------------------------------------------------------------ consultations (bs.lan with Hùng or Mai's child)
    ("GET", "/consultations"): roles("patient"),
    ("POST", "/consultations"): roles("patient", body={}),
    ("GET", "/consultations/{consultation_id:uuid}"): owner(
        ("doctor", "patient"), ("guardian", "doctor"), params={"consultation_id": "child_consultation"}),
    ("GET", "/consultations/{consultation_id:uuid}/summary"): owner(
        ("doctor", "patient"), ("guardian", "doctor"), params={"consultation_id": "child_consultation"}),
    ("GET", "/consultations/{consultation_id:uuid}/record"): owner(
        ("doctor",), ("doctor",), params={"consultation_id": "child_consultation"}),
    ("PUT", "/consultations/{consultation_id:uuid}/record"): owner(
        ("doctor",), ("doctor",), params={"consultation_id": "child_consultation"}, body={"advice": "Uống nhiều nước"}),
    ("GET", "/consultations/{consultation_id:uuid}/patient-history"): owner(
        ("doctor",), ("doctor",), params={"consultation_id": "child_consultation"}),
    ("POST", "/consultations/{consultation_id:uuid}/join-token"): owner(
        ("doctor", "patient"), ("patient", "doctor"), params={"consultation_id": "consultation"}),
    ("POST", "/consultations/{consultation_id:uuid}/quality"): owner(
        ("doctor", "patient"), ("patient", "doctor"), params={"consultation_id": "consultation"},
        body={"rtt_ms": 80}),
    ("GET", "/consultations/{consultation_id:uuid}/recording"): owner(
        ("doctor", "patient"), ("patient", "doctor"), params={"consultation_id": "consultation"}),
    ("POST", "/consultations/{consultation_id:uuid}/recording/consent"): owner(
        ("doctor", "patient"), ("patient", "doctor"), params={"consultation_id": "consultation"},
        body={"granted": False}),
    ("POST", "/consultations/{consultation_id:uuid}/recording/offer"): owner(
        ("doctor", "patient"), ("patient", "doctor"), params={"consultation_id": "consultation"},
        body={"type": "offer", "sdp": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"}),
    ("POST", "/consultations/{consultation_id:uuid}/recording/stop"): owner(
        ("doctor",), ("doctor",), params={"consultation_id": "consultation"}),
    ("POST", "/consultations/{consultation_id:uuid}/check-in"): owner(
        ("patient",), ("patient",), params={"consultation_id": "consultation"}),
    ("POST", "/consultations/{consultation_id:uuid}/start"): owner(
        ("doctor",), ("doctor",), params={"consultation_id": "consultation"}),
    ("POST", "/consultations/{consultation_id:uuid}/no-show"): owner(
        ("doctor",), ("doctor",), params={"consultation_id": "consultation"}),
    ("POST", "/payments/consultations/{consultation_id:uuid}"): owner(
        ("patient",), ("patient",), params={"consultation_id": "consultation"}),
    ("POST", "/consultations/{consultation_id:uuid}/cancel"): owner(
        ("doctor", "patient"), ("patient", "doctor"), params={"consultation_id": "consultation"},
        body={"reason": "Thử quyền"}),
    ("POST", "/consultations/{consultation_id:uuid}/complete"): owner(
        ("doctor",), ("doctor",), params={"consultation_id": "consultation"}),
    ("GET", "/rtc/precall/{session_id:uuid}"): roles("patient", params={"session_id": "unknown_id"}),
    ("POST", "/rtc/precall"): roles("patient", body={}),
    # ------------------------------------------------------------------ drug catalogue
    ("GET", "/drugs"): roles(*STAFF, query={"q": "para"}),
    ("GET", "/drugs/sources"): roles(*STAFF),
    ("GET", "/drugs/{drug_id:uuid}"): roles(*STAFF, params={"drug_id": "drug_id"}),
    ("GET", "/drugs/{drug_id:uuid}/interactions"): roles(*STAFF, params={"drug_id": "drug_id"}),
    ("POST", "/admin/drugs/import"): roles("admin", body=b"", headers={"content-type": "text/csv"}),
    # ------------------------------------------------------------------ prescriptions (Hùng's, by bs.lan)
    ("GET", "/prescriptions"): roles(*RX_READERS),
    ("GET", "/prescriptions/{rx_id:uuid}"): owner(RX_READERS, ("patient", "doctor", "admin"),
                                                  params={"rx_id": "rx_id"}),
    ("GET", "/prescriptions/{rx_id:uuid}/signature"): owner(RX_READERS, ("patient", "doctor", "admin"),
                                                            params={"rx_id": "rx_id"}),
    ("GET", "/prescriptions/{rx_id:uuid}/qr"): owner(RX_READERS, ("patient", "doctor", "admin"),
                                                     params={"rx_id": "rx_id"}),
    ("GET", "/prescriptions/{rx_id:uuid}/qr.png"): owner(RX_READERS, ("patient", "doctor", "admin"),
                                                         params={"rx_id": "rx_id"}),
    ("GET", "/prescriptions/{rx_id:uuid}/qr.svg"): owner(RX_READERS, ("patient", "doctor", "admin"),
                                                         params={"rx_id": "rx_id"}),
    ("GET", "/pharmacies/nearby"): owner(SIGNED_IN, ("patient",), query={
        "lat": "10.7546", "lng": "106.6633", "radius_km": "5", "prescription_id": "@rx_id"}),
    ("POST", "/prescriptions/qr-check"): roles(*STAFF, body={}),
    ("POST", "/prescriptions/dry-run"): roles("doctor", body={}),
    ("POST", "/prescriptions/signed"): roles("doctor", body={}),  # objects: tests/eprescription/test_write_and_sign.py
    ("POST", "/prescriptions"): owner(("doctor",), ("doctor",), denied=(403,), body=lambda w: {
        "consultation_id": w.draft_consultation, "lines": [w.paracetamol_line],
        "diagnoses": [{"code": "J00", "conclusion": "Cảm lạnh"}]}),
    ("GET", "/prescriptions/{rx_id:uuid}/checks"): owner(("doctor",), ("doctor",), params={"rx_id": "draft_id"}),
    ("PATCH", "/prescriptions/{rx_id:uuid}"): owner(("doctor",), ("doctor",), params={"rx_id": "draft_id"},
                                                    body={}),
    ("POST", "/prescriptions/{rx_id:uuid}/amend"): owner(("doctor",), ("doctor",), params={"rx_id": "rx_id"}),
    # ------------------------------------------------------------------ vaccinations (Mai's child, seen by bs.lan)
    ("GET", "/vaccines"): roles(*SIGNED_IN),
    ("GET", "/patients/{patient_id:uuid}/vaccinations"): owner(
        ("doctor", "patient"), ("guardian", "doctor"), params={"patient_id": "child_id"}),
    ("POST", "/patients/{patient_id:uuid}/vaccinations"): owner(
        ("doctor", "patient"), ("guardian", "doctor"), params={"patient_id": "child_id"},
        body=lambda w: {"vaccine": "BCG", "dose_number": 1, "given_on": str(date.today() - timedelta(days=100))}),
    ("POST", "/patients/{patient_id:uuid}/vaccinations/{dose_id:uuid}/entered-in-error"): owner(
        ("doctor", "patient"), ("guardian", "doctor"), params={"patient_id": "child_id", "dose_id": "dose_id"},
        body={"reason": "Nhập nhầm mũi"}),
    # ------------------------------------------------------------------ notifications and devices
    ("GET", "/notifications"): roles(*SIGNED_IN),
    ("GET", "/notifications/preferences"): roles(*SIGNED_IN),
    ("PUT", "/notifications/preferences"): roles(*SIGNED_IN, body={}),
    ("GET", "/notifications/devices"): roles(*SIGNED_IN),
    ("POST", "/notifications/devices"): roles(*SIGNED_IN, body={}),
    ("POST", "/notifications/{notification_id:uuid}/opened"): owner(
        SIGNED_IN, ("patient",), params={"notification_id": "notification_id"}),
    ("DELETE", "/notifications/devices/{device_id:uuid}"): owner(
        SIGNED_IN, ("patient",), params={"device_id": "device_id"}),
    ("GET", "/admin/notifications"): roles("admin"),
    ("GET", "/admin/notifications/counts"): roles("admin"),
    ("POST", "/admin/notifications/{notification_id:uuid}/requeue"): roles(
        "admin", params={"notification_id": "notification_id"}),
    # ------------------------------------------------------------------ pharmacies (ds.hoa's demo pharmacy)
    ("GET", "/pharmacies/{pharmacy_id:uuid}/pharmacists"): owner(
        PHARMACY_STAFF, ("pharmacist", "admin"), denied=(403,), params={"pharmacy_id": "pharmacy_id"}),
    ("GET", "/pharmacies/{pharmacy_id:uuid}/stock"): owner(
        PHARMACY_STAFF, ("pharmacist", "admin"), denied=(403,), params={"pharmacy_id": "pharmacy_id"}),
    ("PUT", "/pharmacies/{pharmacy_id:uuid}/stock"): owner(
        ("pharmacist",), ("pharmacist",), denied=(403,), params={"pharmacy_id": "pharmacy_id"}, body={"items": []}),
    ("GET", "/pharmacies/{pharmacy_id:uuid}/api-keys"): owner(
        PHARMACY_STAFF, ("pharmacist", "admin"), denied=(403,), params={"pharmacy_id": "pharmacy_id"}),
    ("POST", "/pharmacies/{pharmacy_id:uuid}/api-keys"): owner(
        PHARMACY_STAFF, ("pharmacist", "admin"), denied=(403,), params={"pharmacy_id": "pharmacy_id"},
        body={"label": "Máy quầy thử quyền"}),
    ("POST", "/pharmacies/{pharmacy_id:uuid}/api-keys/{key_id:uuid}/rotate"): owner(
        PHARMACY_STAFF, ("pharmacist", "admin"), denied=(403,),
        params={"pharmacy_id": "pharmacy_id", "key_id": "api_key_id"}, body={"overlap_s": 60}),
    ("POST", "/admin/pharmacies"): roles("admin", body={}),
    ("PATCH", "/admin/pharmacies/{pharmacy_id:uuid}"): roles("admin", params={"pharmacy_id": "pharmacy_id"},
                                                             body={"phone": "02838550001"}),
    ("POST", "/admin/pharmacies/{pharmacy_id:uuid}/pharmacists"): roles(
        "admin", params={"pharmacy_id": "pharmacy_id"}, body={}),
    # ------------------------------------------------------------------ dispensing (Mai's child's prescription)
    ("POST", "/dispensing/verify"): roles("pharmacist", body=lambda w: {"code": w.child_rx_code}),
    ("POST", "/dispensing/qr-scan"): roles("pharmacist", body={}),
    ("POST", "/dispensing/prescriptions/{code:str}/hold"): roles("pharmacist", params={"code": "child_rx_code"}),
    ("POST", "/dispensing/prescriptions/{code:str}/release"): roles("pharmacist", params={"code": "child_rx_code"}),
    ("POST", "/dispensing/prescriptions/{code:str}/dispenses"): roles(
        "pharmacist", params={"code": "child_rx_code"}, body={}),
    ("GET", "/dispensing/dispenses/{dispense_id:uuid}"): owner(
        ("pharmacist",), ("pharmacist",), params={"dispense_id": "dispense_id"}),
    ("POST", "/payments/dispenses/{dispense_id:uuid}"): owner(
        ("pharmacist",), ("pharmacist",), params={"dispense_id": "dispense_id"}),
    ("GET", "/payments/{payment_id:uuid}"): owner(
        ("admin", "patient", "pharmacist"), ("pharmacist", "admin"), params={"payment_id": "payment_id"}),
    ("GET", "/payments/{payment_id:uuid}/refunds"): roles("admin", params={"payment_id": "payment_id"}),
    ("POST", "/payments/{payment_id:uuid}/refunds"): roles("admin", params={"payment_id": "payment_id"}, body={}),
    ("GET", "/admin/payments/reconciliation"): roles("admin"),
    # ------------------------------------------------------------------ what ends an object: last
    ("POST", "/prescriptions/{rx_id:uuid}/sign"): owner(
        ("doctor",), ("doctor",), params={"rx_id": "draft_id"},
        body=lambda w: {"totp_code": signing_code("bs.lan", steps_ahead=1), "overrides": []}),
    ("DELETE", "/prescriptions/{rx_id:uuid}"): owner(("doctor",), ("doctor",), params={"rx_id": "draft_id"}),
    ("POST", "/prescriptions/{rx_id:uuid}/cancel"): owner(("doctor",), ("doctor",), params={"rx_id": "rx_id"},
                                                          body={"reason": "prescribing_error"}),
    ("POST", "/dispensing/dispenses/{dispense_id:uuid}/void"): owner(
        ("pharmacist",), ("pharmacist",), params={"dispense_id": "dispense_id"}, body={"reason": "Bán nhầm thuốc"}),
    ("POST", "/pharmacies/{pharmacy_id:uuid}/api-keys/{key_id:uuid}/revoke"): owner(
        PHARMACY_STAFF, ("pharmacist", "admin"), denied=(403,),
        params={"pharmacy_id": "pharmacy_id", "key_id": "api_key_id"}),
}


def _routes(app: Litestar) -> tuple[set[tuple[str, str]], set[str]]:
    """(method, path) of every HTTP handler (Litestar's automatic OPTIONS answers aside) and every WebSocket path."""
    http: set[tuple[str, str]] = set()
    websockets: set[str] = set()
    for route in app.routes:
        if isinstance(route, WebSocketRoute):
            websockets.add(route.path)
        elif isinstance(route, HTTPRoute):
            for handler in route.route_handlers:
                http.update((method, route.path) for method in handler.http_methods if method != "OPTIONS")
    return http, websockets


def test_every_route_has_a_rule(settings: Settings) -> None:
    http, websockets = _routes(create_app(settings))

    missing = sorted(http - RULES.keys())
    stale = sorted(RULES.keys() - http)
    assert not missing, "routes without an access rule in tests/reliability/test_access_matrix.py RULES: " + ", ".join(
        f"{m} {p}" for m, p in missing)
    assert not stale, "rules for routes that no longer exist: " + ", ".join(f"{m} {p}" for m, p in stale)
    assert websockets == set(WEBSOCKET_RULES), f"WebSocket routes without a rule: {websockets - set(WEBSOCKET_RULES)}"


class World:
    """The ids the rules point at, made once on top of the demo data."""

    child_id: str
    doctor_id: str
    pharmacy_id: str = str(PHARMACY_ID)
    unknown_id: str = "00000000-0000-4000-8000-000000000000"
    consultation: str
    child_consultation: str
    draft_consultation: str
    rx_id: str
    draft_id: str
    child_rx_code: str
    dispense_id: str
    payment_id: str
    exception_id: str
    dose_id: str
    notification_id: str
    device_id: str
    api_key_id: str
    drug_id: str
    paracetamol_line: dict[str, Any]
    headers: dict[str, dict[str, str]]


async def _token_of_new_pharmacist(pool: asyncpg.Pool, settings: Settings, pharmacy_id: UUID) -> dict[str, str]:
    account_id = await pool.fetchval(
        """INSERT INTO accounts (role, username, password_hash, full_name)
           VALUES ('pharmacist', $1, 'no-password-sign-in-in-this-test', 'Dược sĩ nhà thuốc khác') RETURNING id""",
        f"ds.{secrets.token_hex(4)}")
    await pool.execute("INSERT INTO pharmacists (account_id, pharmacy_id, has_pharmacist_degree) VALUES ($1, $2, true)",
                       account_id, pharmacy_id)
    token = issue_access_token(Principal(account_id=account_id, role="pharmacist", pharmacy_id=pharmacy_id), settings)
    return {"Authorization": f"Bearer {token}"}


def _ok(response: Any, *statuses: int) -> Any:
    assert response.status_code in statuses, f"{response.request.method} {response.request.url}: {response.text}"
    return response.json()


async def _world(client: Client, pool: asyncpg.Pool, settings: Settings) -> World:
    w = World()
    [other] = await make_patients(pool, settings, 1)
    w.headers = {
        "anonymous": {},
        "patient": await patient_headers(pool, settings, HUNG),
        "other_patient": {"Authorization": f"Bearer {other['access_token']}"},
        "guardian": await patient_headers(pool, settings, MAI),
        "doctor": await staff_headers(pool, settings, "bs.lan"),
        "other_doctor": await staff_headers(pool, settings, "bs.minh"),
        "pharmacist": await staff_headers(pool, settings, "ds.hoa"),
        "other_pharmacist": await _token_of_new_pharmacist(pool, settings, OTHER_PHARMACY_ID),
        "admin": await staff_headers(pool, settings, "admin"),
    }
    h = w.headers
    w.child_id = str(await pool.fetchval(
        """SELECT g.dependent_id FROM guardianships g JOIN patients p ON p.id = g.guardian_id
           JOIN accounts a ON a.id = p.account_id WHERE a.phone = $1""", MAI))
    w.doctor_id = str(await pool.fetchval("SELECT id FROM accounts WHERE username = 'bs.lan'"))
    w.drug_id = str(await pool.fetchval("SELECT id FROM drugs WHERE inn = 'Paracetamol' ORDER BY strength LIMIT 1"))
    w.paracetamol_line = await line(pool, "Paracetamol", "500 mg", dose=1, times=2, days=5)

    # each signature needs a later authenticator step than the one before (no replay): -1, 0 here, +1 in the matrix
    # bs.lan's slots must not overlap: Hùng now (in call), the child just after, a finished one before
    w.consultation = str(await make_consultation(pool, patient_phone=HUNG, status="in_call",
                                                 starts_in=timedelta(minutes=-10)))
    w.child_consultation = str(await make_consultation(pool, patient_phone=MAI, for_child=True, status="in_call",
                                                       starts_in=timedelta(minutes=15)))
    w.draft_consultation = str(await make_consultation(pool, patient_phone=HUNG, status="in_call",
                                                       starts_in=timedelta(minutes=40)))
    rx = await draft(client, h["doctor"], UUID(w.consultation), [w.paracetamol_line])
    signed = await client.post(f"/prescriptions/{rx['id']}/sign", headers=h["doctor"],
                               json={"totp_code": signing_code("bs.lan", steps_ahead=-1), "overrides": []})
    w.rx_id = _ok(signed, 200)["id"]
    child_rx = await draft(client, h["doctor"], UUID(w.child_consultation), [w.paracetamol_line],
                           weight_kg=11.5)
    child_signed = await client.post(f"/prescriptions/{child_rx['id']}/sign", headers=h["doctor"],
                                     json={"totp_code": signing_code("bs.lan"), "overrides": []})
    w.child_rx_code = _ok(child_signed, 200)["code"]
    w.draft_id = (await draft(client, h["doctor"], UUID(w.draft_consultation), [w.paracetamol_line]))["id"]

    sold = await client.post(f"/dispensing/prescriptions/{w.child_rx_code}/dispenses",
                             headers={**h["pharmacist"], "Idempotency-Key": secrets.token_hex(12)}, json={
                                 "invoice_number": "HD0001", "recipient": {"full_name": "Nguyễn Thị Mai"},
                                 "lines": [{"position": 1, "quantity": 2, "lot_number": "L2401",
                                            "expiry_date": str(date.today() + timedelta(days=365)),
                                            "unit_price_vnd": 2000, "origin": "Việt Nam"}]})
    w.dispense_id = _ok(sold, 201, 200)["id"]
    w.payment_id = _ok(await client.post(f"/payments/dispenses/{w.dispense_id}", headers=h["pharmacist"]),
                       200, 201)["id"]
    w.exception_id = _ok(await client.post("/doctors/me/schedule/exceptions", headers=h["doctor"], json={
        "kind": "leave", "starts_at": "2030-01-01T08:00:00+07:00", "ends_at": "2030-01-01T12:00:00+07:00"}),
        201)["id"]
    w.dose_id = _ok(await client.post(f"/patients/{w.child_id}/vaccinations", headers=h["guardian"], json={
        "vaccine": "HEPB_BD", "dose_number": 0, "given_on": "2024-05-10"}), 201)["dose"]["id"]
    w.device_id = _ok(await client.post("/notifications/devices", headers=h["patient"], json={
        "target_kind": "token", "target": "fcm-" + "x" * 120, "platform": "android"}), 201)["id"]
    w.notification_id = str(await pool.fetchval(
        """SELECT n.id FROM notification_outbox n JOIN accounts a ON a.id = n.account_id
           WHERE a.phone = $1 AND n.channel = 'push' LIMIT 1""", HUNG))
    w.api_key_id = _ok(await client.post(f"/pharmacies/{PHARMACY_ID}/api-keys", headers=h["pharmacist"],
                                         json={"label": "Máy quầy 1"}), 201)["key"]["id"]
    return w


def _resolve(w: World, value: str) -> str:
    if value.startswith("="):
        return value[1:]
    if value.startswith("@"):
        return str(getattr(w, value[1:]))
    return str(getattr(w, value))


_PARAM = re.compile(r"\{(\w+)(?::\w+)?\}")


def _url(path: str, rule: Rule, w: World) -> str:
    return _PARAM.sub(lambda m: _resolve(w, rule.params[m.group(1)]), path)


def _verdict(rule: Rule, actor: str, status: int) -> str | None:
    """None when ``status`` is what ``rule`` says ``actor`` gets; otherwise what was expected."""
    expected = rule.expected(actor)
    if status >= 500:
        return "no server error"
    if expected == "allow":
        refused = {401, 403, 404} if rule.owners is not None else {401, 403}
        return None if status not in refused else "allowed"
    if expected == "deny-auth":
        return None if status == 401 else "401"
    if expected == "deny-role":
        return None if status == 403 else "403"
    return None if status in rule.denied else "/".join(map(str, rule.denied))


async def test_every_route_allows_exactly_the_callers_its_rule_names(app: Litestar, pool: asyncpg.Pool,
                                                                     settings: Settings) -> None:
    async with app_running(app), client_from(app) as client:
        await _check_every_route(client, pool, settings)


async def _check_every_route(client: Any, pool: asyncpg.Pool, settings: Settings) -> None:
    started = time.monotonic()
    w = await _world(client, pool, settings)
    wrong: list[str] = []
    calls = 0
    for (method, path), rule in RULES.items():
        url = _url(path, rule, w)
        query = {k: _resolve(w, v) if v.startswith("@") else v for k, v in rule.query.items()}
        body = rule.body(w) if callable(rule.body) else rule.body
        # denied callers first: an allowed caller's change must not be what makes a later denial pass
        for actor in sorted(ACTORS, key=lambda a: rule.expected(a) == "allow"):
            headers = {**w.headers[actor], **rule.headers}
            kwargs: dict[str, Any] = {"headers": headers, "params": query}
            if isinstance(body, bytes):
                kwargs["content"] = body
            elif body is not None:
                kwargs["json"] = body
            response = await client.request(method, url, **kwargs)
            calls += 1
            problem = _verdict(rule, actor, response.status_code)
            if problem is None and rule.expected(actor) != "allow" and not response.headers.get(
                    "content-type", "").startswith("application/problem+json"):
                problem = "a problem+json refusal"
            if problem is not None:
                wrong.append(f"{method} {path} as {actor}: got {response.status_code}, expected {problem} "
                             f"({response.text[:160]})")
    assert not wrong, f"{len(wrong)} of {calls} calls broke their rule:\n" + "\n".join(wrong)
    assert calls == len(RULES) * len(ACTORS)
    print(f"{calls} calls ({len(RULES)} routes × {len(ACTORS)} callers) in {time.monotonic() - started:.1f} s")
