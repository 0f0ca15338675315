"""HTTP endpoints for sign-in. Who may call: see each handler's ``public`` opt or guards."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, post
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from api import ratelimit
from api.audit import audit_context
from api.auth import service
from api.auth.errors import InvalidCredentials, OtpExpired, OtpInvalid
from api.auth.principal import Principal, Role, requires_role
from api.auth.schemas import (
    EnrolmentRequired,
    LoginIn,
    LogoutIn,
    OtpRequestIn,
    OtpSent,
    OtpVerifyIn,
    RefreshIn,
    Session,
    TotpConfirmed,
    TotpConfirmIn,
    TotpEnrolment,
)
from api.deps import AppSettings, Pool, Sms

STAFF: tuple[Role, ...] = ("doctor", "pharmacist", "admin")


class AuthController(Controller):
    path = "/auth"
    tags = ["auth"]

    @post("/otp/request", status_code=HTTP_202_ACCEPTED, opt={"public": True},
          summary="Patient: send a sign-in code by SMS (anyone)")
    async def request_otp(self, data: JSONBody[OtpRequestIn], request: Request[Any, Any, Any], pool: Pool,
                          settings: AppSettings, sms: Sms) -> OtpSent:
        return await service.request_otp(pool, settings, sms, data.phone, audit_context(request))

    @post("/otp/verify", status_code=HTTP_200_OK, opt={"public": True},
          summary="Patient: exchange the SMS code for a session (anyone holding the code)")
    async def verify_otp(self, data: JSONBody[OtpVerifyIn], request: Request[Any, Any, Any], pool: Pool,
                         settings: AppSettings) -> Session:
        ctx = audit_context(request)
        return await ratelimit.limited(
            pool, settings, ratelimit.otp_verify_by_address(settings), ctx.client_ip, ctx,
            lambda: service.verify_otp(pool, settings, data.phone, data.code, ctx), (OtpInvalid, OtpExpired))

    @post("/login", status_code=HTTP_200_OK, opt={"public": True},
          summary="Doctor/pharmacist/admin: password + authenticator code (anyone)")
    async def login(self, data: JSONBody[LoginIn], request: Request[Any, Any, Any], pool: Pool,
                    settings: AppSettings) -> Session | EnrolmentRequired:
        ctx = audit_context(request)
        return await ratelimit.limited(
            pool, settings, ratelimit.login_by_address(settings), ctx.client_ip, ctx,
            lambda: service.staff_login(pool, settings, data.username, data.password, data.totp_code,
                                        data.recovery_code, ctx), (InvalidCredentials,))

    @post("/refresh", status_code=HTTP_200_OK, opt={"public": True},
          summary="Rotate a refresh token (holder of the refresh token)")
    async def refresh(self, data: JSONBody[RefreshIn], request: Request[Any, Any, Any], pool: Pool,
                      settings: AppSettings) -> Session:
        return await service.refresh_session(pool, settings, data.refresh_token, audit_context(request))

    @post("/logout", status_code=HTTP_204_NO_CONTENT, summary="End this sign-in (any signed-in user)")
    async def logout(self, data: JSONBody[LogoutIn], request: Request[Principal, Any, Any], pool: Pool,
                     settings: AppSettings) -> None:
        await service.logout(pool, settings, request.user, data.refresh_token, audit_context(request))

    @post("/totp/enrol", status_code=HTTP_200_OK, guards=[requires_role(*STAFF)],
          opt={"allow_enrolment_token": True},
          summary="Staff: start (re-)enrolling an authenticator app; returns the otpauth URI and QR")
    async def totp_enrol(self, request: Request[Principal, Any, Any], pool: Pool,
                         settings: AppSettings) -> TotpEnrolment:
        return await service.start_totp_enrolment(pool, settings, request.user, audit_context(request))

    @post("/totp/confirm", status_code=HTTP_200_OK, guards=[requires_role(*STAFF)],
          opt={"allow_enrolment_token": True},
          summary="Staff: confirm the new authenticator with a code; returns recovery codes once")
    async def totp_confirm(self, data: JSONBody[TotpConfirmIn], request: Request[Principal, Any, Any], pool: Pool,
                           settings: AppSettings) -> TotpConfirmed:
        return await service.confirm_totp_enrolment(pool, settings, request.user, data.code, audit_context(request))
