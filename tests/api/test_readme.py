"""The README stays true: its configuration table lists every variable the settings read."""

from __future__ import annotations

import re
from pathlib import Path

from api.settings import SETTINGS_DOC

ROOT = Path(__file__).resolve().parents[2]


def test_every_environment_variable_read_is_documented_in_the_readme() -> None:
    source = (ROOT / "api" / "settings.py").read_text()
    read = set(re.findall(r'(?:env\.get\(|env\[|_int\(env, |_bool\(env, )"([A-Z_]+)"', source))
    documented = {name for name, _, _ in SETTINGS_DOC}
    assert read <= documented
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in documented if f"| `{name}` |" not in readme]
    assert missing == []
