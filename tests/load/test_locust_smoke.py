"""Smoke test of the Locust load tests (load_tests/locustfiles, run by load_tests/run_load.py): each scenario runs
headless for a few seconds with a few users against one freshly started platform at the tiny scale, through the
same runner code as a real load test, and must show no unexpected failure (an expected 409, such as a slot taken
a moment earlier, is not one) while exercising its key endpoints."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from load_tests import run_load

SMOKE_DURATION = "15s"
USERS = {"consultation": 4, "prescription": 3, "mixed": 5}  # mixed: 5 users include each of its 5 user classes
# Requests each scenario must have made at least once in its smoke run.
KEY_ENDPOINTS = {
    "consultation": ("POST /auth/otp/verify", "GET /doctors?q=", "GET /doctors/{id}/slots", "POST /consultations",
                     "POST /consultations/{id}/check-in", "GET /doctors/me/queue",
                     "POST /consultations/{id}/join-token", "WS connect+join", "WS offer→answer (relay RTT)",
                     "WS ice-candidate (relay)", "WS ping→pong", "WS end"),
    "prescription": ("POST /prescriptions/dry-run", "POST /prescriptions/signed", "POST /dispensing/verify",
                     "POST /dispensing/prescriptions/{code}/hold", "POST /dispensing/prescriptions/{code}/dispenses",
                     "GET /prescriptions"),
    # a doctor signs at most once per 30 s TOTP step, so signing is not required of the last 15 s run
    "mixed": ("POST /dispensing/verify", "GET /prescriptions", "POST /consultations", "WS connect+join",
              "GET /prescriptions?consultation_id="),
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[run_load.Prepared]:
    with run_load.prepared("tiny", 1, tmp_path_factory.mktemp("load")) as prep:
        yield prep


@pytest.mark.parametrize("scenario", run_load.SCENARIOS)
def test_scenario_smoke(scenario: str, prepared: run_load.Prepared, tmp_path: Path) -> None:
    result = run_load.run_locust(prepared, scenario, USERS[scenario], USERS[scenario], SMOKE_DURATION,
                                 tmp_path / scenario, quiet=True)
    summary = (tmp_path / scenario / "summary.md").read_text()
    assert result.total is not None and result.total.requests > 0, summary
    assert result.unexpected_failures == 0, summary
    missing = [name for name in KEY_ENDPOINTS[scenario] if result.count(name) == 0]
    assert not missing, f"not exercised: {missing}\n{summary}"
    assert (tmp_path / scenario / "report.html").stat().st_size > 0
    assert "p99" in summary and "Server CPU" in summary
