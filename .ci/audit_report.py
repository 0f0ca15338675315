"""Judge a pip-audit run for CI: python .ci/audit_report.py REPORT.json STDERR.txt

Exit 1 when a known vulnerability was found (or pip-audit failed for a reason other than the network). When the
advisory service could not be reached, or answered for no package at all (a mirror without PyPI's JSON API), say so
and exit 0: an audit that could not run is reported, never passed off as clean, and does not fail the build.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

NETWORK_ERROR = re.compile(r"requests\.exceptions\.\w*(Connection|Proxy|SSL|Timeout)\w*|Max retries exceeded|"
                           r"Temporary failure in name resolution|timed out")


def judge(report_text: str, stderr_text: str) -> tuple[int, str]:
    try:
        report = json.loads(report_text)
    except ValueError:
        if NETWORK_ERROR.search(stderr_text):
            return 0, "pip-audit: the vulnerability service could not be reached; the dependencies were NOT audited"
        return 1, f"pip-audit failed:\n{stderr_text}"
    dependencies = report.get("dependencies", [])
    found = [(d["name"], d["version"], v) for d in dependencies for v in d.get("vulns", [])]
    skipped = [d for d in dependencies if "skip_reason" in d]
    audited = len(dependencies) - len(skipped)
    if found:
        lines = [f"  {name} {version}: {v['id']} (fixed in {', '.join(v.get('fix_versions') or ['no release yet'])})"
                 for name, version, v in found]
        return 1, f"pip-audit: {len(found)} known vulnerabilities in the installed dependencies:\n" + "\n".join(lines)
    if dependencies and audited == 0:
        return 0, (f"pip-audit: the vulnerability service answered for none of the {len(dependencies)} packages "
                   f"(e.g. {skipped[0]['skip_reason']}); the dependencies were NOT audited")
    note = f"; not audited: {', '.join(d['name'] for d in skipped)}" if skipped else ""
    return 0, f"pip-audit: no known vulnerabilities in {audited} packages{note}"


def main() -> int:
    report, stderr = (Path(p) for p in sys.argv[1:3])
    code, message = judge(report.read_text() if report.exists() else "",
                          stderr.read_text() if stderr.exists() else "")
    print(message)
    return code


if __name__ == "__main__":
    sys.exit(main())
