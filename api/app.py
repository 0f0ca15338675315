"""The composition root: ``create_app(settings)`` assembles routes, auth, errors, docs and the database pool."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from litestar import Litestar, get
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from openapi_ui_bundles import swagger_ui

from api import db, health
from api.admin import AdminController
from api.auth.principal import jwt_auth
from api.auth.routes import AuthController
from api.deps import Pool
from api.errors import EXCEPTION_HANDLERS
from api.logs import RequestIdMiddleware
from api.openapi import ProblemDocs
from api.patients.routes import ConsentDocumentController, MeController, PatientController
from api.security import SecurityHeaders, inline_script_hashes, preflight_middleware
from api.settings import Settings, load_settings
from api.worker import run_worker
from console.routes import STATIC_DIR, console_assets, home
from consultations.routes import ConsultationController, DoctorController, icd10_search
from eprescription.catalogue_routes import DrugController, DrugImportController
from eprescription.routes import PrescriptionController
from notifications.dev_inbox import dev_inbox
from notifications.device_routes import DeviceController
from notifications.routes import NotificationAdminController, NotificationController
from notifications.sms import SmsGateway, SmsGatewayConfig
from notifications.vaccination_routes import VaccinationController, VaccineController
from payments.routes import PaymentAdminController, PaymentController, VnpayController
from pharmacy_link.dispensing_routes import DispensingController
from pharmacy_link.routes import (
    PharmacyAdminController,
    PharmacyApiKeyController,
    PharmacyController,
    PharmacyStockController,
)
from rtc.hub import signaling_lifespan
from rtc.media import PrecallController, RecordingController
from rtc.routes import CallController, signaling

API_VERSION = "0.1.0"


@get("/docs", opt={"public": True}, include_in_schema=False)
async def docs_redirect() -> Redirect:
    return Redirect("/schema/swagger")


def sms_gateway_for(settings: Settings) -> SmsGateway:
    base_url = settings.sms_gateway_url or f"http://127.0.0.1:{settings.sms_sandbox_port}"
    return SmsGateway(SmsGatewayConfig(base_url=base_url, api_key=settings.sms_api_key,
                                       secret_key=settings.sms_secret_key, brandname=settings.sms_brandname))


def _request_id_outermost(config: AppConfig) -> AppConfig:
    config.middleware.insert(0, DefineMiddleware(RequestIdMiddleware))
    return config


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or load_settings()
    auth = jwt_auth(settings)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        target = await asyncio.to_thread(db.resolve_target, settings)
        pool = await db.create_pool(target, settings)
        sms = sms_gateway_for(settings)
        try:
            await db.check_schema(pool)
            app.state.pool = pool
            app.state.sms = sms
            background = []
            if settings.run_worker:
                background.append(asyncio.create_task(run_worker(pool, settings)))
            push = None
            if settings.run_dispatcher:
                # imported here: firebase-admin and its Google libraries load only where pushes are sent
                from notifications.dispatcher import Dispatcher  # noqa: PLC0415
                from notifications.fcm import push_sender_for  # noqa: PLC0415

                # the SDK's async HTTP client binds to the loop that first uses it: created here, in the app's loop
                push = push_sender_for(settings)
                background.append(asyncio.create_task(Dispatcher(pool, settings, push, sms).run()))
            try:
                yield
            finally:
                for task in background:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                if push is not None:
                    await push.close()
        finally:
            sms.close()
            await pool.close()

    def provide_pool(state: State) -> asyncpg.Pool:
        pool: asyncpg.Pool = state.pool
        return pool

    # ``pool`` is a parameter of the two below only to chain them after it: Litestar resolves independent
    # dependencies of one handler concurrently, in an anyio task group per request, which cost the verify hot path
    # ~8 % of its CPU (py-spy) for values that are plain attribute reads.
    def provide_sms(state: State, pool: Pool) -> SmsGateway:
        sms: SmsGateway = state.sms
        return sms

    def provide_settings(pool: Pool) -> Settings:
        return settings

    openapi = OpenAPIConfig(
        title="Lienthong API",
        version=API_VERSION,
        description="Telemedicine and e-prescription backend. Errors are RFC 9457 problem+json documents.",
        path="/schema",
        render_plugins=[SwaggerRenderPlugin(
            path="/swagger", js_url="/docs/assets/swagger-ui-bundle.js", css_url="/docs/assets/swagger-ui.css",
            standalone_preset_js_url="/docs/assets/swagger-ui-standalone-preset.js",
            favicon='<link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">',
        )],
        components=Components(security_schemes={"BearerToken": SecurityScheme(type="http", scheme="bearer",
                                                                              bearer_format="JWT")}),
    )

    return Litestar(
        route_handlers=[
            AuthController, MeController, PatientController, ConsentDocumentController, AdminController,
            PharmacyController, PharmacyApiKeyController, PharmacyStockController, PharmacyAdminController,
            DispensingController,
            DoctorController, ConsultationController, icd10_search,
            CallController, signaling, DrugController, DrugImportController, PrescriptionController,
            PrecallController, RecordingController, VaccineController, VaccinationController,
            NotificationController, NotificationAdminController, DeviceController,
            PaymentController, VnpayController, PaymentAdminController,
            health.live, health.ready, docs_redirect, home, console_assets,
            create_static_files_router(path="/docs/assets", directories=[swagger_ui.static_path],
                                       opt={"public": True}, include_in_schema=False),
            *([dev_inbox] if settings.mode == "demo" and (settings.uses_sms_sandbox or settings.uses_fcm_sandbox)
              else []),
        ],
        dependencies={"pool": Provide(provide_pool, sync_to_thread=False),
                      "sms": Provide(provide_sms, sync_to_thread=False),
                      "settings": Provide(provide_settings, sync_to_thread=False)},
        lifespan=[lifespan, signaling_lifespan(settings)],  # the hub starts after the pool, stops before it
        # JWT auth inserts its middleware first; the request id must wrap it so 401s carry an id too.
        on_app_init=[auth.on_app_init, _request_id_outermost],
        middleware=[preflight_middleware(settings)],
        before_send=[SecurityHeaders(settings, inline_script_hashes(STATIC_DIR.rglob("*.html")))],
        exception_handlers=dict(EXCEPTION_HANDLERS),
        request_max_body_size=settings.max_body_bytes,
        openapi_config=openapi,
        plugins=[ProblemDocs()],
        debug=False,
        logging_config=None,
    )

