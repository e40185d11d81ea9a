"""Redfish servers for the collector's tests, on loopback ports, stopped by PID.

`sushy_static` serves a mockup tree with the real `sushy-static` (one per test module).
`LocalRedfishService` is a small real HTTP server in a thread for what sushy-static cannot do:
answer HTTP 500, drop connections, and create Redfish sessions (sushy-static ignores POST).
Tests using it say so in their names (`..._fake_session_service`, `..._broken_service`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from worker_process import free_port

from twin.collect.demo import combined_mockup

DATA = Path(__file__).parent.parent / "data" / "redfish"


def combined_tree(into: Path) -> Path:
    """DMTF's rackmount BMC mockup plus our CDUs and rack PDUs, plus two resources for error paths:
    a chassis with nothing but its name, and a rack PDU whose body is not JSON."""
    tree = combined_mockup(DATA, into)
    bare = tree / "Chassis" / "Bare"
    bare.mkdir()
    (bare / "index.json").write_text(json.dumps({
        "@odata.id": "/redfish/v1/Chassis/Bare", "@odata.type": "#Chassis.v1_22_0.Chassis", "Id": "Bare",
        "Name": "Chassis with no sensors", "ChassisType": "RackMount", "Status": {"State": "Enabled", "Health": "OK"}}))
    broken = tree / "PowerEquipment" / "RackPDUs" / "broken"
    broken.mkdir()
    (broken / "index.json").write_text('{"@odata.id": "/redfish/v1/PowerEquipment/RackPDUs/broken", "Id": ')
    return tree


@contextmanager
def sushy_static(tree: Path, log: Path) -> Iterator[str]:
    """`sushy-static -m tree` on a free loopback port; yields its base URL."""
    port = free_port()
    exe = Path(sys.executable).with_name("sushy-static")
    with log.open("wb") as out:
        proc = subprocess.Popen([str(exe), "-i", "127.0.0.1", "-p", str(port), "-m", str(tree)],
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"{url}/redfish/v1/", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"sushy-static did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class LocalRedfishService:
    """A tiny Redfish service: a service root, one chassis with power, and a session service.

    `status` forces every answer's HTTP status (500: a broken BMC); `drop_first` drops that many
    connections unanswered before answering (retry tests); with `user`/`password` set, GETs
    other than the service root need a session token from POST .../Sessions.
    """

    def __init__(self, *, status: int = 200, drop_first: int = 0, user: str | None = None,
                 password: str | None = None, watts: float = 512.0, delay: float = 0.0) -> None:
        self.status, self.drop_first, self.user, self.password, self.watts = status, drop_first, user, password, watts
        self.delay = delay
        """Seconds each GET waits before answering (a slow BMC)."""
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()
        self.tokens: set[str] = set()
        self.logins = 0
        self.logouts = 0
        self.requests = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.block_on_close = False  # a slow answer nobody waits for any more is not waited for
        self._server.handle_error = lambda request, address: None  # type: ignore[method-assign]  # client hung up
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> LocalRedfishService:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _resources(self) -> dict[str, Any]:
        return {
            "/redfish/v1": {"@odata.id": "/redfish/v1", "Id": "RootService", "Name": "Local",
                            "Chassis": {"@odata.id": "/redfish/v1/Chassis"},
                            "Links": {"Sessions": {"@odata.id": "/redfish/v1/SessionService/Sessions"}}},
            "/redfish/v1/Chassis": {"Members": [{"@odata.id": "/redfish/v1/Chassis/1"}]},
            "/redfish/v1/Chassis/1": {"@odata.id": "/redfish/v1/Chassis/1", "Id": "1",
                                      "EnvironmentMetrics": {"@odata.id": "/redfish/v1/Chassis/1/EnvironmentMetrics"}},
            "/redfish/v1/Chassis/1/EnvironmentMetrics": {"PowerWatts": {"Reading": self.watts}},
            "/redfish/v1/SessionService/Sessions": {"Members": []},
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
                data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _dropped(self) -> bool:
                service.requests += 1
                if service.drop_first > 0:
                    service.drop_first -= 1
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return True
                return False

            def do_GET(self) -> None:  # noqa: N802
                if self._dropped():
                    return
                with service._lock:
                    service.in_flight += 1
                    service.most_in_flight = max(service.most_in_flight, service.in_flight)
                try:
                    time.sleep(service.delay)
                    self._get()
                finally:
                    with service._lock:
                        service.in_flight -= 1

            def _get(self) -> None:
                if service.status != 200:
                    self._send(service.status, {"error": {"code": "Base.1.0.InternalError",
                                                          "message": "the BMC is having a bad day"}})
                    return
                path = self.path.rstrip("/")
                if service.user and path != "/redfish/v1" and self.headers.get("X-Auth-Token") not in service.tokens:
                    self._send(401, {"error": {"message": "no session"}})
                    return
                body = service._resources().get(path)
                self._send(200, body) if body is not None else self._send(404, {"error": {"message": "not here"}})

            def do_POST(self) -> None:  # noqa: N802
                if self._dropped():
                    return
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path.rstrip("/") != "/redfish/v1/SessionService/Sessions":
                    self._send(405)
                    return
                if body.get("UserName") != service.user or body.get("Password") != service.password:
                    self._send(401, {"error": {"message": "bad credentials"}})
                    return
                token = uuid.uuid4().hex
                service.tokens.add(token)
                service.logins += 1
                self._send(201, {"Id": token}, {"X-Auth-Token": token,
                                                "Location": f"/redfish/v1/SessionService/Sessions/{token}"})

            def do_DELETE(self) -> None:  # noqa: N802
                token = self.path.rstrip("/").rsplit("/", 1)[-1]
                if token in service.tokens:
                    service.tokens.discard(token)
                    service.logouts += 1
                    self._send(204)
                else:
                    self._send(404)

        return Handler
