"""POST /consultations/{id}/join-token: only the people of the booking, only around its time, and every refusal is
written to the audit log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from api.settings import Settings
from notifications.sms_sandbox import SmsSandbox
from tests.consultations.factories import make_consultation
from tests.helpers import Client, bearer, sign_in_patient, sign_in_staff
from tests.rtc.conftest import OTHER_PATIENT, PATIENT, doctor_token, patient_token

pytestmark = pytest.mark.usefixtures("demo")


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_booked_patient_and_treating_doctor_get_single_use_tokens(client: Client, sms: SmsSandbox,
                                                                       pool: asyncpg.Pool) -> None:
    consultation_id = await make_consultation(pool)
    patient = await sign_in_patient(client, sms, PATIENT)
    doctor = await sign_in_staff(client, "bs.lan")

    secrets = []
    for session, role in ((patient, "patient"), (doctor, "doctor")):
        response = await client.post(f"/consultations/{consultation_id}/join-token", headers=bearer(session))
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["role"] == role
        assert body["websocket_path"] == f"/ws/consultations/{consultation_id}"
        expires_at = datetime.fromisoformat(body["expires_at"])
        assert expires_at.utcoffset() == timedelta(hours=7)  # shown in Vietnam time
        assert timedelta(seconds=30) < expires_at - datetime.now(UTC) <= timedelta(seconds=120)
        secrets.append(body["token"].split(".")[1])
    # the database keeps the SHA-256 of each token's secret, never the secret
    assert await pool.fetchval("SELECT count(*) FROM call_join_tokens WHERE consultation_id = $1",
                               consultation_id) == 2
    assert await pool.fetchval("SELECT count(*) FROM call_join_tokens WHERE secret_sha256 = sha256(convert_to($1, "
                               "'UTF8')) OR secret_sha256 = sha256(convert_to($2, 'UTF8'))", *secrets) == 2
    issued = await pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'rtc.join_token.issued' AND target_id = $1",
        str(consultation_id))
    assert issued == 2


async def test_guardian_who_booked_for_a_child_gets_the_token(client: Client, pool: asyncpg.Pool,
                                                              settings: Settings) -> None:
    consultation_id = await make_consultation(pool, for_child=True)
    response = await client.post(f"/consultations/{consultation_id}/join-token",
                                 headers=_auth(await patient_token(pool, settings, PATIENT)))
    assert response.status_code == 201
    assert response.json()["role"] == "patient"


@pytest.mark.parametrize(("who", "status", "problem"), [
    ("other_patient", 404, "consultation-not-found"),
    ("other_doctor", 404, "consultation-not-found"),
    ("pharmacist", 403, "forbidden"),
    ("anonymous", 401, "unauthenticated"),
])
async def test_people_outside_the_booking_are_refused(client: Client, pool: asyncpg.Pool, settings: Settings,
                                                      who: str, status: int, problem: str) -> None:
    consultation_id = await make_consultation(pool)
    headers: dict[str, str] = {}
    if who == "other_patient":
        headers = _auth(await patient_token(pool, settings, OTHER_PATIENT))
    elif who == "other_doctor":
        headers = _auth(await doctor_token(pool, settings, "bs.minh"))
    elif who == "pharmacist":
        pharmacist = await sign_in_staff(client, "ds.hoa")
        headers = bearer(pharmacist)

    response = await client.post(f"/consultations/{consultation_id}/join-token", headers=headers)

    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == f"/problems/{problem}"
    assert await pool.fetchval("SELECT count(*) FROM call_join_tokens") == 0


async def test_refusals_are_audited_with_their_reason(client: Client, pool: asyncpg.Pool,
                                                      settings: Settings) -> None:
    consultation_id = await make_consultation(pool)
    stranger = await client.post(f"/consultations/{consultation_id}/join-token",
                                 headers=_auth(await patient_token(pool, settings, OTHER_PATIENT)))
    early_id = await make_consultation(pool, doctor_username="bs.minh", starts_in=timedelta(hours=3))
    early = await client.post(f"/consultations/{early_id}/join-token",
                              headers=_auth(await patient_token(pool, settings, PATIENT)))
    assert (stranger.status_code, early.status_code) == (404, 409)

    rows = await pool.fetch(
        """SELECT target_id, details->>'reason' AS reason FROM audit_log WHERE action = 'rtc.join_token.refused'
           ORDER BY id""")
    assert [(r["target_id"], r["reason"]) for r in rows] == [
        (str(consultation_id), "not_participant"), (str(early_id), "outside-time-window")]
    event = await pool.fetchval(
        "SELECT details->>'reason' FROM consultation_events WHERE consultation_id = $1 AND kind = 'call.join_refused'",
        early_id)
    assert event == "outside-time-window"


@pytest.mark.parametrize(("starts_in", "minutes", "opens"), [
    (timedelta(minutes=16), 20, True),   # opens 15 minutes before the start
    (timedelta(minutes=-75), 20, False),  # closed 30 minutes after the end
])
async def test_outside_the_join_window_is_409_naming_the_window(client: Client, pool: asyncpg.Pool,
                                                                 settings: Settings, starts_in: timedelta,
                                                                 minutes: int, opens: bool) -> None:
    consultation_id = await make_consultation(pool, starts_in=starts_in, minutes=minutes)
    response = await client.post(f"/consultations/{consultation_id}/join-token",
                                 headers=_auth(await patient_token(pool, settings)))
    assert response.status_code == 409
    problem = response.json()
    assert problem["type"] == "/problems/outside-time-window"
    assert ("opens" in problem["detail"]) is opens
    assert problem["opens_at"].endswith("+07:00") and problem["closes_at"].endswith("+07:00")


@pytest.mark.parametrize(("starts_in", "minutes"), [
    (timedelta(minutes=14), 20),   # inside the 15 minutes before
    (timedelta(minutes=-45), 20),  # 25 minutes after the end, inside the 30-minute grace
])
async def test_inside_the_join_window_is_allowed(client: Client, pool: asyncpg.Pool, settings: Settings,
                                                 starts_in: timedelta, minutes: int) -> None:
    consultation_id = await make_consultation(pool, starts_in=starts_in, minutes=minutes)
    response = await client.post(f"/consultations/{consultation_id}/join-token",
                                 headers=_auth(await doctor_token(pool, settings)))
    assert response.status_code == 201


@pytest.mark.parametrize("status", ["completed", "cancelled_by_patient", "cancelled_by_doctor", "no_show"])
async def test_a_consultation_that_is_over_cannot_be_joined(client: Client, pool: asyncpg.Pool, settings: Settings,
                                                            status: str) -> None:
    consultation_id = await make_consultation(pool, status=status)
    response = await client.post(f"/consultations/{consultation_id}/join-token",
                                 headers=_auth(await patient_token(pool, settings)))
    assert response.status_code == 409
    assert response.json()["type"] == "/problems/illegal-transition"
    assert response.json()["current_status"] == status


async def test_unknown_consultation_is_404(client: Client, pool: asyncpg.Pool, settings: Settings) -> None:
    response = await client.post("/consultations/00000000-0000-4000-8000-000000000000/join-token",
                                 headers=_auth(await doctor_token(pool, settings)))
    assert response.status_code == 404
    assert response.json()["type"] == "/problems/consultation-not-found"
