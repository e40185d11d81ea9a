"""One `KafkaSecurity` setting, three Kafka clients: each gets its own words for TLS and SASL.

The twin talks to Kafka through three libraries, and each spells the same connection
differently: kafka-python (publisher, topic creation) takes file paths; aiokafka (the bench,
Faust underneath) takes an `ssl.SSLContext`; Faust takes a credentials object that it hands to
every aiokafka consumer, producer and admin client it builds. Turning the settings into these
here, in one place, is what keeps the three from drifting: a new client calls one function.

Passwords leave this module only inside the client configuration; nothing here logs.
"""

from __future__ import annotations

import ssl
from typing import Any

from twin.errors import TwinError
from twin.settings import KafkaSecurity

__all__ = ["KafkaSecurityError", "aiokafka_config", "faust_credentials", "kafka_python_config", "ssl_context"]


class KafkaSecurityError(TwinError):
    """Raised when a TLS file named by a setting cannot be read or is not what it should be."""


def kafka_python_config(security: KafkaSecurity) -> dict[str, Any]:
    """Keyword arguments for kafka-python's `KafkaProducer`, `KafkaConsumer` and `KafkaAdminClient`."""
    config: dict[str, Any] = {"security_protocol": security.security_protocol}
    if security.uses_tls:
        config |= {"ssl_check_hostname": True, "ssl_cafile": _path(security.ssl_cafile),
                   "ssl_certfile": _path(security.ssl_certfile), "ssl_keyfile": _path(security.ssl_keyfile)}
        if security.ssl_key_password:
            config["ssl_password"] = security.ssl_key_password.get_secret_value()
    if security.uses_sasl:
        config |= _sasl(security)
    return config


def aiokafka_config(security: KafkaSecurity) -> dict[str, Any]:
    """Keyword arguments for aiokafka's `AIOKafkaProducer`, `AIOKafkaConsumer` and admin client."""
    config: dict[str, Any] = {"security_protocol": security.security_protocol}
    if security.uses_tls:
        config["ssl_context"] = ssl_context(security)
    if security.uses_sasl:
        config |= _sasl(security)
    return config


def faust_credentials(security: KafkaSecurity) -> Any:
    """Faust's `broker_credentials`: None for PLAINTEXT, else the object Faust turns into each
    aiokafka client's `security_protocol`, `ssl_context` and SASL arguments."""
    import faust

    if security.uses_sasl:
        assert security.sasl_password is not None  # KafkaSecurity refuses SASL without one
        return faust.SASLCredentials(
            username=security.sasl_username, password=security.sasl_password.get_secret_value(),
            mechanism=security.sasl_mechanism, ssl_context=ssl_context(security) if security.uses_tls else None)
    if security.uses_tls:
        return faust.SSLCredentials(ssl_context(security))
    return None


def ssl_context(security: KafkaSecurity) -> ssl.SSLContext:
    """A client TLS context: verifies the broker's certificate and name against the CA file (or
    the system's trust store) and presents the client certificate when one is set."""
    try:
        context = ssl.create_default_context(cafile=_path(security.ssl_cafile))
    except (OSError, ssl.SSLError) as err:
        raise KafkaSecurityError(f"cannot load the Kafka CA file TWIN_KAFKA_SSL_CAFILE={security.ssl_cafile}: "
                                 f"{err}") from None
    if security.ssl_certfile is not None:
        password = security.ssl_key_password.get_secret_value() if security.ssl_key_password else None
        try:
            context.load_cert_chain(_path(security.ssl_certfile), _path(security.ssl_keyfile), password=password)
        except (OSError, ssl.SSLError) as err:
            raise KafkaSecurityError(f"cannot load the Kafka client certificate TWIN_KAFKA_SSL_CERTFILE="
                                     f"{security.ssl_certfile} with TWIN_KAFKA_SSL_KEYFILE={security.ssl_keyfile}: "
                                     f"{err}") from None
    return context


def _sasl(security: KafkaSecurity) -> dict[str, Any]:
    # Both libraries call the SCRAM user and password "sasl_plain_*" too.
    assert security.sasl_password is not None
    return {"sasl_mechanism": security.sasl_mechanism, "sasl_plain_username": security.sasl_username,
            "sasl_plain_password": security.sasl_password.get_secret_value()}


def _path(path: object) -> str | None:
    return None if path is None else str(path)
