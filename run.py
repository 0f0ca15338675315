#!/usr/bin/env python3
"""Lienthong on a fresh machine with only Python 3.11+: installs itself into .venv, then runs a command.

    python3 run.py serve     # start the whole platform (embedded PostgreSQL, demo data, API on :8000)
    python3 run.py test      # run the whole test suite
    python3 run.py check     # lint (ruff) and type-check (mypy)
    python3 run.py <lienthong subcommand> [...]   # e.g. migrate, createuser, worker, db-stop

The install is redone only when pyproject.toml changes. Standard library only: this file runs before anything
is installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
STAMP = VENV / ".lienthong-installed"


def ensure_installed() -> None:
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted and PYTHON.exists():
        return
    if not PYTHON.exists():
        print("Creating .venv ...", flush=True)
        venv.create(VENV, with_pip=True)
    print("Installing Lienthong and its dependencies into .venv (first run only) ...", flush=True)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "-e", f"{ROOT}[dev]"], check=True, cwd=ROOT)
    STAMP.write_text(wanted)


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):
        print(f"Lienthong needs Python 3.11 or newer; this is {sys.version.split()[0]}.", file=sys.stderr)
        return 2
    if not argv or argv[0] in {"-h", "--help"}:
        print(__doc__)
        return 0
    ensure_installed()
    command, rest = argv[0], argv[1:]
    os.chdir(ROOT)
    if command == "check":
        lint = subprocess.call([str(BIN / "ruff"), "check", "."])
        types = subprocess.call([str(BIN / "mypy")])
        return lint or types
    # exec, not a child process: Ctrl-C and SIGTERM then reach the server itself, which shuts down cleanly
    argv_ = [str(PYTHON), "-m", "pytest", *rest] if command == "test" else [str(BIN / "lienthong"), command, *rest]
    os.execv(argv_[0], argv_)  # noqa: S606 - fixed program, arguments passed through
    return 0  # not reached


if __name__ == "__main__":
    try:
        raise SystemExit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        raise SystemExit(130) from None
