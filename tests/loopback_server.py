"""A threaded HTTP file server on 127.0.0.1 for download tests, with Range support and fault injection."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"^bytes=(\d+)-$")


@dataclass
class ServerState:
    """Files served by path, what to break, and a log of requests.

    ``cut_after`` maps a path to a byte count: the next response for that path announces the full length
    but closes the connection after that many body bytes (once per entry, then the entry is removed).
    ``fail_status`` maps a path to an HTTP status returned instead of the file, and ``redirects`` maps a
    path to another path on this server, sent as a 302 redirect (as GitHub release downloads do).
    """

    files: dict[str, bytes] = field(default_factory=dict)
    cut_after: dict[str, int] = field(default_factory=dict)
    fail_status: dict[str, int] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    support_range: bool = True
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _make_handler(state: ServerState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):  # noqa: A002 - silence the default stderr log
            pass

        def do_GET(self):  # noqa: N802 - name fixed by BaseHTTPRequestHandler
            range_header = self.headers.get("Range")
            with state.lock:
                state.requests.append((self.path, range_header))
                status = state.fail_status.get(self.path)
                body = state.files.get(self.path)
                cut = state.cut_after.pop(self.path, None)
                redirect = state.redirects.get(self.path)

            if redirect is not None:
                self.send_response(302)
                self.send_header("Location", redirect)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()
                return

            if status is not None or body is None:
                self.send_response(status or 404)
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()
                return

            start = 0
            match = _RANGE.match(range_header or "")
            if state.support_range and match is not None:
                start = int(match.group(1))
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)

            payload = body[start:]
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Connection", "close")
            self.end_headers()
            if cut is not None:
                self.wfile.write(payload[:cut])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(payload)

    return Handler


class LoopbackServer:
    """Context manager that serves ``state.files`` on an ephemeral 127.0.0.1 port from a daemon thread."""

    def __init__(self) -> None:
        self.state = ServerState()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self.state))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
