"""HTTP endpoints for prescriptions. Who may call: each summary; object-level rules live in the service."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from api.audit import audit_context
from api.auth.principal import Principal, requires_role
from api.deps import AppSettings, Pool
from eprescription import service, signing
from eprescription.schemas import (
    CancelIn,
    DraftIn,
    DraftPatch,
    FindingsReport,
    IssueIn,
    Prescription,
    PrescriptionSummary,
    QrCheck,
    QrCheckIn,
    QrPayload,
    SignatureDocument,
    SignIn,
    SigningKey,
)

Req = Request[Principal, Any, Any]
DOCTOR = requires_role("doctor")
READERS = requires_role("patient", "doctor", "admin")


class PrescriptionController(Controller):
    path = "/prescriptions"
    tags = ["prescriptions"]

    @post("/", guards=[DOCTOR], status_code=HTTP_201_CREATED,
          summary="Start a draft for the consultation's patient (treating doctor, in call or within the window)")
    async def create(self, request: Req, data: JSONBody[DraftIn], pool: Pool, settings: AppSettings) -> Prescription:
        return await service.create_draft(pool, settings, request.user, data, audit_context(request))

    @post("/dry-run", guards=[DOCTOR], status_code=HTTP_200_OK,
          summary="Rule problems and clinical findings of draft content, stored nowhere (treating doctor)")
    async def dry_run(self, request: Req, data: JSONBody[DraftIn], pool: Pool,
                      settings: AppSettings) -> FindingsReport:
        return await service.dry_run(pool, settings, request.user, data)

    @post("/signed", guards=[DOCTOR], status_code=HTTP_201_CREATED,
          summary="Write and sign in one step: a draft's content plus the signing ceremony; nothing is stored "
                  "unless it is signed (treating doctor, in call or within the window)")
    async def write_and_sign(self, request: Req, data: JSONBody[IssueIn], pool: Pool,
                             settings: AppSettings) -> Prescription:
        return await service.write_and_sign(pool, settings, request.user, data, audit_context(request))

    @get("/", guards=[READERS],
         summary="Patients: own and own children's prescriptions; doctors: the ones they wrote (audited)")
    async def listing(
        self, request: Req, pool: Pool,
        consultation_id: Annotated[UUID | None, QueryParameter(description="doctors: one consultation's")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
    ) -> list[PrescriptionSummary]:
        return await service.listing(pool, request.user, consultation_id, limit, audit_context(request))

    @get("/signing-keys", opt={"public": True},
         summary="Doctors' Ed25519 public keys, to verify prescriptions offline (anyone)")
    async def keys(
        self, pool: Pool, doctor_id: Annotated[UUID | None, QueryParameter()] = None,
    ) -> list[SigningKey]:
        return await service.signing_keys(pool, doctor_id)

    @post("/qr-check", guards=[requires_role("pharmacist", "doctor", "admin")], status_code=HTTP_200_OK,
          summary="Verify a scanned prescription QR and return its code (pharmacists, doctors, admins)")
    async def qr_check(self, data: JSONBody[QrCheckIn], pool: Pool) -> QrCheck:
        return await service.check_qr(pool, data.qr)

    @get("/{rx_id:uuid}", guards=[READERS],
         summary="One prescription with status and remaining quantities (its patient or guardian, its doctor, "
                 "admins; audited)")
    async def view(self, request: Req, rx_id: FromPath[UUID], pool: Pool) -> Prescription:
        return await service.view(pool, request.user, rx_id, audit_context(request))

    @patch("/{rx_id:uuid}", guards=[DOCTOR], summary="Edit a draft (its doctor)")
    async def edit(self, request: Req, rx_id: FromPath[UUID], data: JSONBody[DraftPatch], pool: Pool,
                   settings: AppSettings) -> Prescription:
        return await service.update_draft(pool, settings, request.user, rx_id, data, audit_context(request))

    @delete("/{rx_id:uuid}", guards=[DOCTOR], status_code=HTTP_204_NO_CONTENT, summary="Discard a draft (its doctor)")
    async def discard(self, request: Req, rx_id: FromPath[UUID], pool: Pool) -> None:
        await service.discard_draft(pool, request.user, rx_id, audit_context(request))

    @get("/{rx_id:uuid}/checks", guards=[DOCTOR], summary="Rule problems and clinical findings of a saved draft "
                                                             "(its doctor)")
    async def checks(self, request: Req, rx_id: FromPath[UUID], pool: Pool, settings: AppSettings) -> FindingsReport:
        return await service.draft_checks(pool, settings, request.user, rx_id)

    @post("/{rx_id:uuid}/sign", guards=[DOCTOR], status_code=HTTP_200_OK,
          summary="Signing ceremony: TOTP code + override reasons for blocking findings (its doctor)")
    async def sign(self, request: Req, rx_id: FromPath[UUID], data: JSONBody[SignIn], pool: Pool,
                   settings: AppSettings) -> Prescription:
        return await service.sign(pool, settings, request.user, rx_id, data, audit_context(request))

    @post("/{rx_id:uuid}/amend", guards=[DOCTOR], status_code=HTTP_201_CREATED,
          summary="Start a replacement draft; signing it supersedes this prescription (VN-1.15; its doctor)")
    async def amend(self, request: Req, rx_id: FromPath[UUID], pool: Pool, settings: AppSettings) -> Prescription:
        return await service.amend(pool, settings, request.user, rx_id, audit_context(request))

    @post("/{rx_id:uuid}/cancel", guards=[DOCTOR], status_code=HTTP_200_OK,
          summary="Cancel, or request cancellation while a pharmacy holds it (its doctor)")
    async def cancel(self, request: Req, rx_id: FromPath[UUID], data: JSONBody[CancelIn], pool: Pool,
                     settings: AppSettings) -> Prescription:
        return await service.cancel(pool, settings, request.user, rx_id, data, audit_context(request))

    @get("/{rx_id:uuid}/signature", guards=[READERS],
         summary="Signed content and signature for offline verification (its patient, doctor, admins; audited)")
    async def signature(self, request: Req, rx_id: FromPath[UUID], pool: Pool) -> SignatureDocument:
        return await service.signature_document(pool, request.user, rx_id, audit_context(request))

    @get("/{rx_id:uuid}/qr", guards=[READERS],
         summary="The QR payload, for apps that draw the QR themselves (its patient, doctor, admins; audited)")
    async def qr(self, request: Req, rx_id: FromPath[UUID], pool: Pool, settings: AppSettings) -> QrPayload:
        return QrPayload(payload=await service.qr_payload(pool, settings, request.user, rx_id, audit_context(request)))

    @get("/{rx_id:uuid}/qr.png", guards=[READERS], media_type="image/png",
         summary="QR code (PNG): the code signed by the prescriber, no patient data (its patient, doctor; audited)")
    async def qr_png(self, request: Req, rx_id: FromPath[UUID], pool: Pool, settings: AppSettings) -> Response[bytes]:
        payload = await service.qr_payload(pool, settings, request.user, rx_id, audit_context(request))
        return Response(signing.qr_png(payload), media_type="image/png", headers={"Cache-Control": "private, no-store"})

    @get("/{rx_id:uuid}/qr.svg", guards=[READERS], media_type="image/svg+xml", summary="QR code (SVG), as qr.png")
    async def qr_svg(self, request: Req, rx_id: FromPath[UUID], pool: Pool, settings: AppSettings) -> Response[bytes]:
        payload = await service.qr_payload(pool, settings, request.user, rx_id, audit_context(request))
        return Response(signing.qr_svg(payload), media_type="image/svg+xml",
                        headers={"Cache-Control": "private, no-store"})
