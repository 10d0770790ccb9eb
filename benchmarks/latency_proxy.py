"""A latency model for the benchmark: a reverse proxy that delays each AWS request like an
in-region call, in front of the moto server every system under test talks to.

Run as its own process (`python -m benchmarks.latency_proxy UPSTREAM_URL`), it prints its URL
on its first line and serves on 127.0.0.1 until killed. Each request is read whole, held for
its service's latency (SQS 12 ms, DynamoDB 6 ms by default, +-20 % uniform jitter), forwarded
over a kept-alive connection, and answered with moto's response. The service comes from the
SigV4 credential scope of the Authorization header, the operation from X-Amz-Target (JSON
protocols) or the Action parameter (query protocol). Per operation it counts requests and adds
up moto's time to answer them (the emulator's share of each figure); it also adds up the time
moto had at least one request to answer, overlaps counted once.

Control, on the same port: GET /__proxy__/stats (JSON counts and times), POST
/__proxy__/reset (zero them), POST /__proxy__/latency?on=0|1 (hold requests or not).
"""

from __future__ import annotations

import http.client
import json
import random
import re
import sys
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

LATENCY_MS = {"sqs": 12.0, "dynamodb": 6.0}
OTHER_MS = 10.0  # Any other service (STS, Scheduler): a round trip of the same order.
JITTER = 0.2
LONG_POLLS = {"sqs.ReceiveMessage"}
CONTROL = "/__proxy__/"
_SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")
# Hop-by-hop headers (RFC 9110 section 7.6.1) are the proxy's own, not forwarded.
_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


class Stats:
    """Requests and moto's time per service and operation, from every handler thread."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency_on = True
        self._asked = 0  # requests with moto now (long polls left out)
        self.reset()

    def reset(self) -> None:
        """Forget what was counted."""
        with self.lock:
            self.count: dict[str, int] = defaultdict(int)
            self.upstream: dict[str, float] = defaultdict(float)
            self.held: dict[str, float] = defaultdict(float)
            # moto's busy time: while at least one request is with it (overlaps counted once);
            # long polls left out, as their time is mostly waiting for a message.
            self.busy = 0.0
            self._busy_since = time.perf_counter()  # Counted from here if moto is busy now.

    def forwarding(self, key: str) -> None:
        """A request of key goes to moto now."""
        if key in LONG_POLLS:
            return
        with self.lock:
            if self._asked == 0:
                self._busy_since = time.perf_counter()
            self._asked += 1

    def add(self, key: str, upstream: float, held: float) -> None:
        """One request of key (service.Operation) answered: moto's seconds, the seconds held."""
        with self.lock:
            self.count[key] += 1
            self.upstream[key] += upstream
            self.held[key] += held
            if key in LONG_POLLS:
                return
            self._asked -= 1
            if self._asked == 0:
                self.busy += time.perf_counter() - self._busy_since

    def snapshot(self) -> dict[str, Any]:
        """Counts and times so far, as JSON-ready dicts."""
        with self.lock:
            return {
                "latency_on": self.latency_on,
                "count": dict(self.count),
                "upstream_seconds": dict(self.upstream),
                "held_seconds": dict(self.held),
                "busy_seconds": self.busy,
            }


def operation(headers: Any, body: bytes) -> tuple[str, str]:
    """(service, operation) of a signed AWS request."""
    scope = _SCOPE.search(headers.get("Authorization", ""))
    service = scope.group(1) if scope else "unknown"
    target = headers.get("X-Amz-Target")
    if target:
        return service, target.rsplit(".", 1)[-1]
    action = parse_qs(body.decode("utf-8", "replace")).get("Action")
    return service, action[0] if action else "unknown"


def make_handler(upstream: str, stats: Stats) -> type[BaseHTTPRequestHandler]:
    """The request handler class for one upstream URL."""
    target = urlsplit(upstream)
    local = threading.local()

    def connection() -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, 60)
            local.conn = conn
        return conn

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # Keep-alive, as botocore's pool expects.
        # The headers and the body go out in two writes: with Nagle's algorithm the body waits
        # for the client's delayed ACK of the headers (40 ms on Linux), which no model holds.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: one line per request would cost more than the request."""

        def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
            self.send_response_only(status)
            for name, value in headers:
                if name.lower() not in _HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # The client gave up (a stopping worker's poll).

        def _control(self) -> None:
            path = urlsplit(self.path)
            if path.path == CONTROL + "reset":
                stats.reset()
            elif path.path == CONTROL + "latency":
                stats.latency_on = parse_qs(path.query).get("on", ["1"])[0] == "1"
            body = json.dumps(stats.snapshot()).encode()
            self._reply(200, [("Content-Type", "application/json")], body)

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.path.startswith(CONTROL):
                self._control()
                return
            service, name = operation(self.headers, body)
            held = 0.0
            if stats.latency_on:
                base = LATENCY_MS.get(service, OTHER_MS) / 1000
                held = base * random.uniform(1 - JITTER, 1 + JITTER)
                time.sleep(held)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            key = f"{service}.{name}"
            stats.forwarding(key)
            began = time.perf_counter()
            for attempt in (1, 2):
                conn = connection()
                try:
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                    break
                except (http.client.HTTPException, OSError):
                    conn.close()  # moto closed a kept-alive connection: one fresh try.
                    local.conn = None
                    if attempt == 2:
                        stats.add(key, time.perf_counter() - began, held)
                        raise
            stats.add(key, time.perf_counter() - began, held)
            self._reply(response.status, response.getheaders(), data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

    return Handler


class Server(ThreadingHTTPServer):
    """A thread per connection; a listen backlog for bursts of a hundred new connections."""

    daemon_threads = True
    request_queue_size = 256


def main(upstream: str) -> None:
    """Serve until killed; print the proxy's URL first."""
    server = Server(("127.0.0.1", 0), make_handler(upstream, Stats()))
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1])
