"""What a prescription tells its patient (or the child's guardians) through the notification outbox, written in the
transaction of the signature, cancellation or sale. Subject ``prescription:<id>``."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID
from zoneinfo import ZoneInfo

from api.db import Conn
from api.settings import Settings
from eprescription.schemas import SignedContent
from notifications.outbox import Notification, enqueue

_VN = ZoneInfo("Asia/Ho_Chi_Minh")


def _local_day(at: datetime) -> str:
    return at.astimezone(_VN).strftime("%d/%m/%Y")


def issued(content: SignedContent) -> Notification:
    """Written by the signing statement itself (eprescription.db.insert_signed / issue's caller)."""
    return Notification(
        patient_id=content.patient.id, kind="prescription_issued", category="prescription",
        subject=f"prescription:{content.prescription_id}", idempotency_key=f"prescription:{content.code}:issued",
        params={"prescription_id": str(content.prescription_id), "code": content.code,
                "doctor_name": content.doctor.full_name, "valid_until": _local_day(content.valid_until)},
        expires_at=content.valid_until)


async def cancelled(conn: Conn, *, prescription_id: UUID, code: str, patient_id: UUID, settings: Settings) -> None:
    # push and SMS: a family about to buy drugs on a cancelled prescription must hear about it
    await enqueue(conn, Notification(
        patient_id=patient_id, kind="prescription_cancelled", category="prescription",
        subject=f"prescription:{prescription_id}", idempotency_key=f"prescription:{code}:cancelled",
        params={"prescription_id": str(prescription_id), "code": code}, channels=("push", "sms")), settings)


async def dispensed(conn: Conn, *, prescription_id: UUID, code: str, patient_id: UUID, dispense_id: UUID,
                    complete: bool, pharmacy_name: str, valid_until: datetime, settings: Settings) -> None:
    await enqueue(conn, Notification(
        patient_id=patient_id, kind="prescription_dispensed" if complete else "prescription_partially_dispensed",
        category="prescription", subject=f"prescription:{prescription_id}",
        idempotency_key=f"dispense:{dispense_id}",
        params={"prescription_id": str(prescription_id), "code": code, "pharmacy_name": pharmacy_name,
                "valid_until": _local_day(valid_until)}), settings)
