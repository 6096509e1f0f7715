"""The test kubelet's HTTPS endpoint for container logs.

kube-apiserver answers ``pods/log`` (``kubectl logs``,
``read_namespaced_pod_log``) by dialing the Node's InternalIP at its
``daemonEndpoints.kubeletEndpoint.Port`` and asking
``GET /containerLogs/{namespace}/{pod}/{container}?follow=..&tailLines=..``.
This server answers that from the log files the kubelet writes, and asks the
caller for a certificate from the cluster CA, as a real kubelet does.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["ContainerLog", "LogServer"]

log = logging.getLogger(__name__)

_POLL = 0.1  # seconds between looks at a followed file; cheap, and feels live


@dataclass
class ContainerLog:
    """The log files of one container: one per run, the last one current."""

    runs: list[Path] = field(default_factory=list)
    running: bool = False

    def file(self, previous: bool) -> Path | None:
        if previous:
            return self.runs[-2] if len(self.runs) >= 2 else None
        return self.runs[-1] if self.runs else None


def _tail_offset(f: BinaryIO, lines: int) -> int:
    """Offset where the last ``lines`` lines of ``f`` start (reads backwards)."""
    end = f.seek(0, os.SEEK_END)
    if lines <= 0:
        return end
    pos, seen, block = end, 0, 8192
    # A trailing newline ends the last line; it does not start a new one.
    f.seek(max(end - 1, 0))
    if end and f.read(1) == b"\n":
        end -= 1
        pos = end
    while pos > 0:
        start = max(pos - block, 0)
        f.seek(start)
        chunk = f.read(pos - start)
        for i in range(len(chunk) - 1, -1, -1):
            if chunk[i] == 0x0A:
                seen += 1
                if seen == lines:
                    return start + i + 1
        pos = start
    return 0


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    # HTTP/1.0: the body ends when we close, which suits a followed stream of
    # unknown length without chunked encoding.
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:
        log.debug("log server: " + format, *args)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if len(parts) != 4 or parts[0] != "containerLogs":
            self.send_error(404, "only /containerLogs/{namespace}/{pod}/{container} is served")
            return
        _, namespace, pod, container = parts
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        follow = query.get("follow", "false").lower() in ("true", "1")
        previous = query.get("previous", "false").lower() in ("true", "1")
        try:
            tail = int(query["tailLines"]) if "tailLines" in query else None
            limit = int(query["limitBytes"]) if "limitBytes" in query else None
        except ValueError:
            self.send_error(400, "tailLines and limitBytes must be integers")
            return
        entry = self.server.logs.get((namespace, pod, container))
        path = entry.file(previous) if entry else None
        if entry is None or path is None:
            what = "previous terminated container" if previous and entry else "container"
            self.send_error(404, f"{what} {container!r} of pod {namespace}/{pod} not found")
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.end_headers()
        try:
            self._stream(entry, path, follow and not previous, tail, limit)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError) as e:
            log.debug("log stream of %s/%s/%s ended: %s", namespace, pod, container, e)

    def _stream(self, entry: ContainerLog, path: Path, follow: bool,
                tail: int | None, limit: int | None) -> None:
        with open(path, "rb") as f:
            f.seek(_tail_offset(f, tail) if tail is not None else 0)
            left = limit
            while left is None or left > 0:
                data = f.read(65536 if left is None else min(left, 65536))
                if data:
                    self.wfile.write(data)
                    left = None if left is None else left - len(data)
                    continue
                # EOF: done unless following a container that still runs (a
                # restart makes a new file, which a follower does not chase).
                if not follow or entry.file(False) != path:
                    return
                if not entry.running:
                    data = f.read()  # whatever came between the read and the check
                    if data:
                        self.wfile.write(data[:left] if left is not None else data)
                    return
                if self.server.stopping.wait(_POLL) or self._client_gone():
                    return

    def _client_gone(self) -> bool:
        """True once the caller hung up (it sends nothing else, so readable = EOF)."""
        sock = self.connection
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        sock.settimeout(0.01)
        try:
            return bool(sock.recv(1) == b"")
        except (ssl.SSLWantReadError, socket.timeout):
            return False
        except OSError:
            return True
        finally:
            sock.settimeout(None)


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung follower must not block the kubelet's stop
    logs: dict[tuple[str, str, str], ContainerLog]
    stopping: threading.Event


class LogServer:
    """HTTPS server on 127.0.0.1 (free port) serving ``logs`` keyed by (ns, pod, container)."""

    def __init__(self, cert: Path, key: Path, client_ca: Path) -> None:
        self.logs: dict[tuple[str, str, str], ContainerLog] = {}
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        ctx.load_verify_locations(str(client_ca))
        ctx.verify_mode = ssl.CERT_REQUIRED
        self._server = _Server(("127.0.0.1", 0), _Handler)
        # Handshake in the handler thread, not in accept(): a slow client must
        # not stall the accept loop.
        self._server.socket = ctx.wrap_socket(
            self._server.socket, server_side=True, do_handshake_on_connect=False)
        self._server.logs = self.logs
        self._server.stopping = threading.Event()
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.5},
            name="test-kubelet-logs", daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.debug("log server on https://127.0.0.1:%d", self.port)

    def stop(self) -> None:
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
