"""What every local sandbox of an external service shares: an HTTP server on 127.0.0.1 served from a thread, started
and stopped by ``lienthong serve`` or by a test (as a context manager). The protocol lives in each sandbox's handler.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

S = TypeVar("S")


def read_body(handler: BaseHTTPRequestHandler, max_bytes: int) -> bytes | None:
    """The request's body, or None when its Content-Length is missing a number, negative or over ``max_bytes``
    (each sandbox answers that in its own protocol's words)."""
    try:
        length = int(handler.headers.get("Content-Length") or "0")
    except ValueError:
        return None
    if not 0 <= length <= max_bytes:
        return None
    return handler.rfile.read(length)


class SandboxServer(ThreadingHTTPServer, Generic[S]):
    """The server; handlers reach their sandbox as ``self.server.sandbox``."""

    # Handler threads are joined by server_close(), so stop() returns only once every answer is out.
    daemon_threads = False
    # socketserver's default backlog of 5 drops connections when a burst of clients arrives together
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], sandbox: S) -> None:
        super().__init__(address, handler)
        self.sandbox = sandbox


class LoopbackSandbox:
    """Base of a sandbox: ``handler`` speaks the protocol and reaches the sandbox as ``self.server.sandbox``."""

    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler], label: str) -> None:
        self._address = (host, port)
        self._handler = handler
        self.label = label
        self._server: SandboxServer[Any] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError(f"{self.label} is already running")
        self._server = SandboxServer(self._address, self._handler, self)
        # a short poll interval keeps stop() quick; serving itself is not affected
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=self.label, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening, after in-flight requests (including stalled ones) have been answered."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()
        server.server_close()
        thread.join()
        self._server = self._thread = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{self.label} is not running")
        return f"http://{self._address[0]}:{self._server.server_port}"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
