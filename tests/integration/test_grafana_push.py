"""`twin grafana push` against a fake Grafana: a loopback HTTP server that answers the endpoints
the push uses as Grafana's HTTP API documents them (folders, data sources, dashboards by uid,
POST /api/dashboards/db with versions) and refuses requests that break that contract. No Grafana
server can run on the development machines, hence the fake; the names of the tests say so."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from twin.grafana.dashboards import build_all
from twin.grafana.push import DataSourceTarget, GrafanaPushFailed, push

pytestmark = pytest.mark.integration
TOKEN = "glsa_test_token"


class FakeGrafana:
    """State and request log of the fake server."""

    def __init__(self) -> None:
        self.folders: dict[str, dict[str, Any]] = {}
        self.datasources: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}  # uid -> {"dashboard", "folderUid", "versions"}
        self.requests: list[tuple[str, str]] = []
        self.violations: list[str] = []


def _handler(state: FakeGrafana) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> dict[str, Any] | None:
            if not self.headers.get("Content-Type", "").startswith("application/json"):
                state.violations.append(f"{self.command} {self.path} without a JSON content type")
                return None
            return json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"null")

        def _route(self) -> None:
            state.requests.append((self.command, self.path))
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self._reply(401, {"message": "Unauthorized"})
            parts = self.path.split("?")[0].strip("/").split("/")
            if parts[:2] == ["api", "folders"]:
                return self._folders(parts[2:])
            if parts[:2] == ["api", "datasources"]:
                return self._datasources(parts[2:])
            if parts[:2] == ["api", "dashboards"]:
                return self._dashboards(parts[2:])
            return self._reply(404, {"message": "Not found"})

        do_GET = do_POST = do_PUT = _route

        def _folders(self, rest: list[str]) -> None:
            if self.command == "GET" and len(rest) == 1:
                folder = state.folders.get(rest[0])
                return self._reply(200, folder) if folder else self._reply(404, {"message": "folder not found"})
            if self.command == "POST" and not rest:
                body = self._body()
                if not body or not body.get("title"):
                    return self._reply(400, {"message": "folder title cannot be empty"})
                if body.get("uid") in state.folders:
                    return self._reply(409, {"message": "a folder with the same uid already exists"})
                folder = {"id": len(state.folders) + 1, "uid": body.get("uid"), "title": body["title"], "version": 1}
                state.folders[folder["uid"]] = folder
                return self._reply(200, folder)
            return self._reply(405, {"message": "method not allowed"})

        def _datasources(self, rest: list[str]) -> None:
            if rest[:1] == ["uid"] and self.command == "GET":
                ds = state.datasources.get(rest[1])
                return self._reply(200, ds) if ds else self._reply(404, {"message": "Data source not found"})
            if not rest and self.command == "POST":
                body = self._body()
                if not body or not all(body.get(k) for k in ("name", "type", "access")):
                    return self._reply(400, {"message": "name, type and access are required"})
                ds = {k: v for k, v in body.items() if k != "secureJsonData"}
                ds |= {"id": len(state.datasources) + 1, "version": 1,
                       "secureJsonFields": {k: True for k in body.get("secureJsonData", {})}}
                state.datasources[body["uid"]] = ds
                return self._reply(200, {"datasource": ds, "id": ds["id"], "message": "Datasource added",
                                         "name": ds["name"]})
            if rest[:1] == ["uid"] and self.command == "PUT":
                body = self._body()
                if rest[1] not in state.datasources or not body:
                    return self._reply(404, {"message": "Data source not found"})
                ds = state.datasources[rest[1]]
                ds |= {k: v for k, v in body.items() if k != "secureJsonData"} | {"version": ds["version"] + 1}
                return self._reply(200, {"datasource": ds, "message": "Datasource updated"})
            return self._reply(405, {"message": "method not allowed"})

        def _dashboards(self, rest: list[str]) -> None:
            if rest[:1] == ["uid"] and self.command == "GET":
                stored = state.dashboards.get(rest[1])
                if not stored:
                    return self._reply(404, {"message": "Dashboard not found"})
                return self._reply(200, {"dashboard": stored["dashboard"],
                                         "meta": {"folderUid": stored["folderUid"], "version": stored["versions"],
                                                  "slug": rest[1], "provisioned": False}})
            if rest == ["db"] and self.command == "POST":
                body = self._body()
                dash = (body or {}).get("dashboard")
                if not isinstance(dash, dict) or not dash.get("title"):
                    return self._reply(400, {"message": "Dashboard title cannot be empty"})
                if "folderUid" in body and body["folderUid"] not in state.folders:
                    return self._reply(400, {"message": "folder not found"})
                uid = dash.get("uid")
                stored = state.dashboards.get(uid)
                if stored and not body.get("overwrite") and dash.get("version") != stored["versions"]:
                    return self._reply(412, {"status": "version-mismatch", "message": "The dashboard has been "
                                             "changed by someone else"})
                version = (stored["versions"] if stored else 0) + 1
                saved = {**dash, "id": stored["dashboard"]["id"] if stored else len(state.dashboards) + 1,
                         "version": version}
                state.dashboards[uid] = {"dashboard": saved, "folderUid": body.get("folderUid"), "versions": version}
                return self._reply(200, {"id": saved["id"], "uid": uid, "url": f"/d/{uid}/x", "status": "success",
                                         "version": version, "slug": uid})
            return self._reply(405, {"message": "method not allowed"})

    return Handler


@pytest.fixture
def fake_grafana() -> Iterator[tuple[str, FakeGrafana]]:
    state = FakeGrafana()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _posts(state: FakeGrafana, path: str) -> int:
    return sum(1 for method, p in state.requests if method in ("POST", "PUT") and p.startswith(path))


def test_push_to_fake_grafana_creates_everything_once(fake_grafana: tuple[str, FakeGrafana]) -> None:
    url, state = fake_grafana
    target = DataSourceTarget.from_url("postgresql://grafana:secret@postgres:5432/twin")
    report = push(url, TOKEN, datasource=target)
    assert sorted(report.created) == sorted(["folder fleet-twin", "datasource fleet-twin-postgres",
                                             *(f"dashboard {s.uid}" for s in build_all())])
    assert state.violations == []
    assert {uid: d["versions"] for uid, d in state.dashboards.items()} == {s.uid: 1 for s in build_all()}
    assert all(d["folderUid"] == "fleet-twin" for d in state.dashboards.values())
    ds = state.datasources["fleet-twin-postgres"]
    assert ds["url"] == "postgres:5432" and ds["jsonData"]["database"] == "twin" and ds["secureJsonFields"] == {
        "password": True}


def test_pushing_the_same_dashboards_twice_to_fake_grafana_creates_no_new_versions(
        fake_grafana: tuple[str, FakeGrafana]) -> None:
    url, state = fake_grafana
    target = DataSourceTarget.from_url("postgresql://grafana:secret@postgres:5432/twin")
    push(url, TOKEN, datasource=target)
    writes = _posts(state, "/api/")
    report = push(url, TOKEN, datasource=target)
    assert report.created == [] and report.updated == []
    assert _posts(state, "/api/") == writes  # the second push only read
    assert all(d["versions"] == 1 for d in state.dashboards.values())
    assert state.datasources["fleet-twin-postgres"]["version"] == 1

    changed = build_all()
    changed[0].builder = changed[0].builder.description("changed")
    report = push(url, TOKEN, dashboards=changed)
    assert report.updated == [f"dashboard {changed[0].uid}"]
    assert state.dashboards[changed[0].uid]["versions"] == 2
    assert all(d["versions"] == 1 for uid, d in state.dashboards.items() if uid != changed[0].uid)


def test_push_to_fake_grafana_with_a_bad_token_fails_clearly(fake_grafana: tuple[str, FakeGrafana]) -> None:
    url, state = fake_grafana
    with pytest.raises(GrafanaPushFailed, match="refused"):
        push(url, "wrong")
    assert state.dashboards == {}


def test_push_to_an_unreachable_grafana_fails_clearly() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(GrafanaPushFailed, match="cannot reach"):
        push(f"http://127.0.0.1:{port}", TOKEN, timeout=2)
