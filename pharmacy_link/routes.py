"""HTTP endpoints of the pharmacy registry, pharmacy API keys, published stock and the nearby-pharmacy search. Who may
call: each route's summary and guards; "pharmacist" includes pharmacy software signed in with an API key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, get, patch, post, put
from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter, RawBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from api.audit import audit_context
from api.auth.accounts import StaffAccount
from api.auth.principal import ROLES, Principal, requires_role
from api.deps import AppSettings, Pool
from pharmacy_link import api_keys, search, service, stock
from pharmacy_link.schemas import (
    ApiKey,
    ApiKeyIn,
    ApiKeyRotation,
    MachineToken,
    NearbyPharmacy,
    NewApiKey,
    PharmacistIn,
    Pharmacy,
    PharmacyIn,
    PharmacyPatch,
    PharmacyStaffMember,
    StockPage,
    StockUploadReport,
    TokenRequest,
)

SIGNED_IN = requires_role(*ROLES)
PHARMACY_STAFF = requires_role("pharmacist", "admin")

_STOCK_ITEM = Schema(
    type=OpenAPIType.OBJECT, required=["quantity"],
    description="One drug, named by drug_id or by registration_number (exactly one of them)",
    properties={
        "drug_id": Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.UUID),
        "registration_number": Schema(type=OpenAPIType.STRING, min_length=3, max_length=40,
                                      examples=["VD-12345-19"]),
        "quantity": Schema(type=OpenAPIType.INTEGER, minimum=0, maximum=10_000_000,
                           description="in the drug's dispensing unit"),
        "unit": Schema(type=OpenAPIType.STRING, max_length=30, examples=["viên"]),
    })


@dataclass
class _StockUploadOperation(Operation):
    """The upload body is read raw so every item can be checked and reported; describe it in the schema by hand."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(required=True, content={"application/json": OpenAPIMediaType(schema=Schema(
            type=OpenAPIType.OBJECT, required=["items"], properties={"items": Schema(
                type=OpenAPIType.ARRAY, max_items=stock.MAX_ITEMS, items=_STOCK_ITEM)}))})


class PharmacyController(Controller):
    path = "/pharmacies"
    tags = ["pharmacies"]

    @get("/{pharmacy_id:uuid}", opt={"public": True},
         summary="Anyone, signed in or not: a pharmacy's registry facts, opening hours and whether it is open now "
                 "(never its stock)")
    async def pharmacy(self, pharmacy_id: FromPath[UUID], pool: Pool) -> Pharmacy:
        return await service.get_pharmacy(pool, pharmacy_id)

    @get("/{pharmacy_id:uuid}/pharmacists", guards=[PHARMACY_STAFF],
         summary="Pharmacist of this pharmacy, or admin: the pharmacy's staff")
    async def staff(self, pharmacy_id: FromPath[UUID], request: Request[Principal, Any, Any],
                    pool: Pool) -> list[PharmacyStaffMember]:
        return await service.staff(pool, request.user, pharmacy_id)

    @get("/nearby", guards=[SIGNED_IN],
         summary="Any signed-in user: pharmacies near a point that have the drugs (drug_ids), or the lines of a "
                 "prescription (prescription_id: only its patient or their guardian); all lines first, then most "
                 "lines, then nearest; availability per line, never quantities")
    async def nearby(
        self, request: Request[Principal, Any, Any], pool: Pool,
        lat: Annotated[float, QueryParameter(ge=-90, le=90, description="latitude of the search point")],
        lng: Annotated[float, QueryParameter(ge=-180, le=180, description="longitude of the search point")],
        radius_km: Annotated[float, QueryParameter(gt=0, le=search.MAX_RADIUS_KM)] = search.DEFAULT_RADIUS_KM,
        limit: Annotated[int, QueryParameter(ge=1, le=50)] = 20,
        open_now: Annotated[bool, QueryParameter(description="only pharmacies open now (Vietnam time)")] = False,
        prescription_id: FromQuery[UUID | None] = None,
        drug_ids: Annotated[str | None, QueryParameter(
            max_length=search.MAX_DRUGS * 37, description="comma-separated catalogue drug ids, at most 30")] = None,
    ) -> list[NearbyPharmacy]:
        return await search.nearby(pool, request.user, latitude=lat, longitude=lng, radius_km=radius_km,
                                   limit=limit, open_only=open_now, prescription_id=prescription_id,
                                   drug_ids=drug_ids, ctx=audit_context(request))

    @post("/token", opt={"public": True}, status_code=HTTP_200_OK,
          summary="Pharmacy software (no sign-in, client credentials): exchange an API key for a short-lived "
                  "pharmacist access token of its pharmacy")
    async def token(self, data: JSONBody[TokenRequest], request: Request[Any, Any, Any], pool: Pool,
                    settings: AppSettings) -> MachineToken:
        return await api_keys.exchange(pool, settings, data.api_key, audit_context(request))


