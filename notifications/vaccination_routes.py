"""HTTP endpoints of the vaccination record and the schedule catalogue. Who may call: each summary."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, get, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from api.audit import audit_context
from api.auth.principal import ROLES, Principal, requires_role
from api.deps import Pool
from notifications import vaccination_service as service
from notifications.vaccination import Catalogue
from notifications.vaccination_schemas import DoseIn, DoseRecorded, EnteredInErrorIn, VaccinationRecord

Req = Request[Principal, Any, Any]
PATIENT_OR_DOCTOR = requires_role("patient", "doctor")


class VaccineController(Controller):
    path = "/vaccines"
    tags = ["vaccination"]

    @get("/", guards=[requires_role(*ROLES)],
         summary="The vaccination schedule with its legal basis, source and confidence (any signed-in user)")
    async def catalogue(self, pool: Pool) -> Catalogue:
        return await service.catalogue(pool)


class VaccinationController(Controller):
    path = "/patients/{patient_id:uuid}/vaccinations"
    tags = ["vaccination"]

    @get("/", guards=[PATIENT_OR_DOCTOR],
         summary="Patient (own or a dependent's) or a doctor with a consultation: doses and plan (audited)")
    async def view(self, patient_id: FromPath[UUID], request: Req, pool: Pool) -> VaccinationRecord:
        return await service.view_record(pool, request.user, patient_id, audit_context(request))

    @post("/", status_code=HTTP_201_CREATED, guards=[PATIENT_OR_DOCTOR],
          summary="Guardian (or the patient) or a doctor with a consultation: record a dose given (audited)")
    async def record(self, patient_id: FromPath[UUID], data: JSONBody[DoseIn], request: Req,
                     pool: Pool) -> DoseRecorded:
        return await service.record_dose(pool, request.user, patient_id, data, audit_context(request))

    @post("/{dose_id:uuid}/entered-in-error", status_code=HTTP_200_OK, guards=[PATIENT_OR_DOCTOR],
          summary="Whoever recorded the dose, or a doctor with a consultation: withdraw a wrong entry (audited)")
    async def entered_in_error(self, patient_id: FromPath[UUID], dose_id: FromPath[UUID],
                               data: JSONBody[EnteredInErrorIn], request: Req, pool: Pool) -> VaccinationRecord:
        return await service.enter_in_error(pool, request.user, patient_id, dose_id, data.reason,
                                            audit_context(request))
