"""A local HTTP server for the fetch tests: serves files from memory the way a real server fails.

``/<mode>/<file>`` serves ``<file>`` with its full ``Content-Length``, and ``mode`` says how:
``ok`` (all of it), ``nolength`` (all of it, no ``Content-Length``), ``truncate`` (half, then the
connection closes), ``stall`` (half, then nothing until the client gives up), ``slow`` (64 KiB
every 50 ms), ``redirect`` (a 302 to the URL in ``FileServer.redirects[file]``). Unknown files are 404. Nothing leaves the machine. Imported by the tests as
``http_server`` (pytest puts this folder on ``sys.path``).
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODES = ("ok", "nolength", "truncate", "stall", "slow", "redirect")


class FileServer(ThreadingHTTPServer):
    """Serves ``files`` (name -> bytes) on 127.0.0.1; ``requests`` counts the GETs per file name."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.redirects: dict[str, str] = {}
        self.requests: Counter[str] = Counter()
        self.stop_stalling = threading.Event()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> "FileServer":
        self._thread.start()
        return self

    def close(self) -> None:
        self.stop_stalling.set()
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: FileServer

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        mode, _, name = self.path.lstrip("/").partition("/")
        if mode == "redirect" and name in self.server.redirects:
            self.send_response(302)
            self.send_header("Location", self.server.redirects[name])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = self.server.files.get(name)
        if mode not in MODES or data is None:
            self.send_error(404, "Not Found")
            return
        self.server.requests[name] += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if mode != "nolength":
            self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            if mode in ("ok", "nolength"):
                self.wfile.write(data)
            elif mode == "truncate":
                self.wfile.write(data[: len(data) // 2])
            elif mode == "stall":
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.server.stop_stalling.wait(60)
            else:  # slow
                for start in range(0, len(data), 1 << 16):
                    self.wfile.write(data[start:start + (1 << 16)])
                    self.wfile.flush()
                    time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass
