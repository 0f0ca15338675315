"""What a consultation tells its patient (or the child's guardians) through the notification outbox.

Called inside the transaction of the change, so a notice exists exactly when the change committed. Every notice of
a consultation has the subject ``consultation:<id>``: cancelling or finishing it drops the reminders not yet sent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api.db import Conn
from api.settings import Settings
from consultations import slots
from consultations.schemas import Consultation
from notifications.outbox import Notification, cancel_subject, enqueue

REMINDER_BEFORE = timedelta(hours=24)
STARTING_SOON_BEFORE = timedelta(minutes=15)


def _subject(c: Consultation) -> str:
    return f"consultation:{c.id}"


def _params(c: Consultation) -> dict[str, str | int]:
    return {"consultation_id": str(c.id), "doctor_name": c.doctor_name,
            "starts_at": c.starts_at.astimezone(slots.VN).strftime("%H:%M %d/%m/%Y")}


async def booked(conn: Conn, c: Consultation, settings: Settings, now: datetime | None = None) -> None:
    """Confirmation now, a reminder the day before (when there is a day to go) and a call to the waiting room."""
    now = now or datetime.now(UTC)
    base = f"consultation:{c.id}"
    notices = [Notification(patient_id=c.patient_id, kind="appointment_booked", category="appointment",
                            subject=_subject(c), idempotency_key=f"{base}:booked", params=_params(c),
                            expires_at=c.starts_at)]
    if c.starts_at - REMINDER_BEFORE > now + timedelta(hours=1):
        notices.append(Notification(
            patient_id=c.patient_id, kind="appointment_reminder_24h", category="appointment", subject=_subject(c),
            idempotency_key=f"{base}:reminder_24h", params=_params(c), not_before=c.starts_at - REMINDER_BEFORE,
            expires_at=c.starts_at))
    # not a reminder: sent at any hour, so a 07:30 consultation still gets its 07:15 call
    notices.append(Notification(
        patient_id=c.patient_id, kind="appointment_starting_soon", category="call", subject=_subject(c),
        idempotency_key=f"{base}:starting_soon", params=_params(c), not_before=c.starts_at - STARTING_SOON_BEFORE,
        expires_at=c.ends_at))
    for notice in notices:
        await enqueue(conn, notice, settings, now=now)


async def ended(conn: Conn, c: Consultation) -> None:
    """Cancelled, completed or a no-show: reminders still queued are pointless."""
    await cancel_subject(conn, _subject(c))


async def cancelled_by_doctor(conn: Conn, c: Consultation, settings: Settings) -> None:
    await cancel_subject(conn, _subject(c))
    await enqueue(conn, Notification(
        patient_id=c.patient_id, kind="appointment_cancelled_by_doctor", category="appointment", subject=_subject(c),
        idempotency_key=f"consultation:{c.id}:cancelled", params=_params(c), channels=("push", "sms")), settings)


async def call_started(conn: Conn, c: Consultation, settings: Settings) -> None:
    await enqueue(conn, Notification(
        patient_id=c.patient_id, kind="call_started", category="call", subject=_subject(c),
        idempotency_key=f"consultation:{c.id}:call_started", params=_params(c), expires_at=c.ends_at), settings)
