"""The CI dependency audit (.ci/run → pip-audit → .ci/audit_report.py): a known vulnerability fails the build, an
audit that could not run says so without failing it, and is never reported as clean."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / ".ci" / "audit_report.py"
CONNECTION_REFUSED = (
    "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='pypi.org', port=443): Max retries exceeded with "
    "url: /pypi/aioice/0.13.0/json (Caused by NewConnectionError('Failed to establish a new connection'))")


def _judge(tmp_path: Path, report: object | None, stderr: str = "") -> subprocess.CompletedProcess[str]:
    report_file, stderr_file = tmp_path / "report.json", tmp_path / "stderr.txt"
    if report is not None:
        report_file.write_text(json.dumps(report))
    stderr_file.write_text(stderr)
    return subprocess.run([sys.executable, str(REPORT), str(report_file), str(stderr_file)], capture_output=True,
                          text=True, check=False, timeout=30)


def _dependency(name: str, *vuln_ids: str) -> dict[str, object]:
    return {"name": name, "version": "1.0", "vulns": [
        {"id": v, "fix_versions": ["1.1"], "aliases": [], "description": ""} for v in vuln_ids]}


def test_a_known_vulnerability_fails_the_build_naming_it(tmp_path: Path) -> None:
    judged = _judge(tmp_path, {"dependencies": [_dependency("litestar"), _dependency("jinja2", "GHSA-xxxx-yyyy")],
                               "fixes": []})

    assert judged.returncode == 1
    assert "jinja2 1.0: GHSA-xxxx-yyyy (fixed in 1.1)" in judged.stdout


def test_a_clean_audit_passes_and_lists_what_it_could_not_check(tmp_path: Path) -> None:
    judged = _judge(tmp_path, {"dependencies": [
        _dependency("litestar"), _dependency("msgspec"),
        {"name": "internal-tool", "skip_reason": "Dependency not found on PyPI and could not be audited"}]})

    assert judged.returncode == 0
    assert "no known vulnerabilities in 2 packages; not audited: internal-tool" in judged.stdout


@pytest.mark.parametrize("case", ["service-unreachable", "service-answers-for-nothing"])
def test_an_audit_that_could_not_run_says_so_and_does_not_fail_the_build(tmp_path: Path, case: str) -> None:
    if case == "service-unreachable":
        judged = _judge(tmp_path, None, f"Traceback (most recent call last):\n...\n{CONNECTION_REFUSED}\n")
    else:  # what this sandbox's PyPI mirror gives: no per-version JSON, so every package is skipped
        judged = _judge(tmp_path, {"dependencies": [
            {"name": n, "skip_reason": f"Dependency not found on PyPI and could not be audited: {n} (1.0)"}
            for n in ("aioice", "litestar")]})

    assert judged.returncode == 0
    assert "NOT audited" in judged.stdout
    assert "no known vulnerabilities" not in judged.stdout


def test_pip_audit_failing_for_another_reason_fails_the_build(tmp_path: Path) -> None:
    judged = _judge(tmp_path, None, "pip-audit: error: unrecognized arguments: --bogus\n")

    assert judged.returncode == 1
    assert "unrecognized arguments" in judged.stdout