class PharmacyApiKeyController(Controller):
    path = "/pharmacies/{pharmacy_id:uuid}/api-keys"
    tags = ["pharmacies"]
    guards = [PHARMACY_STAFF]

    @get("/", summary="Pharmacist of this pharmacy (a person, not its software), or admin: the pharmacy's API keys "
                      "(prefix, created, last used, revoked; never the secret)")
    async def list_keys(self, pharmacy_id: FromPath[UUID], request: Request[Principal, Any, Any],
                        pool: Pool) -> list[ApiKey]:
        return await api_keys.list_keys(pool, request.user, pharmacy_id)

    @post("/", status_code=HTTP_201_CREATED,
          summary="Pharmacist of this pharmacy (a person, not its software), or admin: create an API key for the "
                  "pharmacy's software; the secret is in this response only")
    async def create_key(self, pharmacy_id: FromPath[UUID], data: JSONBody[ApiKeyIn],
                         request: Request[Principal, Any, Any], pool: Pool, settings: AppSettings) -> NewApiKey:
        return await api_keys.create_key(pool, settings, request.user, pharmacy_id, data.label,
                                         audit_context(request))

    @post("/{key_id:uuid}/rotate", status_code=HTTP_201_CREATED,
          summary="Pharmacist of this pharmacy (a person, not its software), or admin: replace an active key with a "
                  "new one (shown once); the old one stops working after overlap_s seconds")
    async def rotate_key(self, pharmacy_id: FromPath[UUID], key_id: FromPath[UUID], data: JSONBody[ApiKeyRotation],
                         request: Request[Principal, Any, Any], pool: Pool, settings: AppSettings) -> NewApiKey:
        return await api_keys.rotate_key(pool, settings, request.user, pharmacy_id, key_id, data.overlap_s,
                                         audit_context(request))

    @post("/{key_id:uuid}/revoke", status_code=HTTP_200_OK,
          summary="Pharmacist of this pharmacy (a person, not its software), or admin: revoke a key now (tokens it "
                  "already bought expire within minutes)")
    async def revoke_key(self, pharmacy_id: FromPath[UUID], key_id: FromPath[UUID],
                         request: Request[Principal, Any, Any], pool: Pool) -> ApiKey:
        return await api_keys.revoke_key(pool, request.user, pharmacy_id, key_id, audit_context(request))


class PharmacyStockController(Controller):
    path = "/pharmacies/{pharmacy_id:uuid}/stock"
    tags = ["pharmacies"]

    @put("/", guards=[requires_role("pharmacist")], status_code=HTTP_200_OK, request_max_body_size=stock.MAX_BODY_BYTES,
         operation_class=_StockUploadOperation,
         summary="Pharmacist or software of this pharmacy: publish stock quantities, up to 20,000 drugs a call; "
                 "every item is checked and all are saved or none",
         description="Drugs not listed keep their quantity; send 0 for none left. A rejected upload is a 422 problem "
                     "whose errors[] name each bad item (body.items[17].quantity) and why.")
    async def upload(self, pharmacy_id: FromPath[UUID], body: RawBody, request: Request[Principal, Any, Any],
                     pool: Pool) -> StockUploadReport:
        return await stock.upload(pool, request.user, pharmacy_id, body, audit_context(request))

    @get("/", guards=[PHARMACY_STAFF],
         summary="Pharmacist or software of this pharmacy, or admin: the pharmacy's published stock, by drug name")
    async def stock_page(self, pharmacy_id: FromPath[UUID], request: Request[Principal, Any, Any], pool: Pool,
                         limit: Annotated[int, QueryParameter(ge=1, le=5_000)] = 500,
                         offset: Annotated[int, QueryParameter(ge=0, le=1_000_000)] = 0) -> StockPage:
        return await stock.stock_page(pool, request.user, pharmacy_id, limit, offset)


class PharmacyAdminController(Controller):
    path = "/admin/pharmacies"
    tags = ["pharmacies", "admin"]
    guards = [requires_role("admin")]

    @post("/", status_code=HTTP_201_CREATED, summary="Admin: register a pharmacy")
    async def create(self, data: JSONBody[PharmacyIn], request: Request[Principal, Any, Any],
                     pool: Pool) -> Pharmacy:
        return await service.create_pharmacy(pool, data, audit_context(request))

    @patch("/{pharmacy_id:uuid}", summary="Admin: change a pharmacy's registry facts, or deactivate / reactivate it")
    async def update(self, pharmacy_id: FromPath[UUID], data: JSONBody[PharmacyPatch],
                     request: Request[Principal, Any, Any], pool: Pool) -> Pharmacy:
        return await service.update_pharmacy(pool, pharmacy_id, data, audit_context(request))

    @post("/{pharmacy_id:uuid}/pharmacists", status_code=HTTP_201_CREATED,
          summary="Admin: create a pharmacist account at this pharmacy (signs in with password + authenticator)")
    async def add_pharmacist(self, pharmacy_id: FromPath[UUID], data: JSONBody[PharmacistIn],
                             request: Request[Principal, Any, Any], pool: Pool,
                             settings: AppSettings) -> StaffAccount:
        return await service.add_pharmacist(pool, settings, pharmacy_id, data, audit_context(request))
