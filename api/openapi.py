"""What the OpenAPI document says that Litestar cannot infer: every operation's errors are problem+json documents
(api/errors.py), and routes marked public need no access token."""

from __future__ import annotations

from typing import Any

from litestar.openapi.datastructures import ResponseSpec
from litestar.plugins import ReceiveRoutePlugin
from litestar.routes import BaseRoute, HTTPRoute

from api.errors import PROBLEM_JSON, Problem

_BAD_REQUEST = ResponseSpec(Problem, media_type=PROBLEM_JSON, generate_examples=False,
                            description="The request cannot be read (malformed JSON, bad parameter types)")
_CLIENT_ERROR = ResponseSpec(Problem, media_type=PROBLEM_JSON, generate_examples=False,
                             description="An RFC 9457 problem: `type` says which, `errors[]` names the fields")


class ProblemDocs(ReceiveRoutePlugin):
    """Replaces Litestar's generic 400 body with our problem document, documents every other 4xx the same way,
    and drops the bearer requirement from public operations (``opt={"public": True}``, which JWT auth skips)."""

    def receive_route(self, route: BaseRoute) -> None:
        if not isinstance(route, HTTPRoute):
            return
        for handler in route.route_handlers:
            responses: dict[Any, ResponseSpec] = {400: _BAD_REQUEST, "4XX": _CLIENT_ERROR}
            handler.responses = {**responses, **(handler.responses or {})}
            if handler.opt.get("public"):
                handler.security = [{}]  # an empty requirement: anyone may call
