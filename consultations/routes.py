"""HTTP endpoints for doctors' directory and schedules, booking and consultations. Who may call: each summary."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, delete, get, patch, post, put
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from api.audit import audit_context
from api.auth.principal import ROLES, Principal, requires_role
from api.deps import AppSettings, Pool
from consultations import service
from consultations.schemas import (
    BookingIn,
    CancelIn,
    Consultation,
    ConsultationRecord,
    ConsultationSummary,
    DoctorPage,
    DoctorProfilePatch,
    DoctorSummary,
    Icd10,
    PatientHistory,
    QueueEntry,
    RecordIn,
    Schedule,
    ScheduleException,
    ScheduleExceptionIn,
    Slot,
    WeeklySchedule,
)
from rtc.hub import Hub

Req = Request[Principal, Any, Any]
PARTICIPANTS = requires_role("patient", "doctor")


class DoctorController(Controller):
    path = "/doctors"
    tags = ["doctors"]

    @get("/", opt={"public": True}, summary="Find doctors by name or specialty, with or without diacritics (anyone)")
    async def search(
        self, pool: Pool,
        q: Annotated[str | None, QueryParameter(max_length=100, description="e.g. 'nhi khoa' or 'Lan'")] = None,
        specialty: Annotated[str | None, QueryParameter(pattern=r"^[a-z_]{2,40}$")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=100)] = 20,
        offset: Annotated[int, QueryParameter(ge=0, le=10_000)] = 0,
    ) -> DoctorPage:
        return await service.search_doctors(pool, q, specialty, limit, offset)

    @get("/{doctor_id:uuid}", opt={"public": True}, summary="A doctor's public profile (anyone)")
    async def profile(self, doctor_id: FromPath[UUID], pool: Pool) -> DoctorSummary:
        return await service.get_doctor(pool, doctor_id)

    @get("/{doctor_id:uuid}/slots", opt={"public": True},
         summary="Free slots, Vietnam time, from a date (default today) for up to 14 days (anyone)")
    async def slots(
        self, doctor_id: FromPath[UUID], pool: Pool, settings: AppSettings,
        from_date: Annotated[date | None, QueryParameter(name="from")] = None,
        days: Annotated[int, QueryParameter(ge=1, le=service.MAX_SLOT_DAYS)] = 7,
    ) -> list[Slot]:
        return await service.free_slots(pool, settings, doctor_id, from_date, days)

    @patch("/me/profile", guards=[requires_role("doctor")], summary="Doctor: update own public profile")
    async def update_profile(self, data: JSONBody[DoctorProfilePatch], request: Req, pool: Pool) -> DoctorSummary:
        return await service.update_profile(pool, request.user, data, audit_context(request))

    @get("/me/schedule", guards=[requires_role("doctor")], summary="Doctor: own weekly rules and exceptions")
    async def schedule(self, request: Req, pool: Pool) -> Schedule:
        return await service.schedule(pool, request.user.account_id)

    @put("/me/schedule/weekly", guards=[requires_role("doctor")],
         summary="Doctor: replace own weekly hours (Vietnam local time)")
    async def replace_weekly(self, data: JSONBody[WeeklySchedule], request: Req, pool: Pool) -> Schedule:
        return await service.replace_weekly_schedule(pool, request.user, data, audit_context(request))

    @post("/me/schedule/exceptions", status_code=HTTP_201_CREATED, guards=[requires_role("doctor")],
          summary="Doctor: add leave or extra hours")
    async def add_exception(self, data: JSONBody[ScheduleExceptionIn], request: Req, pool: Pool) -> ScheduleException:
        return await service.add_exception(pool, request.user, data, audit_context(request))

    @delete("/me/schedule/exceptions/{exception_id:uuid}", status_code=HTTP_204_NO_CONTENT,
            guards=[requires_role("doctor")], summary="Doctor: remove own leave or extra hours")
    async def delete_exception(self, exception_id: FromPath[UUID], request: Req, pool: Pool) -> None:
        await service.delete_exception(pool, request.user, exception_id, audit_context(request))

    @get("/me/queue", guards=[requires_role("doctor")],
         summary="Doctor: a day's consultations (default today, Vietnam time) with who is waiting since when")
    async def queue(self, request: Req, pool: Pool,
                    day: Annotated[date | None, QueryParameter(name="date")] = None) -> list[QueueEntry]:
        return await service.doctor_queue(pool, request.user, day)


class ConsultationController(Controller):
    path = "/consultations"
    tags = ["consultations"]

    @post("/", status_code=HTTP_201_CREATED, guards=[requires_role("patient")],
          summary="Patient (or guardian for a child): book a free slot; needs current telemedicine consent")
    async def book(self, data: JSONBody[BookingIn], request: Req, pool: Pool, settings: AppSettings) -> Consultation:
        return await service.book(pool, settings, request.user, data, audit_context(request))

    @get("/", guards=[requires_role("patient")], summary="Patient: own (and own children's) consultations")
    async def mine(self, request: Req, pool: Pool,
                   limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50) -> list[Consultation]:
        return await service.mine(pool, request.user, limit)

    @get("/{consultation_id:uuid}", guards=[PARTICIPANTS], summary="Its patient/guardian or treating doctor")
    async def view(self, consultation_id: FromPath[UUID], request: Req, pool: Pool) -> Consultation:
        return await service.view(pool, request.user, consultation_id, audit_context(request))

    @post("/{consultation_id:uuid}/check-in", status_code=200, guards=[requires_role("patient")],
          summary="Patient: enter the waiting room (from 15 minutes before the start)")
    async def check_in(self, consultation_id: FromPath[UUID], request: Req, pool: Pool,
                       settings: AppSettings) -> Consultation:
        return await service.check_in(pool, settings, request.user, consultation_id, audit_context(request))

    @post("/{consultation_id:uuid}/start", status_code=200, guards=[requires_role("doctor")],
          summary="Treating doctor: start the call")
    async def start(self, consultation_id: FromPath[UUID], request: Req, pool: Pool,
                    settings: AppSettings) -> Consultation:
        return await service.doctor_start(pool, settings, request.user, consultation_id, audit_context(request))

    @post("/{consultation_id:uuid}/complete", status_code=200, guards=[requires_role("doctor")],
          summary="Treating doctor: end the call; the consultation is completed")
    async def complete(self, consultation_id: FromPath[UUID], request: Req, pool: Pool) -> Consultation:
        ctx = audit_context(request)
        completed = await service.doctor_complete(pool, request.user, consultation_id, ctx)
        hub: Hub = request.app.state.rtc_hub
        await hub.consultation_completed(consultation_id, ctx)  # a patient still in the call room is let go
        return completed

    @post("/{consultation_id:uuid}/cancel", status_code=200, guards=[PARTICIPANTS],
          summary="Its patient/guardian or treating doctor: cancel (doctor cancellations are refundable)")
    async def cancel(self, consultation_id: FromPath[UUID], data: JSONBody[CancelIn], request: Req, pool: Pool,
                     settings: AppSettings) -> Consultation:
        return await service.cancel(pool, settings, request.user, consultation_id, data.reason,
                                    audit_context(request))

    @post("/{consultation_id:uuid}/no-show", status_code=200, guards=[requires_role("doctor")],
          summary="Treating doctor: the patient did not come (N minutes after the start)")
    async def no_show(self, consultation_id: FromPath[UUID], request: Req, pool: Pool,
                      settings: AppSettings) -> Consultation:
        return await service.mark_no_show(pool, settings, request.user, consultation_id, audit_context(request))

    @put("/{consultation_id:uuid}/record", guards=[requires_role("doctor")],
         summary="Treating doctor: SOAP notes and ICD-10 diagnoses (during or after the call)")
    async def write_record(self, consultation_id: FromPath[UUID], data: JSONBody[RecordIn], request: Req,
                           pool: Pool) -> ConsultationRecord:
        return await service.write_record(pool, request.user, consultation_id, data, audit_context(request))

    @get("/{consultation_id:uuid}/record", guards=[requires_role("doctor")],
         summary="Treating doctor: the full consultation record")
    async def read_record(self, consultation_id: FromPath[UUID], request: Req, pool: Pool) -> ConsultationRecord:
        return await service.read_record(pool, request.user, consultation_id, audit_context(request))

    @get("/{consultation_id:uuid}/patient-history", guards=[requires_role("doctor")],
         summary="Treating doctor: the patient's allergies, earlier consultations and prescriptions (audited)")
    async def patient_history(self, consultation_id: FromPath[UUID], request: Req, pool: Pool) -> PatientHistory:
        return await service.patient_history(pool, request.user, consultation_id, audit_context(request))

    @get("/{consultation_id:uuid}/summary", guards=[PARTICIPANTS],
         summary="Its patient/guardian or treating doctor: diagnoses and advice")
    async def summary(self, consultation_id: FromPath[UUID], request: Req, pool: Pool) -> ConsultationSummary:
        return await service.read_summary(pool, request.user, consultation_id, audit_context(request))


@get("/icd10", guards=[requires_role(*ROLES)], tags=["consultations"],
     summary="Search the ICD-10 subset by code or words, with or without diacritics (any signed-in user)")
async def icd10_search(
    pool: Pool,
    q: Annotated[str, QueryParameter(min_length=1, max_length=100)],
    telemedicine_only: Annotated[bool, QueryParameter()] = False,
    limit: Annotated[int, QueryParameter(ge=1, le=50)] = 20,
) -> list[Icd10]:
    return await service.search_icd10(pool, q, telemedicine_only, limit)
