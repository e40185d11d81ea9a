"""Secure transport settings reach every client, and secrets never show.

The clients are the real ones, constructed as the code constructs them (Faust's worker consumer,
client consumer and producer; aiokafka's producer; kafka-python's producer), and their own
configuration objects are read back. Nothing connects here: tests/integration/
test_secure_transport.py speaks real TLS to a broker.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from datetime import datetime, timedelta, timezone
from pydantic import ValidationError

from twin.kafka_security import KafkaSecurityError, aiokafka_config, faust_credentials, kafka_python_config
from twin.errors import SettingsError
from twin.settings import KafkaSecurity, Settings

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "s3cret-Pa55word"
DB_PASSWORD = "db-Pa55word-7"


def _ca(tmp: Path, name: str = "fleet-test-ca") -> Path:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path = tmp / f"{name}.crt"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _sasl_ssl(tmp: Path, mechanism: str = "SCRAM-SHA-512") -> KafkaSecurity:
    return KafkaSecurity(security_protocol="SASL_SSL", sasl_mechanism=mechanism, sasl_username="twin",
                         sasl_password=PASSWORD, ssl_cafile=_ca(tmp))


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")} | {"PYTHONPATH": str(REPO)}


# -- kafka-python (publisher, topics) ------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_kafka_python_producer_gets_tls_and_each_sasl_mechanism(tmp_path: Path, mechanism: str) -> None:
    from kafka import KafkaProducer

    security = _sasl_ssl(tmp_path, mechanism)
    # api_version given: the producer does not probe the (absent) broker while it is built.
    producer = KafkaProducer(bootstrap_servers="127.0.0.1:9", api_version=(2, 8), **kafka_python_config(security))
    try:
        config = producer.config
        assert config["security_protocol"] == "SASL_SSL"
        assert config["sasl_mechanism"] == mechanism
        assert (config["sasl_plain_username"], config["sasl_plain_password"]) == ("twin", PASSWORD)
        assert config["ssl_cafile"] == str(security.ssl_cafile)
        assert config["ssl_check_hostname"] is True
    finally:
        producer.close(timeout=0)


def test_plaintext_gives_kafka_python_no_tls_and_no_sasl() -> None:
    assert kafka_python_config(KafkaSecurity.plaintext()) == {"security_protocol": "PLAINTEXT"}


# -- aiokafka (Faust underneath, the bench's clients) --------------------------------------------


def test_aiokafka_producer_gets_a_context_that_trusts_only_the_configured_ca(tmp_path: Path) -> None:
    from aiokafka import AIOKafkaProducer

    security = _sasl_ssl(tmp_path, "SCRAM-SHA-256")

    async def build() -> tuple[object, ...]:
        producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:9", **aiokafka_config(security))
        client = producer.client
        return (client._security_protocol, client._sasl_mechanism, client._sasl_plain_username,
                client._sasl_plain_password, client._ssl_context)

    protocol, mechanism, user, password, context = asyncio.run(build())
    assert (protocol, mechanism, user, password) == ("SASL_SSL", "SCRAM-SHA-256", "twin", PASSWORD)
    issuers = [dict(part[0] for part in cert["subject"])["commonName"] for cert in context.get_ca_certs()]
    assert issuers == ["fleet-test-ca"], "the CA file, and only it, is trusted"
    assert context.check_hostname


def test_a_missing_ca_file_is_a_clear_error(tmp_path: Path) -> None:
    security = KafkaSecurity(security_protocol="SSL", ssl_cafile=tmp_path / "nope.crt")
    with pytest.raises(KafkaSecurityError, match="TWIN_KAFKA_SSL_CAFILE=.*nope.crt"):
        aiokafka_config(security)


# -- Faust (the worker) ---------------------------------------------------------------------------

_FAUST_PROBE = """
import asyncio, json
from streams.app import app
async def main():
    worker = app.consumer._thread._create_worker_consumer(app.transport)._client
    client = app.consumer._thread._create_client_consumer(app.transport)._client
    producer = app.producer._new_producer().client
    out = {}
    for name, c in (("worker_consumer", worker), ("client_consumer", client), ("producer", producer)):
        cas = [dict(p[0] for p in cert["subject"])["commonName"] for cert in c._ssl_context.get_ca_certs()]
        out[name] = [c._security_protocol, c._sasl_mechanism, c._sasl_plain_username, c._sasl_plain_password, cas]
    print(json.dumps(out))
