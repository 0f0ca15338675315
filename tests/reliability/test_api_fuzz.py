"""Property-based fuzzing of the whole OpenAPI schema with schemathesis, against the real server (uvicorn in its own
process, embedded PostgreSQL, the demo data), as each role: no answer is a 5xx, every 4xx is a problem+json document
naming the field when a field is wrong, and every answer matches what the schema says of it.

The CI run is bounded and reproducible (Hypothesis derandomized: the same cases every run; about 6,500 cases, two
minutes) and prints how many cases it sent. ``LIENTHONG_LONG_TESTS=1`` sends ten times as many (about ten minutes).
Half the cases of an operation with path parameters use real ids of the arranged world, the rest random ones.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.demo import PHARMACY_ID
from api.embedded_pg import EmbeddedCluster
from notifications.sms_sandbox import SmsSandbox
from tests.reliability.fuzz_support import (
    LONG,
    ROLE_LOGINS,
    LiveServer,
    arrange_world,
    live_demo_server,
    problem_defects,
)

EXAMPLES_PER_MODE = 60 if LONG else 6
REQUEST_TIMEOUT_S = 30
_PATH_PARAMETER = re.compile(r"{(\w+)}")
# Not negative_data_rejection: the API ignores unknown query parameters and reads a number as a Unix time, as HTTP
# APIs commonly do, and it cannot see that our Authorization header replaces the broken one a negative case made.
SCHEMA_CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
async def fuzz_server(pg_cluster: EmbeddedCluster, demo_template_db: str, sms_sandbox: SmsSandbox,
                      tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[LiveServer, dict[str, str]]]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz")
    async with live_demo_server(pg_cluster, demo_template_db, sms_sandbox.base_url, data_dir) as (server, pool):
        yield server, await arrange_world(server, pool)


@dataclass
class Findings:
    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    by_operation: dict[str, Counter[int]] = field(default_factory=dict)
    # (operation, what) -> one example, so a defect shows once however many cases hit it
    defects: dict[tuple[str, str], str] = field(default_factory=dict)

    def add(self, operation: str, what: str, example: str) -> None:
        self.defects.setdefault((operation, what), example)


def _describe(case: schemathesis.Case) -> str:
    return (f"path={case.path_parameters!r} query={case.query!r} body={str(case.body)[:300]!r} "
            f"headers={ {k: v for k, v in (case.headers or {}).items() if k.lower() != 'authorization'}!r}")


def _exercise(case: schemathesis.Case, mode: GenerationMode, server: LiveServer, headers: dict[str, str],
              session: requests.Session, found: Findings) -> None:
    label = f"{case.operation.method.upper()} {case.operation.path}"
    try:
        response = case.call(base_url=server.base_url, session=session, headers=headers,
                             timeout=REQUEST_TIMEOUT_S)
    except requests.RequestException as exc:
        found.add(label, f"no answer: {type(exc).__name__}", _describe(case))
        return
    found.cases += 1
    status = response.status_code
    found.statuses[status] += 1
    found.by_operation.setdefault(label, Counter())[status] += 1
    if status >= 500:
        found.add(label, f"HTTP {status}", f"{_describe(case)} -> {response.content[:300]!r}")
        return
    if 400 <= status < 500:
        content_type = next(iter(response.headers.get("content-type") or [""]))
        for defect in problem_defects(status, content_type, response.content):
            found.add(label, f"{status}: {defect}", _describe(case))
    try:
        case.validate_response(response, checks=SCHEMA_CHECKS)
    except FailureGroup as group:
        for failure in group.exceptions:
            found.add(label, f"{mode.value} {status}: {failure.title}", f"{_describe(case)}: {failure.message[:400]}")
    except Failure as failure:
        found.add(label, f"{mode.value} {status}: {failure.title}", f"{_describe(case)}: {failure.message[:400]}")


def _strategy(operation: schemathesis.APIOperation, mode: GenerationMode,
              known: dict[str, str]) -> st.SearchStrategy[schemathesis.Case]:
    """Cases with random path parameters, and as many again with the real ids the arranged world has."""
    random_ids = operation.as_strategy(generation_mode=mode)
    real = {name: known[name] for name in _PATH_PARAMETER.findall(operation.path) if name in known}
    if not real:
        return random_ids
    return st.one_of(random_ids, operation.as_strategy(generation_mode=mode, path_parameters=real))


def _fuzz_operation(operation: schemathesis.APIOperation, mode: GenerationMode, known: dict[str, str],
                    send: Callable[[schemathesis.Case, GenerationMode], None]) -> None:
    @hypothesis.given(case=_strategy(operation, mode, known))
    @hypothesis.settings(max_examples=EXAMPLES_PER_MODE, derandomize=True, deadline=None, database=None,
                         phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
                         print_blob=False)
    def run(case: schemathesis.Case) -> None:
        send(case, mode)

    # an operation without anything to make invalid (no parameters, no body) has no negative cases
    with contextlib.suppress(hypothesis.errors.Unsatisfiable):
        run()


@pytest.mark.parametrize("role", list(ROLE_LOGINS))
def test_every_operation_as_each_role_answers_within_its_contract(
        fuzz_server: tuple[LiveServer, dict[str, str]], role: str) -> None:
    server, known = fuzz_server
    spec: dict[str, Any] = httpx.get(f"{server.base_url}/schema/openapi.json").json()
    schema = schemathesis.openapi.from_dict(spec)
    headers = server.headers[role]
    found = Findings()
    started = time.monotonic()
    operations = 0
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()
            operations += 1
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _fuzz_operation(operation, mode, known,
                                lambda case, m: _exercise(case, m, server, headers, session, found))
    elapsed = time.monotonic() - started
    print(f"\n[{role}] {found.cases} cases over {operations} operations in {elapsed:.1f} s; "
          f"statuses {dict(sorted(found.statuses.items()))}")
    reached = sorted(op for op, seen in found.by_operation.items() if any(200 <= s < 300 for s in seen))
    print(f"[{role}] {len(reached)} operations answered 2xx at least once")
    assert server.alive(), "the server died during the fuzz"
    report = "\n".join(f"  {op} | {what}\n      e.g. {example}"
                       for (op, what), example in sorted(found.defects.items()))
    assert not found.defects, f"{len(found.defects)} defect(s) as {role}:\n{report}"


# What the fuzzer found, kept as plain regression cases: (role, method, path, query, body, status, error path).
FOUND: list[tuple[str, str, str, dict[str, Any] | None, Any, int, str | None]] = [
    ("patient", "PUT", "/notifications/preferences", None,
     {"preferences": [{"category": "payment", "channel": "push", "enabled": True},
                      {"category": "payment", "channel": "push", "enabled": False}]}, 422, "body.preferences[1]"),
    ("pharmacist", "GET", f"/pharmacies/{PHARMACY_ID}/stock", {"offset": str(10**27)}, None, 422, "query.offset"),
    ("patient", "GET", "/me/access-log", {"before": str(2**63)}, None, 422, "query.before"),
    ("patient", "PATCH", "/me/profile", None, {"date_of_birth": "1899-12-31"}, 422, "body.date_of_birth"),
    ("patient", "POST", "/me/dependents", None, {"full_name": "Bé Na", "date_of_birth": "0001-01-01"}, 422,
     "body.date_of_birth"),
    ("doctor", "GET", "/icd10", {"q": "viêm\x00"}, None, 422, "query.q"),
    ("patient", "PATCH", "/me/profile", None, {"address": "12 Lê Lợi\x00"}, 422, "body"),
    ("anonymous", "GET", "/doctors/{doctor_id}/slots", {"from": "9999-12-31"}, None, 200, None),
    ("anonymous", "GET", "/doctors/{doctor_id}/slots", {"from": "0001-01-01"}, None, 200, None),
]


@pytest.mark.parametrize(("role", "method", "path", "query", "body", "status", "error_path"), FOUND)
def test_what_the_fuzzer_found_stays_fixed(fuzz_server: tuple[LiveServer, dict[str, str]], role: str, method: str,
                                           path: str, query: dict[str, Any] | None, body: Any, status: int,
                                           error_path: str | None) -> None:
    server, known = fuzz_server
    response = httpx.request(method, server.base_url + path.format(**known), params=query, json=body,
                             headers=server.headers[role], timeout=30)
    assert response.status_code == status, response.text
    if error_path is None:
        assert response.json() == []  # no slots that far from today, rather than an overflow
        return
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"] == "/problems/validation-error"
    assert [e["path"] for e in problem["errors"]] == [error_path], problem
