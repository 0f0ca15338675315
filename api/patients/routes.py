"""HTTP endpoints for patients' own records. Who may call: see each handler's guards."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, get, patch, post
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from api.audit import audit_context
from api.auth.principal import ROLES, Principal, requires_role
from api.deps import Pool
from api.patients import data_rights, db, service
from api.patients.data_rights_schemas import DataExport, ErasureIn, ErasureOutcome
from api.patients.schemas import (
    AccessLogEntry,
    ConsentDocument,
    ConsentIn,
    ConsentRecord,
    DependentIn,
    Me,
    PatientPatch,
    PatientProfile,
)


class AccessLogPage(msgspec.Struct):
    entries: list[AccessLogEntry]
    next_before: int | None


class MeController(Controller):
    path = "/me"
    tags = ["me"]

    @get("/", guards=[requires_role(*ROLES)], summary="The signed-in account (any signed-in user)")
    async def me(self, request: Request[Principal, Any, Any], pool: Pool) -> Me:
        return await service.me(pool, request.user)

    @patch("/profile", guards=[requires_role("patient")], summary="Patient: update own profile")
    async def update_profile(self, data: JSONBody[PatientPatch], request: Request[Principal, Any, Any],
                             pool: Pool) -> PatientProfile:
        assert request.user.patient_id is not None
        return await service.update_patient(pool, request.user, request.user.patient_id, data,
                                            audit_context(request))

    @get("/dependents", guards=[requires_role("patient")], summary="Patient: own children/dependents")
    async def dependents(self, request: Request[Principal, Any, Any], pool: Pool) -> list[PatientProfile]:
        return await service.list_dependents(pool, request.user)

    @post("/dependents", status_code=HTTP_201_CREATED, guards=[requires_role("patient")],
          summary="Patient (guardian): add a child")
    async def add_dependent(self, data: JSONBody[DependentIn], request: Request[Principal, Any, Any],
                            pool: Pool) -> PatientProfile:
        return await service.add_dependent(pool, request.user, data, audit_context(request))

    @get("/consents", guards=[requires_role("patient")],
         summary="Patient: latest consent decision per kind for self and dependents")
    async def consents(self, request: Request[Principal, Any, Any], pool: Pool) -> list[ConsentRecord]:
        return await service.my_consents(pool, request.user)

    @post("/consents", status_code=HTTP_201_CREATED, guards=[requires_role("patient")],
          summary="Patient (or guardian for a child): grant or withdraw a consent")
    async def record_consent(self, data: JSONBody[ConsentIn], request: Request[Principal, Any, Any],
                             pool: Pool) -> ConsentRecord:
        return await service.record_consent(pool, request.user, data, audit_context(request))

    @get("/access-log", guards=[requires_role("patient")],
         summary="Patient: who accessed or changed own and dependents' data")
    async def access_log(
        self, request: Request[Principal, Any, Any], pool: Pool,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        before: Annotated[int | None, QueryParameter(ge=1, le=2**63 - 1,  # audit_log.id is a bigint
                                                     description="next_before of the previous page")] = None,
    ) -> AccessLogPage:
        entries, next_before = await service.access_log(pool, request.user, limit, before)
        return AccessLogPage(entries=entries, next_before=next_before)

    @get("/data-export", guards=[requires_role("patient")],
         summary="Patient: everything held about you (Decree 13/2023 data subject request; audited)")
    async def data_export(self, request: Request[Principal, Any, Any], pool: Pool) -> DataExport:
        assert request.user.patient_id is not None
        return await data_rights.export(pool, request.user, request.user.patient_id, audit_context(request))

    @post("/erasure", status_code=HTTP_200_OK, guards=[requires_role("patient")],
          summary="Patient: erase own account; the medical record is retained as the law requires (audited)")
    async def erasure(self, data: JSONBody[ErasureIn], request: Request[Principal, Any, Any],
                      pool: Pool) -> ErasureOutcome:
        return await data_rights.erase(pool, request.user, audit_context(request))


class PatientController(Controller):
    path = "/patients"
    tags = ["patients"]

    @get("/{patient_id:uuid}", guards=[requires_role("patient")],
         summary="Patient: own record or a dependent's (audited)")
    async def view(self, patient_id: FromPath[UUID], request: Request[Principal, Any, Any],
                   pool: Pool) -> PatientProfile:
        return await service.view_patient(pool, request.user, patient_id, audit_context(request))

    @patch("/{patient_id:uuid}", guards=[requires_role("patient")],
           summary="Patient: update own record or a dependent's")
    async def update(self, patient_id: FromPath[UUID], data: JSONBody[PatientPatch],
                     request: Request[Principal, Any, Any], pool: Pool) -> PatientProfile:
        return await service.update_patient(pool, request.user, patient_id, data, audit_context(request))

    @get("/{patient_id:uuid}/data-export", guards=[requires_role("patient")],
         summary="Patient: everything held about self or a dependent (Decree 13/2023; audited)")
    async def data_export(self, patient_id: FromPath[UUID], request: Request[Principal, Any, Any],
                          pool: Pool) -> DataExport:
        return await data_rights.export(pool, request.user, patient_id, audit_context(request))


class ConsentDocumentController(Controller):
    path = "/consent-documents"
    tags = ["consents"]

    @get("/", opt={"public": True}, summary="Consent texts in force (anyone)")
    async def current(self, pool: Pool) -> list[ConsentDocument]:
        async with pool.acquire() as conn:
            return await db.current_consent_documents(conn)