asyncio.run(main())
"""


def test_the_worker_app_hands_tls_and_sasl_to_each_client_faust_builds(tmp_path: Path) -> None:
    ca = _ca(tmp_path)
    env = _clean_env() | {
        "TWIN_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "TWIN_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "TWIN_KAFKA_SASL_USERNAME": "twin", "TWIN_KAFKA_SASL_PASSWORD": PASSWORD, "TWIN_KAFKA_SSL_CAFILE": str(ca),
        "TWIN_STATE_DIR": str(tmp_path / "state"),
    }
    done = subprocess.run([sys.executable, "-c", _FAUST_PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    expected = ["SASL_SSL", "SCRAM-SHA-512", "twin", PASSWORD, ["fleet-test-ca"]]
    assert seen == {"worker_consumer": expected, "client_consumer": expected, "producer": expected}


def test_plaintext_gives_faust_no_credentials() -> None:
    assert faust_credentials(KafkaSecurity.plaintext()) is None


def test_tls_without_sasl_gives_faust_ssl_credentials(tmp_path: Path) -> None:
    credentials = faust_credentials(KafkaSecurity(security_protocol="SSL", ssl_cafile=_ca(tmp_path)))
    assert credentials.protocol.value == "SSL"
    assert [dict(p[0] for p in c["subject"])["commonName"] for c in credentials.context.get_ca_certs()] == \
        ["fleet-test-ca"]


# -- settings: refusals, secret files ----------------------------------------------------------


def test_sasl_without_a_password_is_refused_with_the_settings_to_set() -> None:
    with pytest.raises(ValidationError, match="TWIN_KAFKA_SASL_PASSWORD"):
        KafkaSecurity(security_protocol="SASL_PLAINTEXT", sasl_username="twin")


def test_tls_files_with_a_plaintext_protocol_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="use SSL or SASL_SSL"):
        KafkaSecurity(security_protocol="PLAINTEXT", ssl_cafile=_ca(tmp_path))


def test_an_unknown_sasl_mechanism_is_refused() -> None:
    with pytest.raises(ValidationError, match="SCRAM-SHA-512"):
        KafkaSecurity(security_protocol="SASL_SSL", sasl_mechanism="GSSAPI", sasl_username="u", sasl_password="p")


def test_secrets_come_from_a_file_named_by_an_env_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sasl").write_text(PASSWORD + "\n")
    monkeypatch.setenv("TWIN_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("TWIN_KAFKA_SASL_USERNAME", "twin")
    monkeypatch.setenv("TWIN_KAFKA_SASL_PASSWORD_FILE", str(tmp_path / "sasl"))
    assert KafkaSecurity().sasl_password.get_secret_value() == PASSWORD  # type: ignore[union-attr]


def test_secrets_come_from_a_mounted_secrets_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "TWIN_DATABASE_PASSWORD").write_text(DB_PASSWORD)
    monkeypatch.setenv("TWIN_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("TWIN_DATABASE_URL", "postgresql://twin@db.example:5432/twin")
    url = Settings().database_url.get_secret_value()
    assert f"password={DB_PASSWORD}" in url


def test_an_unreadable_secret_file_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_DATABASE_PASSWORD_FILE", str(tmp_path / "absent"))
    with pytest.raises(SettingsError, match="TWIN_DATABASE_PASSWORD_FILE"):
        Settings()


def test_sslmode_and_ca_file_reach_every_database_connection_through_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg.conninfo

    monkeypatch.setenv("TWIN_DATABASE_URL", "postgresql://twin@db.example:5432/twin?application_name=twin")
    monkeypatch.setenv("TWIN_DATABASE_SSLMODE", "verify-full")
    monkeypatch.setenv("TWIN_DATABASE_SSLROOTCERT", "/etc/twin/ca/postgres-ca.crt")
    monkeypatch.setenv("TWIN_DATABASE_PASSWORD", DB_PASSWORD)
    params = psycopg.conninfo.conninfo_to_dict(Settings().database_url.get_secret_value())
    assert params["sslmode"] == "verify-full"
    assert params["sslrootcert"] == "/etc/twin/ca/postgres-ca.crt"
    assert params["password"] == DB_PASSWORD
    assert params["application_name"] == "twin"
    assert (params["host"], params["dbname"], params["user"]) == ("db.example", "twin", "twin")


def test_a_url_password_is_redacted_wherever_it_sits() -> None:
    def shown(url: str) -> object:
        return Settings(database_url=url).redacted()["database_url"]

    assert shown("postgresql://twin:pw1@db/twin") == "postgresql://twin:***@db/twin"
    assert shown("postgresql://twin@db/twin?sslmode=require&password=pw2") == \
        "postgresql://twin@db/twin?sslmode=require&password=***"


# -- never shown: `twin settings` and the logs ---------------------------------------------------


def _secret_env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "db-password").write_text(DB_PASSWORD)
    return _clean_env() | {
        "TWIN_KAFKA_BOOTSTRAP": "127.0.0.1:9", "TWIN_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "TWIN_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256", "TWIN_KAFKA_SASL_USERNAME": "twin",
        "TWIN_KAFKA_SASL_PASSWORD": PASSWORD, "TWIN_KAFKA_SSL_CAFILE": str(_ca(tmp_path)),
        "TWIN_DATABASE_URL": "postgresql://twin:url-Pa55@127.0.0.1:9/twin",
        "TWIN_DATABASE_PASSWORD_FILE": str(tmp_path / "db-password"), "TWIN_DATABASE_SSLMODE": "require",
        "TWIN_STATE_DIR": str(tmp_path / "state"), "COLUMNS": "300",
    }


def _twin(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from twin.cli import main; main()", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def test_twin_settings_shows_the_transport_settings_but_no_secret(tmp_path: Path) -> None:
    done = _twin(_secret_env(tmp_path), "settings")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for secret in (PASSWORD, DB_PASSWORD, "url-Pa55"):
        assert secret not in out + done.stderr
    assert "kafka_security_protocol = SASL_SSL" in out
    assert "kafka_sasl_mechanism = SCRAM-SHA-256" in out
    assert "kafka_sasl_password = ***" in out
    assert "sslmode=require" in out and "password=***" in out


def test_the_logs_of_a_client_that_cannot_connect_hold_no_secret(tmp_path: Path) -> None:
    # Debug logs of our code and of kafka-python, from a topics job whose broker never answers.
    done = _twin(_secret_env(tmp_path), "--log-level", "debug", "topics", "create", "--timeout", "2")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no Kafka broker answered" in done.stderr
    for secret in (PASSWORD, DB_PASSWORD, "url-Pa55"):
        assert secret not in done.stdout + done.stderr


_WORKER_START_LOG = """
import logging, sys
from streams.app import log, settings
from twin.logs import configure
configure("debug", json=True)
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
log.info("worker starting", **settings.redacted())
"""


def test_the_worker_start_log_line_holds_no_secret(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", _WORKER_START_LOG], env=_secret_env(tmp_path), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    line = json.loads([x for x in done.stderr.splitlines() if "worker starting" in x][-1])
    assert line["kafka_sasl_username"] == "twin" and line["kafka_sasl_password"] == "***"
    for secret in (PASSWORD, DB_PASSWORD, "url-Pa55"):
        assert secret not in done.stdout + done.stderr


@pytest.mark.parametrize(("env", "says"), [
    ({"TWIN_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "needs TWIN_KAFKA_SASL_USERNAME and TWIN_KAFKA_SASL_PASSWORD"),
    ({"TWIN_KAFKA_SECURITY_PROTOCOL": "TLS"}, "TWIN_KAFKA_SECURITY_PROTOCOL='TLS': Input should be 'PLAINTEXT'"),
    ({"TWIN_DATABASE_PASSWORD_FILE": "/nonexistent/db"}, "TWIN_DATABASE_PASSWORD_FILE: '/nonexistent/db' cannot be read"),
])
def test_settings_that_cannot_work_are_named_in_one_clear_error(tmp_path: Path, env: dict[str, str], says: str) -> None:
    done = _twin(_clean_env() | {"COLUMNS": "300", "TWIN_STATE_DIR": str(tmp_path)} | env, "settings")
    assert done.returncode == 2
    assert says in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_key_value_database_string_gets_tls_and_password_too(monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg.conninfo

    monkeypatch.setenv("TWIN_DATABASE_URL", "host=db.example dbname=twin user=twin")
    monkeypatch.setenv("TWIN_DATABASE_SSLMODE", "verify-ca")
    monkeypatch.setenv("TWIN_DATABASE_PASSWORD", "it's a secret")
    settings = Settings()
    params = psycopg.conninfo.conninfo_to_dict(settings.database_url.get_secret_value())
    assert (params["host"], params["sslmode"], params["password"]) == ("db.example", "verify-ca", "it's a secret")
    shown = settings.redacted()["database_url"]
    assert "secret" not in str(shown) and "password=***" in str(shown)
