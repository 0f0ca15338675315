"""Fixtures of the e-prescription tests: access tokens from our own issuer for each staff role (the sign-in journey
itself is covered in tests/api), and the national e-prescription sandbox with its client and queued prescriptions."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
import pytest

from api.auth.principal import Principal, Role, issue_access_token
from api.demo import national_rx_demo_doctors
from api.settings import Settings, with_overrides
from eprescription import national_sync
from eprescription.codes import new_code
from eprescription.national import NationalClient
from eprescription.national_sandbox import NationalRxSandbox
from eprescription.rules import CHILD_MONTHS, age_in_months
from eprescription.schemas import (
    Guardian,
    SignedContent,
    SignedDiagnosis,
    SignedDoctor,
    SignedFacility,
    SignedLine,
    SignedPatient,
)
from tests.conftest import free_port
from tests.consultations.factories import make_consultation
from tests.eprescription.factories import RxLine, drug_id, insert_issued_prescription


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


# ------------------------------------------------------------------- national e-prescription system (QĐ 808, §4)

NATIONAL_DEFAULTS = Settings()  # the facility and app credentials tests run with (the settings' defaults)
MakeContent = Callable[..., SignedContent]
QueuePrescription = Callable[..., Awaitable[SignedContent]]


@pytest.fixture
def national_sandbox() -> Iterator[NationalRxSandbox]:
    """The QĐ 808 sandbox on a free loopback port, holding the default facility and app credentials and the demo
    doctors' national accounts (not yet added to the facility)."""
    with NationalRxSandbox(
            port=free_port(),
            facilities={NATIONAL_DEFAULTS.national_rx_facility_code: NATIONAL_DEFAULTS.national_rx_facility_password},
            doctors=national_rx_demo_doctors(),
            apps={NATIONAL_DEFAULTS.national_rx_app_name: NATIONAL_DEFAULTS.national_rx_app_key}) as sandbox:
        yield sandbox


@pytest.fixture
def national_client(national_sandbox: NationalRxSandbox) -> Iterator[NationalClient]:
    """A client of the sandbox with one-second timeouts, so stalls cost tests little time."""
    config = national_sync.national_config(with_overrides(NATIONAL_DEFAULTS, national_rx_url=national_sandbox.base_url))
    client = NationalClient(dataclasses.replace(config, connect_timeout_s=1.0, read_timeout_s=1.0))
    yield client
    client.close()


@pytest.fixture
def national_settings(settings: Settings, national_sandbox: NationalRxSandbox) -> Settings:
    return with_overrides(settings, national_rx_url=national_sandbox.base_url)


@pytest.fixture
def national_make_content() -> MakeContent:
    """Hand-built signed content of facility 79026 (no database): an adult's normal prescription by default;
    ``child=True`` for a two-year-old with weight and guardian; ``rx_type="h"`` for a psychotropic one; other
    keywords replace SignedContent fields."""

    def make(*, rx_type: str = "c", child: bool = False, **changes: Any) -> SignedContent:
        issued = datetime.now(UTC).replace(microsecond=0)
        today = issued.date()
        if child:
            patient = SignedPatient(
                id=uuid.uuid4(), full_name="Trần Gia Bảo", date_of_birth=today.replace(year=today.year - 2),
                sex="male", citizen_id=None, health_insurance_number=None, address="12 Nguyễn Huệ, Quận 1, TP.HCM",
                phone=None, age_months=24, weight_kg=11.5,
                guardian=Guardian(full_name="Nguyễn Thị Mai", phone="+84912345678",
                                  address="12 Nguyễn Huệ, Quận 1, TP.HCM"))
        else:
            patient = SignedPatient(
                id=uuid.uuid4(), full_name="Lê Văn Hùng", date_of_birth=date(1978, 11, 2), sex="male",
                citizen_id="079078001234", health_insurance_number="DN4797915012345",
                address="Ấp 3, xã Tân Phú, Đồng Nai", phone="+84987654321", age_months=None, weight_kg=70.0,
                guardian=None)
        psychotropic = rx_type == "h"
        lines = [
            SignedLine(position=1, drug_id=uuid.uuid4(), drug_name="Paracetamol (Panadol)", strength="500 mg",
                       dosage_form="viên nén", route="oral", atc_code="N02BE01", registration_number="VD-12345-10",
                       control_class="none", dose_per_time=1, dose_unit="viên", times_per_day=3, days=5,
                       quantity=15, quantity_unit="viên", usage="Uống sau ăn"),
            SignedLine(position=2, drug_id=uuid.uuid4(),
                       drug_name="Diazepam (Seduxen)" if psychotropic else "Loratadin",
                       strength="5 mg" if psychotropic else "10 mg", dosage_form="viên nén", route="oral",
                       atc_code=None, registration_number=None,
                       control_class="psychotropic" if psychotropic else "none", dose_per_time=1, dose_unit="viên",
                       times_per_day=1, days=7, quantity=7, quantity_unit="viên", usage=""),
        ]
        content = SignedContent(
            prescription_id=uuid.uuid4(), code=str(new_code("79026", rx_type)),  # type: ignore[arg-type]
            rx_type=rx_type,  # type: ignore[arg-type]
            issued_at=issued, valid_until=issued + timedelta(days=5), consultation_id=uuid.uuid4(), telemedicine=True,
            facility=SignedFacility(id=uuid.uuid4(), code="79026", name="Phòng khám Đa khoa Liên Thông (demo)",
                                    address="215 Hồng Bàng, Quận 5"),
            doctor=SignedDoctor(id=uuid.uuid4(), full_name="Nguyễn Thị Lan", title="BSCKI",
                                licence_number="000123/HCM-CCHN", national_rx_code="79026BS00123"),
            patient=patient,
            diagnoses=[SignedDiagnosis(code="J00", name="Viêm mũi họng cấp [cảm thường]", conclusion="Cảm lạnh")],
            lines=lines, advice="Uống nhiều nước, nghỉ ngơi.", note="", follow_up_days=7, long_term=False,
            replaces_code=None, signing_key_id=uuid.uuid4())
        return msgspec.structs.replace(content, **changes) if changes else content

    return make


