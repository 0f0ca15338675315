"""HTTP endpoints of the drug catalogue. Who may call: each summary (the catalogue is for prescribers, pharmacists and
administrators; patients see drugs only on their own prescriptions)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, get, post
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import FromPath, QueryParameter, RawBody

from api.audit import audit_context
from api.auth.principal import Principal, requires_role
from api.deps import Pool
from eprescription import catalogue
from eprescription.catalogue_import import MAX_FILE_BYTES, SOURCE_CODE, import_drugs
from eprescription.catalogue_schemas import Drug, DrugImportReport, DrugPage, DrugSource, Interaction

STAFF = requires_role("doctor", "pharmacist", "admin")


@dataclass
class _CsvUpload(Operation):
    """The import reads the raw body, which Litestar cannot describe by itself; say in the schema what to send."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(required=True, description="The catalogue file, UTF-8 CSV with a header row",
                                        content={"text/csv": OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))})


class DrugController(Controller):
    path = "/drugs"
    tags = ["drug catalogue"]
    guards = [STAFF]

    @get("/", summary="Doctor, pharmacist or admin: search drugs by INN, trade name, ATC code or registration "
                      "number (any case, with or without diacritics, prefixes, small typos); ranked, paginated")
    async def search(
        self, pool: Pool,
        q: Annotated[str | None, QueryParameter(max_length=100, description="e.g. 'amox', 'panadol', 'N02BE'")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=50)] = 20,
        offset: Annotated[int, QueryParameter(ge=0, le=10_000)] = 0,
    ) -> DrugPage:
        return await catalogue.search(pool, q, limit, offset)

    @get("/sources", summary="Doctor, pharmacist or admin: the datasets the catalogue was loaded from, and which "
                             "of them are demonstration data")
    async def sources(self, pool: Pool) -> list[DrugSource]:
        return await catalogue.sources(pool)

    @get("/{drug_id:uuid}", summary="Doctor, pharmacist or admin: one drug (also withdrawn ones)")
    async def drug(self, drug_id: FromPath[UUID], pool: Pool) -> Drug:
        return await catalogue.get_drug(pool, drug_id)

    @get("/{drug_id:uuid}/interactions",
         summary="Doctor, pharmacist or admin: interaction rules naming this drug's ingredients or ATC class, "
                 "most severe first")
    async def interactions(self, drug_id: FromPath[UUID], pool: Pool) -> list[Interaction]:
        return await catalogue.interactions(pool, drug_id)


class DrugImportController(Controller):
    path = "/admin/drugs"
    tags = ["drug catalogue", "admin"]
    guards = [requires_role("admin")]

    @post("/import", status_code=200, request_max_body_size=MAX_FILE_BYTES, operation_class=_CsvUpload,
          summary="Admin: import a catalogue CSV sent as the raw request body (text/csv, UTF-8); every row or none, "
                  "upserted by registration number, else INN + strength + dosage form",
          description="Columns: see the README, section 'Drug catalogue'. Rejected rows come back as a 422 "
                      "problem whose errors[] name each row (header = row 1) and the reason.")
    async def import_csv(
        self, body: RawBody, request: Request[Principal, Any, Any], pool: Pool,
        source: Annotated[str, QueryParameter(pattern=SOURCE_CODE.pattern, description="dataset code: dav-2026-01")],
        demo: Annotated[bool, QueryParameter(description="the file is demonstration data")] = False,
    ) -> DrugImportReport:
        return await import_drugs(pool, body, source=source, file_label=f"{source}.csv", demo_data=demo,
                                  ctx=audit_context(request))
