"""The ``lienthong`` command: serve, migrate, seed-demo, worker, dispatcher, media-worker, createuser, import-drugs,
backup, restore, db-stop."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit
from uuid import UUID

import asyncpg
import httpx
import msgspec

from api import db, embedded_pg
from api.audit import AuditContext
from api.auth.accounts import StaffAccountIn, create_staff_account
from api.demo import demo_accounts, national_rx_demo_doctors, seed_demo
from api.errors import DomainError
from api.logs import configure_logging
from api.progress import ProgressBar
from api.settings import Settings, SettingsError, load_settings, with_overrides
from eprescription.catalogue_import import check_size, import_drugs, source_code_for, summary_lines
from eprescription.errors import DrugImportRejected


def _say(text: str) -> None:
    print(text, flush=True)


async def _prepare(settings: Settings, *, seed: bool) -> tuple[db.DatabaseTarget, list[str], bool]:
    target = await asyncio.to_thread(db.resolve_target, settings)
    applied = await db.migrate(target.admin_dsn)
    seeded = False
    if seed and settings.mode == "demo":
        pool = await db.create_pool(target, with_overrides(settings, db_pool_min=1, db_pool_max=2))
        try:
            seeded = await seed_demo(pool, settings)
        finally:
            await pool.close()
    return target, applied, seeded


def _print_demo_accounts(settings: Settings) -> None:
    _say("Demo accounts (demo mode only; never expose a demo instance):")
    for account in demo_accounts():
        secret = f"  TOTP secret {account.totp_secret}" if account.totp_secret else ""
        password = f"  password {account.password}" if account.password else ""
        _say(f"  {account.role:<10} {account.login:<14}{password}{secret}  ({account.note})")
    _say(f"Patient OTPs land in the SMS sandbox inbox: http://127.0.0.1:{settings.sms_sandbox_port}/inbox")


def _free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class _MediaWorkerChild:
    """``lienthong media-worker`` as a child process on a free loopback port. A process of its own because aiortc's
    codec threads would otherwise compete with the API's event loop for the GIL (rtc.md §1.4)."""

    def __init__(self) -> None:
        self.url = ""
        self._spawn()

    def _spawn(self) -> None:
        port = _free_loopback_port()
        self.url = f"http://127.0.0.1:{port}"
        self.process = subprocess.Popen([sys.executable, "-m", "api.cli", "media-worker", "--host", "127.0.0.1",
                                         "--port", str(port)], env=os.environ.copy())

    def wait_ready(self, timeout_s: float = 60) -> str:
        for _ in range(3):  # another process may take the free port before the child binds it; then pick another
            deadline = time.monotonic() + timeout_s
            while self.process.poll() is None and time.monotonic() < deadline:
                try:
                    if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                        return self.url
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            self.stop()
            self._spawn()
        raise RuntimeError("the media worker did not start; run `lienthong media-worker` to see why")

    def stop(self) -> None:
        """SIGTERM first: the worker finalises open recording files on its way out."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    started = time.monotonic()
    settings = with_overrides(settings, host=args.host or settings.host, port=args.port or settings.port,
                              run_worker=settings.run_worker and not args.no_worker)
    if settings.media_worker_url is not None:
        return _serve(settings, started, None)
    # spawned first, so its imports (aiortc, PyAV) overlap with the database start-up and migrations
    media_worker = _MediaWorkerChild()
    try:
        return _serve(settings, started, media_worker)
    finally:
        media_worker.stop()


def _serve(settings: Settings, started: float, media_worker: _MediaWorkerChild | None) -> int:
    import uvicorn  # noqa: PLC0415 - only this command needs the server

    from api.app import create_app  # noqa: PLC0415
    from eprescription.national_sandbox import NationalRxSandbox  # noqa: PLC0415
    from notifications.fcm_sandbox import FcmSandbox, demo_service_account  # noqa: PLC0415
    from notifications.sms_sandbox import SmsSandbox  # noqa: PLC0415
    from payments.vnpay_sandbox import VnpaySandbox  # noqa: PLC0415

    we_started_db = settings.uses_embedded_db and not embedded_pg.is_running(settings.data_dir)
    _, applied, seeded = asyncio.run(_prepare(settings, seed=True))
    if applied:
        _say(f"Applied migrations: {', '.join(applied)}")
    if settings.uses_embedded_db:
        _say(f"Embedded PostgreSQL running, data in {settings.data_dir / 'pgdata'}")
    if media_worker is not None:
        settings = with_overrides(settings, media_worker_url=media_worker.wait_ready())
        _say(f"Media worker (aiortc) listening on {settings.media_worker_url}")
    sandbox = None
    if settings.uses_sms_sandbox:
        sandbox = SmsSandbox(port=settings.sms_sandbox_port, api_key=settings.sms_api_key,
                             secret_key=settings.sms_secret_key, brandnames=(settings.sms_brandname,))
        sandbox.start()
        _say(f"SMS sandbox listening on {sandbox.base_url} (inbox: {sandbox.base_url}/inbox)")
    fcm = None
    if settings.uses_fcm_sandbox:
        fcm = FcmSandbox(port=settings.fcm_sandbox_port, project_id=settings.fcm_project_id)
        fcm.trust_service_account(demo_service_account(settings))
        fcm.start()
        _say(f"FCM sandbox listening on {fcm.base_url} (received pushes: {fcm.base_url}/inbox)")
    vnpay = None
    if settings.uses_vnpay_sandbox:
        vnpay = VnpaySandbox(port=settings.vnpay_sandbox_port,
                             terminals={settings.vnpay_tmn_code: settings.vnpay_hash_secret})
        # with VNPay the IPN URL is registered with the terminal out of band (spec §1.6); here, at start-up
        vnpay.register_ipn_url(settings.vnpay_tmn_code, f"{settings.public_url}/payments/vnpay/ipn")
        vnpay.start()
        _say(f"VNPay sandbox listening on {vnpay.base_url} (payments: {vnpay.base_url}/inbox)")
    national = None
    if settings.uses_national_rx_sandbox:
        national = NationalRxSandbox(
            port=settings.national_rx_sandbox_port,
            facilities={settings.national_rx_facility_code: settings.national_rx_facility_password},
            doctors=national_rx_demo_doctors(), apps={settings.national_rx_app_name: settings.national_rx_app_key})
        national.start()
        _say(f"National e-prescription sandbox (QĐ 808) listening on {national.base_url}")
    if settings.mode == "demo":
        if seeded:
            _say("Demo data loaded.")
        _print_demo_accounts(settings)
    _say(f"Ready in {time.monotonic() - started:.1f} s: http://{settings.host}:{settings.port}  "
         f"(API docs: http://{settings.host}:{settings.port}/docs)")
    # uvicorn re-raises SIGTERM after its graceful shutdown, which would skip the clean-up below; make it an exit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None,
                    access_log=False, lifespan="on",
                    ws_max_size=2**20)  # signaling frames are capped at 64 KiB anyway
    finally:
        if national is not None:
            national.stop()
        if fcm is not None:
            fcm.stop()
        if vnpay is not None:
            vnpay.stop()
        if sandbox is not None:
            sandbox.stop()
        if we_started_db:
            embedded_pg.stop(settings.data_dir)
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    _, applied, _ = asyncio.run(_prepare(settings, seed=False))
    _say(f"Applied: {', '.join(applied)}" if applied else "Database is up to date.")
    return 0


def cmd_seed_demo(settings: Settings, args: argparse.Namespace) -> int:
    if settings.mode != "demo":
        _say("seed-demo only runs with LIENTHONG_MODE=demo")
        return 2
    _, _, seeded = asyncio.run(_prepare(settings, seed=True))
    _say("Demo data loaded." if seeded else "Demo data was already there.")
    _print_demo_accounts(settings)
    return 0


async def _run_until_signalled(job: Coroutine[Any, Any, None], what: str) -> None:
    """Run a background loop until SIGINT or SIGTERM cancels it."""
    task = asyncio.create_task(job)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    _say(f"{what} running; Ctrl-C to stop.")
    with contextlib.suppress(asyncio.CancelledError):
        await task


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    from api.worker import run_worker  # noqa: PLC0415

    async def main() -> None:
        target = await asyncio.to_thread(db.resolve_target, settings)
        pool = await db.create_pool(target, settings)
        try:
            await db.check_schema(pool)
            await _run_until_signalled(run_worker(pool, settings), "Worker")
        finally:
            await pool.close()

    asyncio.run(main())
    return 0


def cmd_dispatcher(settings: Settings, args: argparse.Namespace) -> int:
    """One more notification dispatcher beside those of running servers (they share the outbox safely)."""
    from api.app import sms_gateway_for  # noqa: PLC0415
    from notifications.dispatcher import Dispatcher  # noqa: PLC0415
    from notifications.fcm import push_sender_for  # noqa: PLC0415

    async def main() -> None:
        target = await asyncio.to_thread(db.resolve_target, settings)
        pool = await db.create_pool(target, with_overrides(settings, db_pool_min=1, db_pool_max=3))
        sms = sms_gateway_for(settings)
        push = push_sender_for(settings)
        try:
            await db.check_schema(pool)
            await _run_until_signalled(Dispatcher(pool, settings, push, sms).run(), "Notification dispatcher")
        finally:
            await push.close()
            sms.close()
            await pool.close()

    asyncio.run(main())
    return 0


def cmd_createuser(settings: Settings, args: argparse.Namespace) -> int:
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("Password: ")
    try:
        data = msgspec.convert({
            "role": args.role, "username": args.username, "password": password, "full_name": args.full_name,
            "facility_code": args.facility_code, "title": args.title or "", "licence_number": args.licence_number,
            "pharmacy_id": args.pharmacy_id, "has_pharmacist_degree": args.pharmacist_degree,
        }, StaffAccountIn)
    except msgspec.ValidationError as exc:
        _say(f"Invalid input: {exc}")
        return 2

    async def main() -> int:
        target, _, _ = await _prepare(settings, seed=False)
        pool = await db.create_pool(target, with_overrides(settings, db_pool_min=1, db_pool_max=2))
        try:
            account = await create_staff_account(
                pool, settings, data, AuditContext(None, "system", None, "lienthong createuser", None))
        except DomainError as exc:
            _say(f"Not created: {exc.detail}")
            return 2
        finally:
            await pool.close()
        _say(f"Created {account.role} {account.username} ({account.account_id}). "
             "The authenticator app is enrolled at first sign-in (POST /auth/login, then /auth/totp/enrol).")
        return 0

    return asyncio.run(main())


def cmd_import_drugs(settings: Settings, args: argparse.Namespace) -> int:
    path = Path(args.file)
    source = args.source or source_code_for(path.name)
    try:
        check_size(path.stat().st_size)
        data = path.read_bytes()
    except OSError as exc:
        _say(f"Cannot read {path}: {exc.strerror or exc}")
        return 2
    except DomainError as exc:
        _say(f"Import refused, nothing was imported: {exc.detail}")
        return 2

    async def main() -> int:
        target = await asyncio.to_thread(db.resolve_target, settings)
        pool = await db.create_pool(target, with_overrides(settings, db_pool_min=1, db_pool_max=2))
        bar = ProgressBar()
        try:
            await db.check_schema(pool)
            report = await import_drugs(
                pool, data, source=source, file_label=path.name, demo_data=args.demo, progress=bar,
                ctx=AuditContext(None, "system", None, "lienthong import-drugs", None))
        except DrugImportRejected as exc:
            bar.close()
            _say(f"Import rejected, nothing was imported: {exc.extra['rejected_rows']} of {exc.extra['rows']} rows "
                 "have problems (row numbers count the header as row 1):")
            for line in summary_lines(exc.problems):
                _say(line)
            return 2
        except DomainError as exc:
            bar.close()
            _say(f"Import refused, nothing was imported: {exc.detail}")
            return 2
        finally:
            bar.close()
            await pool.close()
        _say(f"Imported {path.name} as source '{report.source}'{' (demo data)' if report.demo_data else ''}: "
             f"{report.rows} rows accepted ({report.inserted} new, {report.updated} updated, "
             f"{report.unchanged} unchanged), 0 rejected.")
        return 0

    return asyncio.run(main())


def cmd_media_worker(settings: Settings, args: argparse.Namespace) -> int:
    from rtc.media_worker import serve  # noqa: PLC0415 - aiortc and PyAV load in the worker process only

    serve(settings, args.host, args.port)
    return 0


def _libpq(dsn: str) -> tuple[str, dict[str, str]]:
    """The URL without its password, and an environment carrying it, so it never shows in the process list."""
    parts = urlsplit(dsn)
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    if parts.password is None:
        return dsn, env
    env["PGPASSWORD"] = unquote(parts.password)
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{userinfo.split(':', 1)[0]}@{hostinfo}")), env


def _pg_tool(name: str, dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    url, env = _libpq(dsn)
    return subprocess.run([str(embedded_pg.POSTGRES_BIN_PATH / name), *args, f"--dbname={url}"], env=env,
                          capture_output=True, text=True, check=False)


def cmd_backup(settings: Settings, args: argparse.Namespace) -> int:
    """pg_dump (custom format: compressed, restorable table by table) of the whole database, from a consistent
    snapshot, so it may run while the API serves."""
    target = db.resolve_target(settings)
    path = Path(args.file)
    # patient data: readable by the owner only, before the first byte is written
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    path.chmod(0o600)
    result = _pg_tool("pg_dump", target.admin_dsn, "--format=custom", f"--file={path}")
    if result.returncode != 0:
        path.unlink(missing_ok=True)
        _say(f"Backup failed: {result.stderr.strip()}")
        return 1
    _say(f"Backed up to {path} ({path.stat().st_size:,} bytes).")
    return 0


async def _user_tables(dsn: str) -> int:
    conn: asyncpg.Connection = await asyncpg.connect(dsn)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        return count
    finally:
        await conn.close()


def cmd_restore(settings: Settings, args: argparse.Namespace) -> int:
    """pg_restore into the configured database in one transaction (all or nothing), then apply the migrations this
    release has and the backup lacks. An existing database is only replaced with ``--replace``."""
    target = db.resolve_target(settings)
    path = Path(args.file)
    if not path.is_file():
        _say(f"No backup file at {path}.")
        return 2
    if asyncio.run(_user_tables(target.admin_dsn)) and not args.replace:
        _say("The database is not empty; restore into a fresh one (a new LIENTHONG_DATA_DIR or DATABASE_URL), or "
             "pass --replace to drop what it holds first. Stop the API and workers before replacing.")
        return 2
    options = ["--single-transaction", "--exit-on-error", "--no-owner"]
    if args.replace:
        options += ["--clean", "--if-exists"]
    result = _pg_tool("pg_restore", target.admin_dsn, *options, str(path))
    if result.returncode != 0:
        _say(f"Restore failed, nothing was changed: {result.stderr.strip()}")
        return 1
    applied = asyncio.run(db.migrate(target.admin_dsn))
    _say(f"Restored {path}" + (f"; then applied {', '.join(applied)}." if applied else "."))
    return 0


def cmd_db_stop(settings: Settings, args: argparse.Namespace) -> int:
    if not settings.uses_embedded_db:
        _say("DATABASE_URL is set: there is no embedded database to stop.")
        return 2
    embedded_pg.stop(settings.data_dir)
    _say("Embedded PostgreSQL stopped.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lienthong", description="Lienthong telemedicine backend")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="migrate, load demo data (demo mode) and run the API with its workers")
    serve.add_argument("--host", help="listen address (default LIENTHONG_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default LIENTHONG_PORT or 8000)")
    serve.add_argument("--no-worker", action="store_true", help="API only; run `lienthong worker` separately")
    serve.set_defaults(func=cmd_serve)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    sub.add_parser("seed-demo", help="load the demo data (demo mode)").set_defaults(func=cmd_seed_demo)
    sub.add_parser("worker", help="run background workers without the API").set_defaults(func=cmd_worker)
    sub.add_parser("dispatcher", help="run a notification dispatcher without the API").set_defaults(
        func=cmd_dispatcher)
    media = sub.add_parser("media-worker", help="run the aiortc media worker (pre-call test, recording) alone")
    media.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1; keep it private)")
    media.add_argument("--port", type=int, default=8010, help="listen port (default 8010)")
    media.set_defaults(func=cmd_media_worker)
    backup = sub.add_parser("backup", help="dump the database to a file (pg_dump custom format; safe while serving)")
    backup.add_argument("file", help="where to write the dump, e.g. lienthong-2026-01-31.dump")
    backup.set_defaults(func=cmd_backup)
    restore = sub.add_parser("restore", help="restore a dump made by `lienthong backup`, then migrate")
    restore.add_argument("file", help="a dump made by `lienthong backup`")
    restore.add_argument("--replace", action="store_true",
                         help="drop what the database holds first (stop the API and workers before)")
    restore.set_defaults(func=cmd_restore)
    sub.add_parser("db-stop", help="stop the embedded PostgreSQL").set_defaults(func=cmd_db_stop)
    create = sub.add_parser("createuser", help="create a doctor, pharmacist or admin account")
    create.add_argument("--role", required=True, choices=["doctor", "pharmacist", "admin"])
    create.add_argument("--username", required=True)
    create.add_argument("--full-name", required=True)
    create.add_argument("--facility-code", help="doctor: 5-character facility (BHYT) code")
    create.add_argument("--licence-number", help="doctor: practising licence number")
    create.add_argument("--title", help="doctor: title, e.g. BSCKI")
    create.add_argument("--pharmacy-id", type=UUID, help="pharmacist: pharmacy id")
    create.add_argument("--pharmacist-degree", action="store_true", help="pharmacist holds a pharmacist degree")
    create.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    create.set_defaults(func=cmd_createuser)
    drugs = sub.add_parser("import-drugs", help="import a drug catalogue CSV, every row or none (see the README)")
    drugs.add_argument("file", help="CSV file, UTF-8, with a header row")
    drugs.add_argument("--source", help="dataset code recorded on every row (default: from the file name)")
    drugs.add_argument("--demo", action="store_true", help="the file is demonstration data, and the API will say so")
    drugs.set_defaults(func=cmd_import_drugs)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"Configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        code: int = args.func(settings, args)
    except (db.MigrationError, asyncpg.PostgresError, OSError, RuntimeError) as exc:
        print(f"lienthong {args.command}: {exc}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())
