"""HTTP endpoints of verifying and dispensing. Who may call: pharmacists (and their pharmacy's software), acting for
the pharmacy in their token; object-level rules live in pharmacy_link.dispensing."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath, HeaderParameter, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from api import ratelimit
from api.audit import audit_context
from api.auth.principal import Principal, requires_role
from api.deps import AppSettings, Pool
from eprescription.errors import PrescriptionNotFound, QrInvalid
from pharmacy_link import dispensing, qr_scan
from pharmacy_link.dispensing_schemas import Dispense, DispenseIn, HoldOut, Verification, VerifyIn, VoidIn

Req = Request[Principal, Any, Any]
IdempotencyKey = Annotated[str, HeaderParameter(name="Idempotency-Key", min_length=8, max_length=100,
                                          description="one per sale; a retry with the same key returns the first "
                                                      "result instead of selling twice")]


class DispensingController(Controller):
    path = "/dispensing"
    tags = ["dispensing"]
    guards = [requires_role("pharmacist")]

    @post("/verify", status_code=HTTP_200_OK,
          summary="Look up a prescription by typed code or scanned QR: signature, validity, status, what remains "
                  "(pharmacists; audited)")
    async def verify(self, request: Req, data: JSONBody[VerifyIn], pool: Pool, settings: AppSettings) -> Verification:
        ctx = audit_context(request)
        # guessing codes is the attack: unknown codes and QR codes that do not verify count against the account
        return await ratelimit.limited_on_failure(
            pool, settings, ratelimit.rx_verify_by_account(settings), str(request.user.account_id), ctx,
            lambda: dispensing.verify(pool, request.user, data, ctx), (PrescriptionNotFound, QrInvalid))

    @post("/qr-scan", status_code=HTTP_200_OK, request_max_body_size=qr_scan.MAX_BODY_BYTES,
          summary="Read the QR code in a camera frame or photo sent as 8-bit grey pixels; returns its text for "
                  "/dispensing/verify (pharmacists)")
    async def scan_qr(self, data: JSONBody[qr_scan.QrScanIn]) -> qr_scan.QrScan:
        return await asyncio.to_thread(qr_scan.decode, data)

    @post("/prescriptions/{code:str}/hold", status_code=HTTP_200_OK,
          summary="Hold the prescription while preparing it (\"with dispenser\"); others see it held (pharmacists)")
    async def hold(self, request: Req, code: FromPath[str], pool: Pool, settings: AppSettings) -> HoldOut:
        return await dispensing.hold(pool, settings, request.user, code, audit_context(request))

    @post("/prescriptions/{code:str}/release", status_code=HTTP_200_OK,
          summary="Give a held prescription back; completes a pending cancellation (the holding pharmacy)")
    async def release(self, request: Req, code: FromPath[str], pool: Pool) -> HoldOut:
        return await dispensing.release(pool, request.user, code, audit_context(request))

    @post("/prescriptions/{code:str}/dispenses",
          summary="Dispense all or part of the lines, with lot, expiry, price, substitution (pharmacists; "
                  "exactly once per Idempotency-Key; audited)")
    async def dispense(self, request: Req, code: FromPath[str], data: JSONBody[DispenseIn],
                       idempotency_key: IdempotencyKey, pool: Pool, settings: AppSettings) -> Response[Dispense]:
        found, created = await dispensing.dispense(pool, settings, request.user, code, data, idempotency_key,
                                                   audit_context(request))
        return Response(found, status_code=HTTP_201_CREATED if created else HTTP_200_OK)

    @get("/dispenses/{dispense_id:uuid}", summary="One of this pharmacy's dispenses (its pharmacists)")
    async def view(self, request: Req, dispense_id: FromPath[UUID], pool: Pool) -> Dispense:
        return await dispensing.view_dispense(pool, request.user, dispense_id)

    @post("/dispenses/{dispense_id:uuid}/void", status_code=HTTP_200_OK,
          summary="Void a mistaken dispense soon after; quantities return to the prescription (its pharmacy; "
                  "audited)")
    async def void(self, request: Req, dispense_id: FromPath[UUID], data: JSONBody[VoidIn], pool: Pool,
                   settings: AppSettings) -> Dispense:
        return await dispensing.void(pool, settings, request.user, dispense_id, data.reason, audit_context(request))
