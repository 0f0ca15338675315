"""HTTP endpoints through which the app registers the installation it runs on for pushes (any signed-in account,
each for its own devices only)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, Response, delete, get, post
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_204_NO_CONTENT

from api.audit import audit_context
from api.auth.principal import ROLES, Principal, requires_role
from api.deps import Pool
from notifications import devices
from notifications.devices import DeviceIn, DeviceView


class DeviceController(Controller):
    path = "/notifications/devices"
    tags = ["notifications"]
    guards = [requires_role(*ROLES)]

    @post("/", status_code=HTTP_201_CREATED,
          responses={HTTP_200_OK: ResponseSpec(DeviceView, description="The installation was already registered")},
          summary="Any signed-in user: register this installation for pushes (again on every app start and token "
                  "change); 201 when new, 200 when known (it moves to the caller's account and is re-enabled)")
    async def register(self, data: JSONBody[DeviceIn], request: Request[Principal, Any, Any],
                       pool: Pool) -> Response[DeviceView]:
        device, created = await devices.register(pool, request.user.account_id, data, audit_context(request))
        return Response(device, status_code=HTTP_201_CREATED if created else HTTP_200_OK)

    @get("/", summary="Any signed-in user: own devices that receive pushes (targets masked)")
    async def list_own(self, request: Request[Principal, Any, Any], pool: Pool) -> list[DeviceView]:
        return await devices.list_own(pool, request.user.account_id)

    @delete("/{device_id:uuid}", status_code=HTTP_204_NO_CONTENT,
            summary="Any signed-in user: stop pushes to one of own devices (sign-out); 404 for anyone else's")
    async def remove(self, device_id: FromPath[UUID], request: Request[Principal, Any, Any], pool: Pool) -> None:
        await devices.remove_own(pool, request.user.account_id, device_id, audit_context(request))