async def _national_content_from_db(pool: asyncpg.Pool, rx_id: UUID) -> SignedContent:
    """The signed content of a prescription row put in by insert_issued_prescription, read back as the signing code
    would assemble it."""
    p = await pool.fetchrow(
        """SELECT p.*, f.code AS facility_code, f.name AS facility_name, f.address AS facility_address,
                  a.full_name AS doctor_name, d.title, d.licence_number, d.national_rx_code
           FROM prescriptions p JOIN facilities f ON f.id = p.facility_id
           JOIN doctors d ON d.account_id = p.doctor_id JOIN accounts a ON a.id = p.doctor_id WHERE p.id = $1""", rx_id)
    patient = await pool.fetchrow(
        """SELECT pt.*, acc.phone FROM patients pt LEFT JOIN accounts acc ON acc.id = pt.account_id
           WHERE pt.id = $1""", p["patient_id"])
    guardian = await pool.fetchrow(
        """SELECT g.full_name, acc.phone, g.address FROM guardianships gs JOIN patients g ON g.id = gs.guardian_id
           LEFT JOIN accounts acc ON acc.id = g.account_id WHERE gs.dependent_id = $1""", p["patient_id"])
    lines = await pool.fetch(
        """SELECT l.*, d.atc_code, d.registration_number, d.control_class, d.trade_names
           FROM prescription_lines l JOIN drugs d ON d.id = l.drug_id WHERE l.prescription_id = $1
           ORDER BY l.position""", rx_id)
    issued = p["issued_at"]
    months = age_in_months(patient["date_of_birth"], issued.date()) if patient["date_of_birth"] else None
    child = months is not None and months < CHILD_MONTHS
    return SignedContent(
        prescription_id=rx_id, code=p["code"], rx_type=p["rx_type"], issued_at=issued, valid_until=p["valid_until"],
        consultation_id=p["consultation_id"], telemedicine=True,
        facility=SignedFacility(id=p["facility_id"], code=p["facility_code"], name=p["facility_name"],
                                address=p["facility_address"]),
        doctor=SignedDoctor(id=p["doctor_id"], full_name=p["doctor_name"], title=p["title"],
                            licence_number=p["licence_number"], national_rx_code=p["national_rx_code"]),
        patient=SignedPatient(
            id=patient["id"], full_name=patient["full_name"], date_of_birth=patient["date_of_birth"],
            sex=patient["sex"], citizen_id=patient["citizen_id"],
            health_insurance_number=patient["health_insurance_number"],
            address=patient["address"] or (guardian["address"] if guardian else ""),
            phone=patient["phone"] or (guardian["phone"] if guardian else None),
            age_months=months if child else None,
            weight_kg=float(patient["weight_kg"]) if patient["weight_kg"] is not None else None,
            guardian=Guardian(full_name=guardian["full_name"], phone=guardian["phone"], address=guardian["address"])
            if child and guardian else None),
        diagnoses=[SignedDiagnosis(**d) for d in p["diagnoses"]],
        lines=[SignedLine(
            position=r["position"], drug_id=r["drug_id"],
            drug_name=f"{r['drug_name']} ({r['trade_names'][0]})" if r["trade_names"] else r["drug_name"],
            strength=r["strength"], dosage_form=r["dosage_form"], route=r["route"], atc_code=r["atc_code"],
            registration_number=r["registration_number"], control_class=r["control_class"],
            dose_per_time=float(r["dose_per_time"]), dose_unit=r["dose_unit"], times_per_day=r["times_per_day"],
            days=r["days"], quantity=r["quantity"], quantity_unit=r["quantity_unit"], usage=r["usage"])
            for r in lines],
        advice=p["advice"], note=p["note"], follow_up_days=p["follow_up_days"], long_term=p["long_term"],
        replaces_code=None, signing_key_id=p["signing_key_id"])


@pytest.fixture
def national_queue(pool: asyncpg.Pool) -> QueuePrescription:
    """Issue a prescription of a demo doctor straight into the database and queue it for API-5 as the signing
    transaction does; returns its signed content. ``slot`` spaces consultations an hour apart (several per test);
    ``patient`` changes fields of the signed patient (e.g. to make the national system refuse it). Needs ``demo``."""

    async def queue(*, slot: int = 0, doctor: str = "bs.minh", for_child: bool = False,
                    patient: dict[str, Any] | None = None) -> SignedContent:
        consultation_id = await make_consultation(
            pool, doctor_username=doctor, for_child=for_child, starts_in=timedelta(hours=1 + slot),
            patient_phone="+84912345678" if for_child else "+84987654321")
        paracetamol = await drug_id(pool, "Paracetamol", "500 mg")
        rx_id = await insert_issued_prescription(pool, consultation_id, [RxLine(paracetamol, days=5, quantity=10)])
        content = await _national_content_from_db(pool, rx_id)
        if patient:
            content = msgspec.structs.replace(content, patient=msgspec.structs.replace(content.patient, **patient))
        async with pool.acquire() as conn, conn.transaction():
            await national_sync.enqueue(conn, content, bytes(range(64)))
        return content

    return queue
